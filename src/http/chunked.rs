//! Decoder for `Transfer-Encoding: chunked` request bodies: a pure state
//! machine over bytes, so it can be fed any split of the input. It never
//! buffers: data comes back as ranges of the caller's input, and everything
//! else (sizes, extensions, trailers) is bounded and skipped.

use std::fmt;
use std::ops::Range;

/// Chunk extensions and each trailer line are skipped, but not forever.
const MAX_LINE: usize = 4 * 1024;
/// All trailer lines together.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size into `ChunkedDecoder::size`.
    Size {
        digits: u32,
    },
    /// Whitespace after the size: only `;` (an extension) or the line end may
    /// follow, so `5 6` is refused rather than read as a size of 5.
    SizeSpace {
        len: usize,
    },
    /// `;extensions` up to CRLF, skipped.
    Extension {
        len: usize,
    },
    SizeLf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine {
        len: usize,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The size of the chunk whose size line is being read.
    size: u64,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            size: 0,
            trailer_bytes: 0,
        }
    }
}

/// What one call to [`ChunkedDecoder::step`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input that were used; the caller drops them.
    pub consumed: usize,
    /// Body bytes, as a range of the input (always inside `..consumed`).
    pub data: Option<Range<usize>>,
    /// The final chunk and trailers have been read.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedError(&'static str);

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ChunkedError {}

