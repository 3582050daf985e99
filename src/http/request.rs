//! The request head: a pure parser from bytes to [`Request`], with no I/O, so
//! it can be tested with every split of its input. It enforces the contract's
//! size limits (request line first, then the whole head) and refuses every
//! framing ambiguity that could let a proxy and this server disagree on where a
//! request ends (request smuggling).

use std::fmt;

/// A request line over this many bytes (without its line ending) is refused
/// with 414.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// A header section (every byte after the request line, up to and including
/// the blank line that ends the head) over this many bytes is refused with 431.
/// It is counted apart from the request line so that a short request line
/// does not leave room for more headers.
pub const MAX_HEADER_SECTION: usize = 16 * 1024;
/// More header fields than this is refused with 431 as well.
const MAX_HEADERS: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// How the body of a request is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    /// The request target exactly as sent (for logs, after redaction).
    pub target: String,
    pub version: u8,
    /// Header names are lower-cased; values keep their bytes (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    pub framing: Framing,
    /// HTTP/1.0 always closes; HTTP/1.1 closes only on `Connection: close`.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(path, _)| path)
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }

    /// The first value of a header (names are matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header (e.g. `Connection`) lists `token`.
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// 414: the request line alone is over [`MAX_REQUEST_LINE`].
    UriTooLong,
    /// 431: the header section is over [`MAX_HEADER_SECTION`] or has too many fields.
    HeadersTooLarge,
    /// 400: anything malformed or ambiguous.
    Malformed(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::UriTooLong => f.write_str("request line is longer than 8 KiB"),
            HeadError::HeadersTooLarge => f.write_str("request headers are larger than 16 KiB"),
            HeadError::Malformed(why) => f.write_str(why),
        }
    }
}

/// Finds the end of a head in `buf`, scanning from `from` (so repeated calls
/// over a growing buffer stay linear). Returns the length of the head.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while let Some(pos) = buf[i..].iter().position(|&b| b == b'\n') {
        let lf = i + pos;
        if lf >= 1 && buf[lf - 1] == b'\n' {
            return Some(lf + 1);
        }
        if lf >= 2 && buf[lf - 1] == b'\r' && buf[lf - 2] == b'\n' {
            return Some(lf + 1);
        }
        i = lf + 1;
    }
    None
}

/// Checks the limits on a head that is not yet complete, so a client cannot
/// make the server buffer more than the limits by never finishing it. The
/// request line is checked first: a long line is 414 even when the headers
/// after it are too large as well.
pub fn check_partial(buf: &[u8]) -> Result<(), HeadError> {
    let lf = buf.iter().position(|&b| b == b'\n');
    let line = &buf[..lf.unwrap_or(buf.len())];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_REQUEST_LINE {
        Err(HeadError::UriTooLong)
    } else if lf.is_some_and(|lf| buf.len() - (lf + 1) > MAX_HEADER_SECTION) {
        Err(HeadError::HeadersTooLarge)
    } else {
        Ok(())
    }
}

/// Parses a complete head (`buf` ends at the blank line found by
/// [`find_head_end`]).
pub fn parse(buf: &[u8]) -> Result<Request, HeadError> {
    check_partial(buf)?;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(httparse::Error::Version) => return Err(HeadError::Malformed("unsupported HTTP version")),
        Err(httparse::Error::Token | httparse::Error::Status | httparse::Error::NewLine) => {
            return Err(HeadError::Malformed("malformed request line"));
        }
        Err(_) => return Err(HeadError::Malformed("malformed header")),
    }
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(HeadError::Malformed("request target must start with '/'"));
    }
    let headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let version = req.version.unwrap_or(1);
    let mut request = Request {
        method: Method::parse(req.method.unwrap_or_default()),
        target: target.to_string(),
        version,
        headers,
        framing: Framing::None,
        keep_alive: version == 1,
        expect_continue: false,
    };
    request.framing = framing(&request)?;
    if version == 1 && request.header_has_token("connection", "close") {
        request.keep_alive = false;
    }
    request.expect_continue = version == 1
        && request
            .header("expect")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
    Ok(request)
}

