//! Property tests of the streaming multipart parser: however a body is split into
//! reads, the parser reports the same parts and bytes (or the same error) as when it
//! gets the body in one read, and on any bytes at all it neither panics nor stalls.

use chat_server::files::multipart::{boundary_from_content_type, Event, Limits, MultipartError, Parser, PartHeaders};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Each part's headers and bytes, as an upload handler would store them.
type Parts = Vec<(PartHeaders, Vec<u8>)>;
type Parsed = Result<Parts, MultipartError>;

/// Parses `body` split at `cuts` (taken modulo its length; none means one read), the
/// last read with eof, checking that every call makes progress.
fn parse(boundary: &[u8], limits: Limits, body: &[u8], cuts: &[usize]) -> Parsed {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
    points.extend([0, body.len()]);
    points.sort_unstable();
    let reads: Vec<&[u8]> = points.windows(2).map(|pair| &body[pair[0]..pair[1]]).collect();
    let mut parser = Parser::new(boundary, limits);
    let mut parts = Parts::new();
    let mut buffer = Vec::new();
    for (index, read) in reads.iter().enumerate() {
        let eof = index + 1 == reads.len();
        buffer.extend_from_slice(read);
        loop {
            let step = parser.step(&buffer, eof)?;
            let consumed = step.consumed;
            match step.event {
                None => {
                    assert!(!eof, "asked for more input after eof");
                    buffer.drain(..consumed);
                    break;
                }
                Some(Event::End) => return Ok(parts),
                Some(event) => {
                    assert!(consumed > 0, "{event:?} without progress");
                    match event {
                        Event::Part(headers) => parts.push((headers, Vec::new())),
                        Event::Data(bytes) => parts.last_mut().expect("data in a part").1.extend_from_slice(bytes),
                        _ => {}
                    }
                    buffer.drain(..consumed);
                }
            }
        }
    }
    unreachable!("the read with eof ends in End or an error")
}

/// Body bytes, with a bias towards what the parser has to look at twice.
#[derive(Debug, Clone)]
enum Piece {
    Byte(u8),
    /// A prefix of `CRLF--boundary` (of this length modulo its length + 2), or the
    /// whole of it followed by `x`, which keeps it body text.
    Lookalike(usize),
    Text(&'static [u8]),
}

fn pieces(max: usize) -> impl Strategy<Value = Vec<Piece>> {
    let text = prop::sample::select(vec![
        &b"\r\n"[..],
        b"--",
        b"\r\n\r\n",
        b" \t",
        b"Content-Disposition: form-data; name=\"file\"; filename=\"a\"",
        b"Content-Type: text/plain",
        b"; filename*=UTF-8''%E6%9D%B1",
    ]);
    let piece = prop_oneof![
        6 => any::<u8>().prop_map(Piece::Byte),
        2 => prop::sample::select(vec![b'\r', b'\n', b'-', b' ']).prop_map(Piece::Byte),
        2 => any::<usize>().prop_map(Piece::Lookalike),
        1 => text.prop_map(Piece::Text),
    ];
    vec(piece, 0..max)
}

/// The bytes of `pieces`; with `content`, a whole delimiter is always followed by `x`,
/// as the body of a part may hold it only that way.
fn render(pieces: &[Piece], delimiter: &[u8], content: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Byte(byte) => bytes.push(*byte),
            Piece::Lookalike(len) => {
                let len = len % (delimiter.len() + 2);
                bytes.extend_from_slice(&delimiter[..len.min(delimiter.len())]);
                if len > delimiter.len() || (content && len == delimiter.len()) {
                    bytes.push(b'x');
                }
            }
            Piece::Text(text) => bytes.extend_from_slice(text),
        }
    }
    bytes
}

fn delimiter(boundary: &[u8]) -> Vec<u8> {
    [b"\r\n--", boundary].concat()
}

/// Whether `content` would end its part early: it holds a real delimiter, counting the
/// CRLF of the delimiter that follows it.
fn holds_delimiter(content: &[u8], delimiter: &[u8]) -> bool {
    let text = [content, b"\r\n"].concat();
    text.windows(delimiter.len() + 2).any(|window| {
        window.starts_with(delimiter)
            && (matches!(window[delimiter.len()], b' ' | b'\t' | b'\r') || window.ends_with(b"--"))
    })
}

