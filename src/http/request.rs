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

/// The methods of RFC 9110 (and `PATCH`): a route that does not serve one
/// answers 405; any other method is 501 (RFC 9110 9.1) before routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Connect,
    Trace,
}

impl Method {
    /// Methods are case-sensitive (RFC 9110 9.1): `get` is unknown.
    fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            _ => return None,
        })
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
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
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
    /// The request target in origin form (`/path?query`), as sent or, for an
    /// absolute-form target, without its scheme and authority (for routing
    /// and, after redaction, for logs).
    pub target: String,
    /// The authority of an absolute-form target (`GET http://host/path`),
    /// which RFC 9112 3.2.2 puts before the `Host` field.
    pub authority: Option<String>,
    /// The minor version: 0 or 1 (a later 1.x is served as 1.1).
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

    /// The host the request is for: the authority of an absolute-form
    /// target, else the `Host` field (absent only from HTTP/1.0 requests).
    pub fn host(&self) -> Option<&str> {
        self.authority.as_deref().or_else(|| self.header("host"))
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
    /// 501: a method that is not in [`Method`].
    UnknownMethod,
    /// 505: an HTTP major version above 1.
    VersionNotSupported,
    /// 400: anything malformed or ambiguous.
    Malformed(&'static str),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::UriTooLong => f.write_str("request line is longer than 8 KiB"),
            HeadError::HeadersTooLarge => f.write_str("request headers are larger than 16 KiB"),
            HeadError::UnknownMethod => f.write_str("this method is not implemented"),
            HeadError::VersionNotSupported => f.write_str("only HTTP/1.0 and HTTP/1.1 are served"),
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

/// Checks a head that is not yet complete, so that a client cannot make the
/// server buffer more than the limits, or wait for the head timeout, by
/// never finishing it: the size limits, and a CR not followed by LF among
/// the bytes from `from` on (where the previous check stopped), which is
/// 400 at once (RFC 9112 2.2) rather than a line end that never comes. A
/// complete head is not scanned here: the parser refuses a bare CR in it.
pub(crate) fn check_partial(buf: &[u8], from: usize) -> Result<(), HeadError> {
    check_limits(buf)?;
    // A CR at the very end may still be followed by its LF.
    let new = &buf[from.saturating_sub(1)..];
    if new.windows(2).any(|pair| pair[0] == b'\r' && pair[1] != b'\n') {
        return Err(HeadError::Malformed("bare CR in the request head"));
    }
    Ok(())
}

/// The request line is checked first: a long line is 414 even when the
/// headers after it are too large as well.
fn check_limits(buf: &[u8]) -> Result<(), HeadError> {
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
    check_limits(buf)?;
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HeadError::Malformed("incomplete request head")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(httparse::Error::Version) => return parse_other_version(buf),
        Err(httparse::Error::Token | httparse::Error::Status | httparse::Error::NewLine) => {
            return Err(HeadError::Malformed("malformed request line"));
        }
        Err(_) => return Err(HeadError::Malformed("malformed header")),
    }
    let method = Method::parse(req.method.unwrap_or_default()).ok_or(HeadError::UnknownMethod)?;
    let (target, authority) = split_target(req.path.unwrap_or_default())?;
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
        method,
        target,
        authority,
        version,
        headers,
        framing: Framing::None,
        keep_alive: version == 1,
        expect_continue: false,
    };
    check_host(&request)?;
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

/// `httparse` knows HTTP/1.0 and 1.1 only. RFC 9112 2.3: a later 1.x is
/// served as 1.1 (the head is parsed again with its minor digit replaced);
/// a major version above 1 is 505; anything else is no version at all.
fn parse_other_version(buf: &[u8]) -> Result<Request, HeadError> {
    // `httparse` skips empty lines before the request line; so does this.
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
    let line_end = buf[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(buf.len(), |lf| start + lf);
    let line = &buf[start..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version_at = start + line.iter().rposition(|&b| b == b' ').map_or(0, |sp| sp + 1);
    match &buf[version_at..start + line.len()] {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() && *minor > b'1' => {
            let mut as_11 = buf.to_vec();
            as_11[version_at + 7] = b'1';
            parse(&as_11)
        }
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() && *major > b'1' =>
        {
            Err(HeadError::VersionNotSupported)
        }
        _ => Err(HeadError::Malformed("unsupported HTTP version")),
    }
}

/// Splits a request target into its origin form and, for an absolute-form
/// target (RFC 9112 3.2.2, which a server MUST accept), its authority.
fn split_target(target: &str) -> Result<(String, Option<String>), HeadError> {
    if target.starts_with('/') {
        return Ok((target.to_string(), None));
    }
    let rest = ["http://", "https://"]
        .iter()
        .find(|scheme| {
            target
                .get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        })
        .map(|scheme| &target[scheme.len()..])
        .ok_or(HeadError::Malformed("request target must start with '/' or http://"))?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    // An http URI has a host (RFC 9110 4.2.1); user information in it is
    // deprecated and refused here, as a way to hide the real host.
    if authority.is_empty() || !is_valid_host(authority) {
        return Err(HeadError::Malformed("invalid authority in the request target"));
    }
    // An empty path is `/` (RFC 9112 3.2.1), before a query too.
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok((path, Some(authority.to_string())))
}

/// RFC 9112 3.2: an HTTP/1.1 request has exactly one `Host`, an HTTP/1.0
/// request at most one, and its value must be a valid `uri-host [":" port]`
/// (an empty value is valid: a target without an authority).
fn check_host(request: &Request) -> Result<(), HeadError> {
    let mut hosts = request.headers.iter().filter(|(name, _)| name == "host");
    match (hosts.next(), hosts.next()) {
        (None, _) if request.version == 1 => Err(HeadError::Malformed("missing Host header")),
        (Some(_), Some(_)) => Err(HeadError::Malformed("more than one Host header")),
        // Whitespace around a field value is not part of it (RFC 9110 5.5).
        (Some((_, value)), None) if !is_valid_host(value.trim_ascii()) => {
            Err(HeadError::Malformed("invalid Host header"))
        }
        _ => Ok(()),
    }
}

/// `uri-host [":" port]` of RFC 3986: an IP literal in brackets, or a
/// registered name (an IPv4 address is one too) of unreserved characters,
/// sub-delimiters and percent-escapes; the port is digits. One pass over the
/// bytes: a `Host` is checked on every request.
fn is_valid_host(host: &str) -> bool {
    let bytes = host.as_bytes();
    let port = match bytes.strip_prefix(b"[") {
        Some(literal) => match literal.iter().position(|&b| b == b']') {
            Some(end) if end > 0 && literal[..end].iter().all(|&b| is_ip_literal_byte(b)) => &literal[end + 1..],
            _ => return false,
        },
        None => {
            let mut i = 0;
            while i < bytes.len() {
                if REG_NAME[usize::from(bytes[i])] {
                    i += 1;
                } else if bytes[i] == b'%'
                    && bytes
                        .get(i + 1..i + 3)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    i += 3;
                } else {
                    break;
                }
            }
            &bytes[i..]
        }
    };
    match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

fn is_ip_literal_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}

/// The bytes of a registered name besides `%` escapes: RFC 3986
/// `unreserved` and `sub-delims`.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            );
        byte += 1;
    }
    table
};

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