fn framing(request: &Request) -> Result<Framing, HeadError> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    for (name, value) in &request.headers {
        match name.as_str() {
            "content-length" => {
                for part in value.split(',') {
                    let n = parse_content_length(part.trim())?;
                    if length.is_some_and(|l| l != n) {
                        return Err(HeadError::Malformed("conflicting Content-Length headers"));
                    }
                    length = Some(n);
                }
            }
            "transfer-encoding" => {
                for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                    // `chunked` must be the one and final coding; nothing else is supported.
                    if !coding.eq_ignore_ascii_case("chunked") || chunked {
                        return Err(HeadError::Malformed(
                            "unsupported Transfer-Encoding (only chunked is accepted)",
                        ));
                    }
                    chunked = true;
                }
                transfer_encoding = true;
            }
            _ => {}
        }
    }
    match (length, transfer_encoding) {
        // RFC 9112 6.1: an HTTP/1.0 peer never sends it, so an intermediary
        // may have framed the message differently; refuse rather than guess.
        (_, true) if request.version == 0 => Err(HeadError::Malformed("Transfer-Encoding in an HTTP/1.0 request")),
        (Some(_), true) => Err(HeadError::Malformed("both Content-Length and Transfer-Encoding")),
        (None, true) if !chunked => Err(HeadError::Malformed("empty Transfer-Encoding")),
        (None, true) => Ok(Framing::Chunked),
        (Some(n), false) => Ok(Framing::Length(n)),
        (None, false) => Ok(Framing::None),
    }
}

