//! The decoder is fed as `Body` feeds it, in pieces, through one harness:
//! the unit tests' inputs in every split, the property tests' in random ones,
//! so that both check the same thing about where reads end.

use super::*;
use proptest::sample::Index;

/// What decoding a chunked body gave: the body and how many input bytes it
/// took (trailers included), or why there is none.
type Decoded = Result<(Vec<u8>, usize), Unfinished>;

/// Why decoding gave no body.
#[derive(Debug, PartialEq, Eq)]
enum Unfinished {
    /// The input ran out first; the body so far.
    Incomplete(Vec<u8>),
    Refused(ChunkedError),
}

/// Decodes a body arriving in `reads` as `Body` feeds the decoder:
/// unconsumed bytes stay buffered and the next read is appended.
fn decode_in_pieces(reads: &[&[u8]]) -> Decoded {
    let mut decoder = ChunkedDecoder::default();
    let mut buffered = Vec::new();
    let mut body = Vec::new();
    let mut used = 0;
    for read in reads {
        buffered.extend_from_slice(read);
        loop {
            let step = decoder.step(&buffered).map_err(Unfinished::Refused)?;
            if let Some(data) = step.data {
                assert!(data.end <= step.consumed, "data outside what was consumed");
                body.extend_from_slice(&buffered[data]);
            }
            buffered.drain(..step.consumed);
            used += step.consumed;
            if step.done {
                return Ok((body, used));
            }
            if step.consumed == 0 {
                break;
            }
        }
    }
    Err(Unfinished::Incomplete(body))
}

/// `input` cut into consecutive reads at `cuts` (in any order; equal cuts make
/// empty reads), as TCP may cut it.
fn pieces<'a>(input: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut.index(input.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(input.len());
    ends.iter()
        .scan(0, |start, &end| Some(&input[std::mem::replace(start, end)..end]))
        .collect()
}

/// Every split of `input` into two reads, and one byte at a time, must
/// decode to the same body and stop at the same byte.
fn decode_every_split(input: &[u8]) -> Decoded {
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
fn accepts_upper_case_hex() {
    let input = b"A\r\n0123456789\r\n0\r\n\r\n";
    assert_eq!(decode_every_split(input).unwrap().0, b"0123456789");
}

#[test]
fn a_bare_lf_anywhere_in_the_framing_is_refused() {
    for input in [
        &b"A\n0123456789\r\n0\r\n\r\n"[..],
        b"A \n0123456789\r\n0\r\n\r\n",
        b"A;x=y\n0123456789\r\n0\r\n\r\n",
        b"A\r\n0123456789\n0\r\n\r\n",
        b"A\r\n0123456789\r\n0\n\r\n",
        b"A\r\n0123456789\r\n0\r\n\n",
        b"A\r\n0123456789\r\n0\r\nX-A: 1\n\r\n",
    ] {
        assert_eq!(
            decode_every_split(input),
            Err(Unfinished::Refused(BARE_LF)),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn trailer_lines_must_be_field_lines() {
    for trailer in [
        &b"GET /healthz HTTP/1.1"[..],
        b"no-colon",
        b": no name",
        b" X-Folded: 1",
        b"X-Space : 1",
        b"X(A): 1",
        b"X-A: 1\x07",
        b"X-A: 1\0",
    ] {
        let mut input = b"1\r\na\r\n0\r\n".to_vec();
        input.extend_from_slice(trailer);
        input.extend_from_slice(b"\r\n\r\n");
        assert!(
            matches!(decode_every_split(&input), Err(Unfinished::Refused(_))),
            "{:?}",
            String::from_utf8_lossy(trailer)
        );
    }
    let valid = b"1\r\na\r\n0\r\nX-Empty:\r\nx!#$%&'*+-.^_`|~9:\t v\x80\xff \r\n\r\n";
    assert_eq!(decode_every_split(valid).unwrap(), (b"a".to_vec(), valid.len()));
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

mod rfc9112 {
    //! The RFC 9112 table that `tests/rfc9112.rs` sends over sockets: the
    //! chunked bodies of its cases, fed here to the decoder at every split.

    use super::*;

    include!("../../../tests/rfc9112/cases.rs");

    #[test]
    fn every_chunked_case_is_decoded_or_refused_at_every_split() {
        for case in CASES.iter().filter(|case| case.layer == Layer::Chunked) {
            let head_end = case.input.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let body = &case.input[head_end..];
            let decoded = decode_every_split(body);
            if refused_by_parser(case.status) {
                assert!(!case.stays_open, "{}: a refusal closes", case.name);
                assert!(
                    matches!(decoded, Err(Unfinished::Refused(_))),
                    "{}: {decoded:?}",
                    case.name
                );
            } else {
                assert_eq!(decoded, Ok((b"{}".to_vec(), body.len())), "{}", case.name);
            }
        }
    }
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
            cuts in prop::collection::vec(any::<Index>(), 0..8),
        ) {
            let encoded = encode(&chunks, &trailers);
            let mut input = encoded.clone();
            input.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let (body, used) = decode_in_pieces(&pieces(&input, &cuts)).unwrap();
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

mod hostile {
    //! Property tests of the chunked body decoder, which sees raw client bytes
    //! first, with hostile and boundary inputs: bytes shaped to get deep into
    //! its state machine, delivered in random pieces as TCP may deliver them
    //! (the answer must not depend on where reads were split), and chunk sizes
    //! past 64 bits. That valid encodings round-trip in any pieces is checked
    //! by `random`; the request head parser (`http::request`) and the multipart
    //! parser (`files::multipart`) have the like beside them.

    use super::*;
    use proptest::prelude::*;

    /// Bytes shaped to get deep into the decoder: either only what size lines,
    /// extensions and line ends are made of, or those mixed with any other
    /// bytes, as chunk data and trailers hold.
    fn chunked_ish_bytes() -> impl Strategy<Value = Vec<u8>> {
        let syntax = prop::sample::select(b"0123456789abcdefABCDEF;= \t\r\nxX".to_vec());
        prop_oneof![
            prop::collection::vec(syntax.clone(), 0..512),
            prop::collection::vec(prop_oneof![3 => syntax, 1 => any::<u8>()], 0..1024),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary bytes decode to the same outcome whole or in pieces, without
        /// panicking, and a body that is cut short is reported as incomplete with
        /// the same bytes so far.
        #[test]
        fn arbitrary_chunked_input_decodes_the_same_whatever_the_split(
            input in chunked_ish_bytes(),
            cuts in prop::collection::vec(any::<Index>(), 0..8),
        ) {
            prop_assert_eq!(decode_in_pieces(&pieces(&input, &cuts)), decode_in_pieces(&[&input]));
        }

        /// A chunk size that needs more than 64 bits is refused, with or without
        /// leading zeros, however long; it never wraps around to a small size.
        #[test]
        fn chunk_sizes_over_64_bits_are_refused(
            zeros in 0usize..40,
            first in prop::sample::select(b"123456789abcdefABCDEF".to_vec()),
            digits in prop::collection::vec(prop::sample::select(b"0123456789abcdef".to_vec()), 16..64),
            cuts in prop::collection::vec(any::<Index>(), 0..4),
        ) {
            let mut input = vec![b'0'; zeros];
            input.push(first);
            input.extend_from_slice(&digits);
            input.extend_from_slice(b"\r\nxyz");
            prop_assert!(matches!(decode_in_pieces(&pieces(&input, &cuts)), Err(Unfinished::Refused(_))));
        }
    }
}