impl ChunkedDecoder {
    /// Advances over `input` until it yields body bytes, reaches the end of
    /// the body, or runs out of input.
    pub fn step(&mut self, input: &[u8]) -> Result<Step, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data { remaining } = self.state {
                let len = remaining.min((input.len() - i) as u64) as usize;
                self.state = if remaining == len as u64 {
                    State::DataCr
                } else {
                    State::Data {
                        remaining: remaining - len as u64,
                    }
                };
                return Ok(Step {
                    consumed: i + len,
                    data: Some(i..i + len),
                    done: false,
                });
            }
            if self.state == State::Done {
                break;
            }
            self.state = self.next(input[i])?;
            i += 1;
        }
        Ok(Step {
            consumed: i,
            data: None,
            done: self.state == State::Done,
        })
    }

    fn next(&mut self, byte: u8) -> Result<State, ChunkedError> {
        Ok(match self.state {
            State::Size { digits } => match hex_value(byte) {
                Some(d) => {
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|v| v.checked_add(u64::from(d)))
                        .ok_or(ChunkedError("chunk size does not fit in 64 bits"))?;
                    State::Size { digits: digits + 1 }
                }
                None if digits == 0 => return Err(ChunkedError("missing chunk size")),
                None => match byte {
                    b'\r' => State::SizeLf,
                    b'\n' => self.size_line_done(),
                    b';' => State::Extension { len: 1 },
                    b' ' | b'\t' => State::SizeSpace { len: 1 },
                    _ => return Err(ChunkedError("invalid chunk size")),
                },
            },
            State::SizeSpace { len } => match byte {
                b'\r' => State::SizeLf,
                b'\n' => self.size_line_done(),
                b';' => State::Extension { len: len + 1 },
                _ if len >= MAX_LINE => return Err(ChunkedError("chunk extension too long")),
                b' ' | b'\t' => State::SizeSpace { len: len + 1 },
                _ => return Err(ChunkedError("invalid chunk size")),
            },
            State::Extension { len } => match byte {
                b'\r' => State::SizeLf,
                b'\n' => self.size_line_done(),
                _ if len >= MAX_LINE => return Err(ChunkedError("chunk extension too long")),
                0..=8 | 10..=31 | 127 => return Err(ChunkedError("control byte in chunk extension")),
                _ => State::Extension { len: len + 1 },
            },
            State::SizeLf => match byte {
                b'\n' => self.size_line_done(),
                _ => return Err(ChunkedError("expected LF after chunk size")),
            },
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                b'\n' => State::Size { digits: 0 },
                _ => return Err(ChunkedError("chunk data longer than its size")),
            },
            State::DataLf => match byte {
                b'\n' => State::Size { digits: 0 },
                _ => return Err(ChunkedError("expected LF after chunk data")),
            },
            State::TrailerStart => match byte {
                b'\r' => State::TrailerLf { empty: true },
                b'\n' => State::Done,
                _ => self.trailer_byte(0)?,
            },
            State::TrailerLine { len } => match byte {
                b'\r' => State::TrailerLf { empty: false },
                b'\n' => State::TrailerStart,
                _ => self.trailer_byte(len)?,
            },
            State::TrailerLf { empty } => match byte {
                b'\n' if empty => State::Done,
                b'\n' => State::TrailerStart,
                _ => return Err(ChunkedError("expected LF in trailer")),
            },
            State::Data { .. } | State::Done => unreachable!("step handles data and the end itself"),
        })
    }

    fn size_line_done(&mut self) -> State {
        let size = std::mem::take(&mut self.size);
        if size == 0 {
            State::TrailerStart
        } else {
            State::Data { remaining: size }
        }
    }

    fn trailer_byte(&mut self, len: usize) -> Result<State, ChunkedError> {
        self.trailer_bytes += 1;
        if len >= MAX_LINE || self.trailer_bytes > MAX_TRAILERS {
            return Err(ChunkedError("trailers too large"));
        }
        Ok(State::TrailerLine { len: len + 1 })
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` delivered in the given pieces, as a connection would:
    /// unconsumed bytes stay in the buffer and the next read is appended.
    fn decode_in_pieces(pieces: &[&[u8]]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut decoder = ChunkedDecoder::default();
        let mut buf = Vec::new();
        let mut body = Vec::new();
        let mut used = 0;
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                let step = decoder.step(&buf)?;
                if let Some(range) = step.data.clone() {
                    body.extend_from_slice(&buf[range]);
                }
                buf.drain(..step.consumed);
                used += step.consumed;
                if step.done {
                    return Ok((body, used));
                }
                if step.consumed == 0 {
                    break;
                }
            }
        }
        Err(ChunkedError("incomplete"))
    }

    /// Every split of `input` into two reads, and one byte at a time, must
    /// decode to the same body and stop at the same byte.
    fn decode_every_split(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let whole = decode_in_pieces(&[input]);
        for split in 0..=input.len() {
            assert_eq!(
                decode_in_pieces(&[&input[..split], &input[split..]]),
                whole,
                "split at {split}"
            );
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_in_pieces(&bytes), whole, "byte by byte");
        whole
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let input = b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\nNEXT";
        let (body, used) = decode_every_split(input).unwrap();
        assert_eq!(body, b"hello, world");
        assert_eq!(&input[used..], b"NEXT");
    }

    #[test]
    fn whitespace_before_an_extension_or_the_line_end_is_accepted() {
        let input = b"5 \t;a=b\r\nhello\r\n3\t\r\n!!!\r\n0 \r\n\r\n";
        assert_eq!(decode_every_split(input).unwrap().0, b"hello!!!");
    }

    #[test]
    fn accepts_upper_case_hex_and_bare_lf() {
        let input = b"A\n0123456789\n0\n\n";
        assert_eq!(decode_every_split(input).unwrap().0, b"0123456789");
    }

    #[test]
    fn empty_body_is_just_the_last_chunk() {
        assert_eq!(decode_every_split(b"0\r\n\r\n").unwrap(), (Vec::new(), 5));
    }

    #[test]
    fn malformed_framing_is_refused() {
        for input in [
            &b"\r\n"[..],
            b"g\r\n",
            b"5\r\nhello!\r\n0\r\n\r\n",
            b"5\rxhello",
            b"10000000000000000\r\n",
            b"5\r\nhello\rX",
            b"1;\x01\r\n",
            b"5 6\r\nhello\r\n0\r\n\r\n",
            b"5\t-\r\nhello\r\n0\r\n\r\n",
        ] {
            assert!(
                decode_every_split(input).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn the_largest_size_that_fits_is_accepted_and_one_more_digit_is_not() {
        let mut decoder = ChunkedDecoder::default();
        assert!(decoder.step(b"ffffffffffffffff\r\n").is_ok());
        let mut decoder = ChunkedDecoder::default();
        assert!(decoder.step(b"1ffffffffffffffff").is_err());
    }

    #[test]
    fn endless_extensions_and_trailers_are_bounded() {
        let mut ext = b"1;".to_vec();
        ext.extend(std::iter::repeat_n(b'a', MAX_LINE + 1));
        assert!(ChunkedDecoder::default().step(&ext).is_err());
        let mut spaces = b"1".to_vec();
        spaces.extend(std::iter::repeat_n(b' ', MAX_LINE + 1));
        assert!(ChunkedDecoder::default().step(&spaces).is_err());
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..1000 {
            trailers.extend_from_slice(b"X-Long-Trailer-Name: some value\r\n");
        }
        assert!(ChunkedDecoder::default().step(&trailers).is_err());
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        /// One chunk: its data, whether its size is written in upper case
        /// with leading zeros, and an optional extension.
        type Chunk = (Vec<u8>, bool, Option<String>);

        fn encode(chunks: &[Chunk], trailers: &[String]) -> Vec<u8> {
            let mut out = Vec::new();
            for (data, upper, ext) in chunks {
                let size = if *upper {
                    format!("00{:X}", data.len())
                } else {
                    format!("{:x}", data.len())
                };
                out.extend_from_slice(size.as_bytes());
                if let Some(ext) = ext {
                    out.extend_from_slice(format!(";{ext}").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n");
            for trailer in trailers {
                out.extend_from_slice(format!("{trailer}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out
        }

        fn chunk() -> impl Strategy<Value = Chunk> {
            (
                prop::collection::vec(any::<u8>(), 1..40),
                any::<bool>(),
                prop::option::of("[a-z]{1,8}(=[a-z0-9]{0,8})?"),
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_encoding_in_any_pieces_decodes_to_the_body(
                chunks in prop::collection::vec(chunk(), 0..6),
                trailers in prop::collection::vec("X-[A-Za-z]{1,8}: [ -~]{0,20}", 0..3),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
            ) {
                let encoded = encode(&chunks, &trailers);
                let mut input = encoded.clone();
                input.extend_from_slice(b"GET / HTTP/1.1\r\n");
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
                cuts.push(0);
                cuts.push(input.len());
                cuts.sort_unstable();
                let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &input[w[0]..w[1]]).collect();
                let (body, used) = decode_in_pieces(&pieces).unwrap();
                let expected: Vec<u8> = chunks.iter().flat_map(|(data, _, _)| data.clone()).collect();
                prop_assert_eq!(body, expected);
                prop_assert_eq!(used, encoded.len());
            }

            #[test]
            fn arbitrary_bytes_never_panic_the_decoder(input in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = decode_every_split(&input);
            }
        }
    }
}
