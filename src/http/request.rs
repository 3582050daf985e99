//! The request head: a pure parser from bytes to [`Request`], with no I/O, so
//! it can be tested with every split of its input. It enforces the contract's
//! size limits (request line first, then the whole head) and refuses every
//! framing ambiguity that could let a proxy and this server disagree on where a
//! request ends (request smuggling).

use std::fmt;

/// A request line over this many bytes (without its line ending) is refused
/// with 414.
pub(crate) const MAX_REQUEST_LINE: usize = 8 * 1024;
/// A header section (every byte after the request line, up to and including
/// the blank line that ends the head) over this many bytes is refused with 431.
/// It is counted apart from the request line so that a short request line
/// does not leave room for more headers.
pub(crate) const MAX_HEADER_SECTION: usize = 16 * 1024;
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
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
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
pub(crate) fn check_partial(buf: &[u8]) -> Result<(), HeadError> {
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
pub(crate) fn parse(buf: &[u8]) -> Result<Request, HeadError> {
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
mod tests;