fn parse_content_length(s: &str) -> Result<u64, HeadError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeadError::Malformed("invalid Content-Length"));
    }
    s.parse()
        .map_err(|_| HeadError::Malformed("Content-Length does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` as the server would, split at every position, and checks
    /// that the head end is found at the same place each time.
    fn head_end_with_every_split(input: &[u8]) -> Option<usize> {
        let whole = find_head_end(input, 0);
        for split in 0..=input.len() {
            let first = find_head_end(&input[..split], 0);
            let found = first.or_else(|| find_head_end(input, split));
            assert_eq!(found, whole, "split at {split}");
        }
        whole
    }

    fn parse_ok(input: &[u8]) -> Request {
        let end = head_end_with_every_split(input).expect("complete head");
        parse(&input[..end]).expect("valid head")
    }

    #[test]
    fn parses_a_simple_get() {
        let req = parse_ok(b"GET /history?offset=5 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path(), "/history");
        assert_eq!(req.query(), "offset=5");
        assert_eq!(req.header("HOST"), Some("x"));
        assert_eq!(req.framing, Framing::None);
        assert!(req.keep_alive);
    }

    #[test]
    fn finds_the_end_of_bare_lf_heads_and_leaves_the_body() {
        let input = b"POST /a HTTP/1.1\nContent-Length: 2\n\nhi";
        let end = head_end_with_every_split(input).unwrap();
        assert_eq!(&input[end..], b"hi");
        assert_eq!(parse(&input[..end]).unwrap().framing, Framing::Length(2));
    }

    #[test]
    fn http10_closes_and_connection_close_is_honoured() {
        assert!(!parse_ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(!parse_ok(b"GET / HTTP/1.1\r\nConnection: foo, Close\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue_is_recognised_on_http11_only() {
        assert!(parse_ok(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
        assert!(!parse_ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
    }

    #[test]
    fn chunked_and_identical_lengths_are_accepted() {
        assert_eq!(
            parse_ok(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").framing,
            Framing::Chunked
        );
        let req = parse_ok(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(req.framing, Framing::Length(5));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\n\r\n",
            b"G@T / HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let end = find_head_end(head, 0).unwrap();
            assert!(
                matches!(parse(&head[..end]), Err(HeadError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    /// A head with a request line of `line_len` bytes and a header section
    /// (fields and the closing blank line) of exactly `section_len` bytes.
    fn head_of_sizes(line_len: usize, section_len: usize) -> Vec<u8> {
        let path = "a".repeat(line_len - "GET / HTTP/1.1".len());
        let mut head = format!("GET /{path} HTTP/1.1\r\n").into_bytes();
        let mut fields = section_len - 2;
        while fields > 0 {
            // `X-F: v..v\r\n` is 7 bytes and its value; the last field keeps at least 8.
            let line = if fields > 208 { 200 } else { fields };
            head.extend_from_slice(format!("X-F: {}\r\n", "v".repeat(line - 7)).as_bytes());
            fields -= line;
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    #[test]
    fn request_line_limit_is_exact_and_checked_first() {
        assert!(parse(&head_of_sizes(MAX_REQUEST_LINE, 2)).is_ok());
        assert_eq!(
            parse(&head_of_sizes(MAX_REQUEST_LINE + 1, 2)).unwrap_err(),
            HeadError::UriTooLong
        );
        // A long line is 414 even with a header section that is too large too.
        assert_eq!(
            parse(&head_of_sizes(MAX_REQUEST_LINE + 1, MAX_HEADER_SECTION + 1)).unwrap_err(),
            HeadError::UriTooLong
        );
        // Before the line ends, its length alone decides.
        let partial = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
        assert_eq!(check_partial(partial.as_bytes()), Err(HeadError::UriTooLong));
        assert_eq!(check_partial(&partial.as_bytes()[..MAX_REQUEST_LINE]), Ok(()));
    }

    #[test]
    fn header_section_limit_is_exact_and_independent_of_the_request_line() {
        for line in [16, MAX_REQUEST_LINE] {
            assert!(parse(&head_of_sizes(line, MAX_HEADER_SECTION)).is_ok(), "line {line}");
            assert_eq!(
                parse(&head_of_sizes(line, MAX_HEADER_SECTION + 1)).unwrap_err(),
                HeadError::HeadersTooLarge,
                "line {line}"
            );
        }
        // A head that never ends is refused once its headers pass the limit.
        let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
        while check_partial(&endless).is_ok() {
            endless.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(check_partial(&endless), Err(HeadError::HeadersTooLarge));
        assert!(endless.len() <= 16 + MAX_HEADER_SECTION + 64);
    }

    #[test]
    fn too_many_header_fields_is_431() {
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            many.extend_from_slice(b"a: b\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many).unwrap_err(), HeadError::HeadersTooLarge);
    }

    #[test]
    fn control_bytes_in_headers_are_refused() {
        for byte in (0u8..0x20).filter(|&b| b != b'\t').chain([0x7f]) {
            let mut head = b"GET / HTTP/1.1\r\nX-A: a".to_vec();
            head.push(byte);
            head.extend_from_slice(b"b\r\n\r\n");
            if let Some(end) = find_head_end(&head, 0) {
                assert!(
                    matches!(parse(&head[..end]), Err(HeadError::Malformed(_))),
                    "byte {byte:#04x}"
                );
            }
        }
    }

    mod random {
        use super::*;
        use proptest::prelude::*;

        /// A valid head and what parsing it must give back.
        #[derive(Debug, Clone)]
        struct Case {
            bytes: Vec<u8>,
            target: String,
            fields: Vec<(String, String)>,
            framing: Framing,
        }

        fn case() -> impl Strategy<Value = Case> {
            let method = prop::sample::select(vec!["GET", "HEAD", "POST", "DELETE", "PATCH"]);
            let target = "/[a-z0-9/._-]{0,20}(\\?[a-z0-9=&%+]{0,20})?";
            let field = ("x-[a-z0-9-]{1,12}", "([!-~]([ -~]{0,30}[!-~])?)?");
            let framing = prop_oneof![
                Just(Framing::None),
                (0u64..=u64::MAX).prop_map(Framing::Length),
                Just(Framing::Chunked)
            ];
            let line_end = prop::sample::select(vec!["\r\n", "\n"]);
            (method, target, prop::collection::vec(field, 0..8), framing, line_end).prop_map(
                |(method, target, fields, framing, eol)| {
                    let mut text = format!("{method} {target} HTTP/1.1{eol}");
                    for (name, value) in &fields {
                        text.push_str(&format!("{name}: {value}{eol}"));
                    }
                    match framing {
                        Framing::None => {}
                        Framing::Length(n) => text.push_str(&format!("Content-Length: {n}{eol}")),
                        Framing::Chunked => text.push_str(&format!("Transfer-Encoding: chunked{eol}")),
                    }
                    text.push_str(eol);
                    Case {
                        bytes: text.into_bytes(),
                        target,
                        fields,
                        framing,
                    }
                },
            )
        }

        /// Feeds `input` in pieces cut at `cuts` as the connection does:
        /// scanning resumes where the previous search stopped.
        fn head_end_in_pieces(input: &[u8], cuts: &[usize]) -> Option<usize> {
            let mut scanned = 0;
            for end in cuts.iter().copied().chain([input.len()]) {
                if let Some(found) = find_head_end(&input[..end], scanned) {
                    return Some(found);
                }
                scanned = end;
            }
            None
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn any_split_of_a_valid_head_parses_the_same(
                case in case(),
                body in prop::collection::vec(any::<u8>(), 0..16),
                cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            ) {
                let mut input = case.bytes.clone();
                input.extend_from_slice(&body);
                let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
                cuts.sort_unstable();
                let end = head_end_in_pieces(&input, &cuts);
                prop_assert_eq!(end, Some(case.bytes.len()));
                let request = parse(&input[..case.bytes.len()]).unwrap();
                prop_assert_eq!(&request.target, &case.target);
                prop_assert_eq!(request.framing, case.framing);
                for (name, value) in &case.fields {
                    prop_assert!(request.headers.contains(&(name.clone(), value.clone())));
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic_the_parser(input in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = check_partial(&input);
                if let Some(end) = find_head_end(&input, 0) {
                    let _ = parse(&input[..end]);
                }
            }
        }
    }
}
