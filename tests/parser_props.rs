//! Property tests of the two HTTP parsers that see raw client bytes first:
//! the request head (`http::request`) and the chunked body decoder
//! (`http::chunked`). Inputs are random, both well-formed (generated heads and
//! encodings, which must come back exactly) and hostile (arbitrary bytes,
//! oversized numbers and lines, which must be refused or wait for more, never
//! panic), and every input is also delivered in random pieces, as TCP may
//! deliver it: the result must not depend on where the reads were split.
//! The multipart parser has its own file, `multipart_props.rs`.

use chat_server::http::chunked::{ChunkedDecoder, ChunkedError};
use chat_server::http::request::{self, Framing, HeadError, Method, MAX_REQUEST_LINE};
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

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}"
}

fn method() -> impl Strategy<Value = (&'static str, Method)> {
    prop::sample::select(vec![
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("PROPFIND", Method::Other),
    ])
}

/// A header field that says nothing about framing or the connection.
fn plain_header() -> impl Strategy<Value = (String, String)> {
    (
        token().prop_filter("framing and connection headers are tested apart", |name| {
            !matches!(
                name.to_ascii_lowercase().as_str(),
                "content-length" | "transfer-encoding" | "connection" | "expect"
            )
        }),
        "[!-~]([ -~]{0,40}[!-~])?",
    )
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

    /// A generated head, followed by body bytes, is found to end at the same
    /// place however it arrives, and parses back to what was generated.
    #[test]
    fn generated_heads_parse_back_whatever_the_split(
        (method_name, method) in method(),
        path in "/[A-Za-z0-9._~/%-]{0,60}",
        query in prop::option::of("[A-Za-z0-9=&%+.-]{0,40}"),
        headers in prop::collection::vec(plain_header(), 0..20),
        bare_lf in any::<bool>(),
        body in http_ish_bytes(64),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let eol = if bare_lf { "\n" } else { "\r\n" };
        let target = match &query {
            Some(query) => format!("{path}?{query}"),
            None => path.clone(),
        };
        let mut head = format!("{method_name} {target} HTTP/1.1{eol}");
        for (name, value) in &headers {
            head.push_str(&format!("{name}: {value}{eol}"));
        }
        head.push_str(eol);
        let mut input = head.clone().into_bytes();
        input.extend_from_slice(&body);
        prop_assert_eq!(head_end_in_pieces(&input, &cuts), Ok(Some(head.len())));
        let parsed = request::parse(head.as_bytes()).unwrap();
        prop_assert_eq!(parsed.method, method);
        prop_assert_eq!(&parsed.target, &target);
        prop_assert_eq!(parsed.path(), path.as_str());
        prop_assert_eq!(parsed.framing, Framing::None);
        prop_assert!(parsed.keep_alive);
        let expected: Vec<(String, String)> =
            headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.clone())).collect();
        prop_assert_eq!(parsed.headers, expected);
    }

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

    /// A body encoded with random chunk sizes, size spellings, extensions,
    /// trailers and line ends decodes to itself and stops at its last byte,
    /// however the encoding arrives.
    #[test]
    fn encoded_bodies_decode_to_themselves_whatever_the_split(
        body in prop::collection::vec(any::<u8>(), 0..3000),
        sizes in prop::collection::vec(1usize..700, 1..12),
        upper in any::<bool>(),
        zeros in 0usize..3,
        extension in prop::option::of("[a-z]{1,8}(=[a-z0-9]{1,8})?"),
        trailers in prop::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,20}"), 0..3),
        bare_lf in any::<bool>(),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let eol: &[u8] = if bare_lf { b"\n" } else { b"\r\n" };
        let mut encoded = Vec::new();
        let mut rest = &body[..];
        let mut size = sizes.iter().cycle();
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at((*size.next().unwrap()).min(rest.len()));
            let digits = if upper { format!("{:X}", chunk.len()) } else { format!("{:x}", chunk.len()) };
            encoded.extend_from_slice("0".repeat(zeros).as_bytes());
            encoded.extend_from_slice(digits.as_bytes());
            if let Some(extension) = &extension {
                encoded.extend_from_slice(format!(";{extension}").as_bytes());
            }
            encoded.extend_from_slice(eol);
            encoded.extend_from_slice(chunk);
            encoded.extend_from_slice(eol);
            rest = after;
        }
        encoded.extend_from_slice(b"0");
        encoded.extend_from_slice(eol);
        for (name, value) in &trailers {
            encoded.extend_from_slice(format!("{name}: {value}").as_bytes());
            encoded.extend_from_slice(eol);
        }
        encoded.extend_from_slice(eol);
        let length = encoded.len();
        encoded.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        prop_assert_eq!(decode_in_pieces(&encoded, &cuts), Decoded::Complete(body, length));
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
