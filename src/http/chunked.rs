//! Decoder for `Transfer-Encoding: chunked` request bodies: a pure state
//! machine over bytes, so it can be fed any split of the input. It never
//! buffers: data comes back as ranges of the caller's input, and everything
//! else (sizes, extensions, trailers) is bounded and skipped.
//!
//! It is strict where a lenient reading could split a stream differently
//! from a front end that forwards chunked bodies verbatim (RFC 9112 7.1):
//! every line ends with CRLF (a bare LF is refused) and every trailer line
//! is a field line, `name: value`, so that a request line sent as a
//! "trailer" is refused rather than skipped.

use std::fmt;
use std::ops::Range;

/// Chunk extensions and each trailer line are skipped, but not forever.
const MAX_LINE: usize = 4 * 1024;
/// All trailer lines together.
const MAX_TRAILERS: usize = 16 * 1024;

/// Every line of the framing ends with CRLF.
const BARE_LF: ChunkedError = ChunkedError("bare LF in chunked framing (lines end with CRLF)");

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
    /// The field name of a trailer line, up to its colon.
    TrailerName {
        len: usize,
    },
    /// The field value of a trailer line, up to CRLF.
    TrailerValue {
        len: usize,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

#[derive(Clone, Debug)]
pub(crate) struct ChunkedDecoder {
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
pub(crate) struct Step {
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
    pub(crate) fn step(&mut self, input: &[u8]) -> Result<Step, ChunkedError> {
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
                    b'\n' => return Err(BARE_LF),
                    b';' => State::Extension { len: 1 },
                    b' ' | b'\t' => State::SizeSpace { len: 1 },
                    _ => return Err(ChunkedError("invalid chunk size")),
                },
            },
            State::SizeSpace { len } => match byte {
                b'\r' => State::SizeLf,
                b'\n' => return Err(BARE_LF),
                b';' => State::Extension { len: len + 1 },
                _ if len >= MAX_LINE => return Err(ChunkedError("chunk extension too long")),
                b' ' | b'\t' => State::SizeSpace { len: len + 1 },
                _ => return Err(ChunkedError("invalid chunk size")),
            },
            State::Extension { len } => match byte {
                b'\r' => State::SizeLf,
                b'\n' => return Err(BARE_LF),
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
                b'\n' => return Err(BARE_LF),
                _ => return Err(ChunkedError("chunk data longer than its size")),
            },
            State::DataLf => match byte {
                b'\n' => State::Size { digits: 0 },
                _ => return Err(ChunkedError("expected LF after chunk data")),
            },
            State::TrailerStart => match byte {
                b'\r' => State::TrailerLf { empty: true },
                b'\n' => return Err(BARE_LF),
                _ if is_tchar(byte) => State::TrailerName {
                    len: self.trailer_byte(0)?,
                },
                _ => return Err(ChunkedError("trailer line is not a header field")),
            },
            State::TrailerName { len } => match byte {
                b':' => State::TrailerValue {
                    len: self.trailer_byte(len)?,
                },
                _ if is_tchar(byte) => State::TrailerName {
                    len: self.trailer_byte(len)?,
                },
                _ => return Err(ChunkedError("trailer line is not a header field")),
            },
            State::TrailerValue { len } => match byte {
                b'\r' => State::TrailerLf { empty: false },
                b'\n' => return Err(BARE_LF),
                0..=8 | 10..=31 | 127 => return Err(ChunkedError("control byte in trailer")),
                _ => State::TrailerValue {
                    len: self.trailer_byte(len)?,
                },
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

    /// Counts one more byte of a trailer line `len` bytes long so far, and
    /// gives the line's new length.
    fn trailer_byte(&mut self, len: usize) -> Result<usize, ChunkedError> {
        self.trailer_bytes += 1;
        if len >= MAX_LINE || self.trailer_bytes > MAX_TRAILERS {
            return Err(ChunkedError("trailers too large"));
        }
        Ok(len + 1)
    }
}

/// A byte of a field name (`tchar`, RFC 9110 5.6.2).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
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
mod tests;