fn boundary() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9A-Za-z'()+_,./:=?-]",
        "[0-9A-Za-z'()+_,./:=?-][0-9A-Za-z'()+_,./:=? -]{0,68}[0-9A-Za-z'()+_,./:=?-]",
    ]
}

#[derive(Debug, Clone)]
struct PartSpec {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    content: Vec<Piece>,
}

fn part() -> impl Strategy<Value = PartSpec> {
    (
        "\\PC{0,12}",
        option::of("\\PC{0,16}"),
        option::of("[a-z]{1,8}/[a-z0-9.+-]{1,12}"),
        pieces(120),
    )
        .prop_map(|(name, filename, content_type, content)| PartSpec {
            name,
            filename,
            content_type,
            content,
        })
}

fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A well-formed body of `parts` between `preamble` and `epilogue`, and what parsing
/// it must give; `None` if a part's content happens to hold a real delimiter.
fn form(boundary: &[u8], preamble: &str, parts: &[PartSpec], epilogue: &[u8]) -> Option<(Vec<u8>, Parts)> {
    let delimiter = delimiter(boundary);
    let mut body = preamble.as_bytes().to_vec();
    let mut expected = Vec::new();
    body.extend_from_slice(if preamble.is_empty() {
        &delimiter[2..]
    } else {
        &delimiter
    });
    for part in parts {
        let content = render(&part.content, &delimiter, true);
        if holds_delimiter(&content, &delimiter) {
            return None;
        }
        body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=");
        body.extend_from_slice(quote(&part.name).as_bytes());
        if let Some(filename) = &part.filename {
            body.extend_from_slice(format!("; filename={}", quote(filename)).as_bytes());
        }
        if let Some(content_type) = &part.content_type {
            body.extend_from_slice(format!("\r\nContent-Type: {content_type}").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(&content);
        body.extend_from_slice(&delimiter);
        let headers = PartHeaders {
            name: Some(part.name.clone()),
            filename: part.filename.clone(),
            content_type: part.content_type.clone(),
        };
        expected.push((headers, content));
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(epilogue);
    Some((body, expected))
}

/// Small limits, so that random bodies reach those errors too.
const SMALL: Limits = Limits {
    max_part_header_bytes: 96,
    max_parts: 3,
};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_forms_parse_the_same_in_any_reads(
        boundary in boundary(),
        preamble in "[a-z \r\n]{0,20}",
        parts in vec(part(), 0..4),
        epilogue in vec(any::<u8>(), 0..20),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let boundary = boundary.as_bytes();
        let Some((body, expected)) = form(boundary, &preamble, &parts, &epilogue) else {
            return Err(TestCaseError::reject("content holds the delimiter"));
        };
        prop_assert_eq!(parse(boundary, Limits::default(), &body, &[]), Ok(expected.clone()));
        prop_assert_eq!(parse(boundary, Limits::default(), &body, &cuts), Ok(expected));
    }

    #[test]
    fn arbitrary_bytes_parse_the_same_in_any_reads(
        body in pieces(400),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let boundary = b"b0und";
        let body = render(&body, &delimiter(boundary), false);
        prop_assert_eq!(parse(boundary, SMALL, &body, &cuts), parse(boundary, SMALL, &body, &[]));
    }

    #[test]
    fn valid_prefix_then_arbitrary_bytes_parse_the_same_in_any_reads(
        parts in vec(part(), 1..4),
        keep in any::<usize>(),
        tail in pieces(200),
        cuts in vec(any::<usize>(), 0..12),
    ) {
        let boundary = b"b0und";
        let delimiter = delimiter(boundary);
        let (mut body, _) = form(boundary, "", &parts, b"").unwrap_or_default();
        body.truncate(keep % (body.len() + 1));
        body.extend_from_slice(&render(&tail, &delimiter, false));
        for limits in [SMALL, Limits::default()] {
            prop_assert_eq!(parse(boundary, limits, &body, &cuts), parse(boundary, limits, &body, &[]));
        }
    }

    #[test]
    fn content_type_parsing_never_panics(value in any::<String>(), boundary in ".{0,80}") {
        let _ = boundary_from_content_type(&value);
        let _ = boundary_from_content_type(&format!("multipart/form-data; boundary={boundary}"));
    }

    #[test]
    fn quoted_boundaries_round_trip(boundary in boundary()) {
        let value = format!("multipart/form-data; boundary=\"{boundary}\"");
        prop_assert_eq!(boundary_from_content_type(&value), Ok(boundary.into_bytes()));
    }
}
