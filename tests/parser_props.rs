//! Property tests of the two HTTP parsers that see raw client bytes first,
//! the request head (`http::request`) and the chunked body decoder
//! (`http::chunked`), with hostile and boundary inputs: bytes shaped to get
//! deep into each state machine, delivered in random pieces as TCP may
//! deliver them (the answer must not depend on where reads were split),
//! request lines over the limit, every mix of framing headers, and chunk
//! sizes past 64 bits. That valid heads and encodings round-trip in any
//! pieces is checked by the property tests next to each parser; the
//! multipart parser has `multipart_props.rs`.

use chat_server::http::chunked::{ChunkedDecoder, ChunkedError};
use chat_server::http::request::{self, Framing, HeadError, MAX_REQUEST_LINE};
use proptest::prelude::*;
use proptest::sample::Index;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Cuts `len` bytes into consecutive pieces at the (sorted, deduplicated)
/// points chosen by `cuts`.
fn pieces(len: usize, cuts: &[Index]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(len + 1)).collect();
    points.extend([0, len]);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|pair| pair[0]..pair[1]).collect()
}

/// What the connection does with a head arriving in pieces: append each
/// piece, check the partial-head limits, and look for the end of the head
/// from where the last search stopped. Returns the length of the head, the
/// limit it broke, or `Ok(None)` if it is still incomplete.
fn head_end_in_pieces(input: &[u8], cuts: &[Index]) -> Result<Option<usize>, HeadError> {
    let mut buffered = 0;
    let mut scanned = 0;
    for piece in pieces(input.len(), cuts) {
        buffered = piece.end;
        if let Some(end) = request::find_head_end(&input[..buffered], scanned) {
            return Ok(Some(end));
        }
        request::check_partial(&input[..buffered])?;
        scanned = buffered;
    }
    debug_assert_eq!(buffered, input.len());
    Ok(None)
}

/// The outcome of decoding a chunked body fed in pieces, as `Body` feeds the
/// decoder: unconsumed bytes stay buffered and the next piece is appended.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// The body, and how many input bytes it took (trailers included).
    Complete(Vec<u8>, usize),
    /// The input ran out first; the body so far.
    Incomplete(Vec<u8>),
    Refused(ChunkedError),
}

fn decode_in_pieces(input: &[u8], cuts: &[Index]) -> Decoded {
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    let mut used = 0;
    for piece in pieces(input.len(), cuts) {
        // `used..piece.end` is what the decoder has not consumed yet.
        while used < piece.end {
            let window = &input[used..piece.end];
            let step = match decoder.step(window) {
                Ok(step) => step,
                Err(e) => return Decoded::Refused(e),
            };
            if let Some(data) = step.data {
                assert!(data.end <= step.consumed, "data outside what was consumed");
                body.extend_from_slice(&window[data]);
            }
            used += step.consumed;
            if step.done {
                return Decoded::Complete(body, used);
            }
            if step.consumed == 0 {
                break;
            }
        }
    }
    Decoded::Incomplete(body)
}

/// Bytes that look a little like HTTP: mostly printable, with plenty of
/// line ends, colons and spaces, and the odd control byte.
fn http_ish_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        6 => 0x20u8..0x7f,
        2 => Just(b'\n'),
        2 => Just(b'\r'),
        1 => Just(b':'),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..max)
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes, however split: the limits are checked, the end of a
    /// head is found where a single read would find it, and parsing whatever
    /// was found answers (a request or an error) without panicking.
    #[test]
    fn arbitrary_bytes_give_the_same_answer_whatever_the_split(
        input in http_ish_bytes(2048),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let whole = head_end_in_pieces(&input, &[]);
        prop_assert_eq!(head_end_in_pieces(&input, &cuts).ok().flatten(), whole.clone().ok().flatten());
        if let Ok(Some(end)) = whole {
            let _ = request::parse(&input[..end]);
        }
    }

    /// However long a request line grows, it is refused with 414 once it
    /// passes the limit, before its end arrives, and never before.
    #[test]
    fn request_lines_over_the_limit_are_414_before_they_end(
        extra in 1usize..20_000,
        filler in prop::sample::select(vec![b'a', b'/', b'%', b' ', 0u8]),
    ) {
        let mut line = b"GET /".to_vec();
        line.resize(MAX_REQUEST_LINE + extra, filler);
        prop_assert_eq!(request::check_partial(&line), Err(HeadError::UriTooLong));
        prop_assert_eq!(request::check_partial(&line[..MAX_REQUEST_LINE]), Ok(()));
        line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        prop_assert_eq!(request::parse(&line).unwrap_err(), HeadError::UriTooLong);
    }

    /// Framing is never ambiguous: any mix of `Content-Length` and
    /// `Transfer-Encoding` is refused; `Content-Length` values are accepted
    /// only when they all agree, and only when they fit in 64 bits.
    #[test]
    fn framing_headers_are_accepted_only_when_unambiguous(
        lengths in prop::collection::vec(prop_oneof![
            3 => (0u64..5).prop_map(|n| n.to_string()),
            1 => any::<u64>().prop_map(|n| n.to_string()),
            1 => "[0-9]{20,30}",
            1 => "[+-]?[0-9a-f ]{1,5}",
        ], 0..4),
        chunked in any::<bool>(),
    ) {
        let mut head = String::from("POST /register HTTP/1.1\r\nHost: t\r\n");
        for value in &lengths {
            head.push_str(&format!("Content-Length: {value}\r\n"));
        }
        if chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        head.push_str("\r\n");
        let parsed = request::parse(head.as_bytes()).map(|r| r.framing);
        let numbers: Vec<Option<u64>> = lengths
            .iter()
            .map(|v| v.trim())
            .map(|v| v.bytes().all(|b| b.is_ascii_digit()).then(|| v.parse().ok()).flatten())
            .collect();
        let expected = match (numbers.first(), chunked) {
            (Some(_), true) => None,
            (None, true) => Some(Framing::Chunked),
            (None, false) => Some(Framing::None),
            (Some(first), false) => match first {
                Some(n) if numbers.iter().all(|m| *m == Some(*n)) => Some(Framing::Length(*n)),
                _ => None,
            },
        };
        match expected {
            Some(framing) => prop_assert_eq!(parsed, Ok(framing)),
            None => prop_assert!(matches!(parsed, Err(HeadError::Malformed(_))), "{:?}", parsed),
        }
    }

    /// Arbitrary bytes decode to the same outcome whole or in pieces, without
    /// panicking, and a body that is cut short is reported as incomplete with
    /// the same bytes so far.
    #[test]
    fn arbitrary_chunked_input_decodes_the_same_whatever_the_split(
        input in prop_oneof![
            http_ish_bytes(1024),
            prop::collection::vec(prop::sample::select(b"0123456789abcdefABCDEF;= \t\r\nxX".to_vec()), 0..512),
        ],
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        prop_assert_eq!(decode_in_pieces(&input, &cuts), decode_in_pieces(&input, &[]));
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
        prop_assert!(matches!(decode_in_pieces(&input, &cuts), Decoded::Refused(_)));
    }
}
