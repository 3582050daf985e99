// The RFC 9112 cases, one table for three tests: the integration test
// `tests/rfc9112.rs` sends each over a real socket, and the unit tests of the
// head parser (`src/http/request/tests.rs`) and of the chunked decoder
// (`src/http/chunked/tests.rs`) feed the same bytes at every split. It is
// included as source (`include!`), so it holds items only.

/// Which parser decides a case: the head parser, or (the head being valid)
/// the chunked body decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layer {
    Head,
    Chunked,
}

/// One request as raw bytes, the status it gets and whether the connection
/// stays open after it. A 400, 501 or 505 is the parser's refusal; any other
/// status means both parsers accepted the request and a route answered.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) layer: Layer,
    pub(crate) input: &'static [u8],
    pub(crate) status: u16,
    pub(crate) stays_open: bool,
}

const fn case(name: &'static str, layer: Layer, input: &'static [u8], status: u16, stays_open: bool) -> Case {
    Case {
        name,
        layer,
        input,
        status,
        stays_open,
    }
}

/// The statuses a parser refuses with; anything else is a route's answer.
pub(crate) fn refused_by_parser(status: u16) -> bool {
    matches!(status, 400 | 501 | 505)
}

/// A chunked `POST /register` whose body is `{}` once decoded (a 422 from
/// the route) when its framing is valid.
macro_rules! chunked_register {
    ($body:literal) => {
        concat!(
            "POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
            "Transfer-Encoding: chunked\r\n\r\n",
            $body
        )
        .as_bytes()
    };
}

pub(crate) const CASES: &[Case] = &[
    // Host (RFC 9112 3.2).
    case(
        "one Host",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        200,
        true,
    ),
    case(
        "no Host in HTTP/1.1",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\n\r\n",
        400,
        false,
    ),
    case(
        "no Host in HTTP/1.0",
        Layer::Head,
        b"GET /healthz HTTP/1.0\r\n\r\n",
        200,
        false,
    ),
    case(
        "two Hosts",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        false,
    ),
    case(
        "two equal Hosts",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        400,
        false,
    ),
    case(
        "two Hosts in HTTP/1.0",
        Layer::Head,
        b"GET /healthz HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
        400,
        false,
    ),
    case(
        "Host with a space",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
        400,
        false,
    ),
    case(
        "Host with a path",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n",
        400,
        false,
    ),
    case(
        "Host with user info",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: u@a\r\n\r\n",
        400,
        false,
    ),
    case(
        "Host with a bad port",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: a:8o\r\n\r\n",
        400,
        false,
    ),
    case(
        "Host with two ports",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: a:1:2\r\n\r\n",
        400,
        false,
    ),
    case(
        "Host with an open bracket",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: [::1\r\n\r\n",
        400,
        false,
    ),
    case(
        "Host IPv6 and port",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        200,
        true,
    ),
    case(
        "Host IPv4",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        200,
        true,
    ),
    case(
        "Host percent-escaped",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: a%2Db.example:\r\n\r\n",
        200,
        true,
    ),
    case(
        "Host empty",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost:\r\n\r\n",
        200,
        true,
    ),
    case(
        "Host with whitespace around it",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: \t x:80 \t\r\n\r\n",
        200,
        true,
    ),
    // Absolute form (RFC 9112 3.2.2).
    case(
        "absolute form",
        Layer::Head,
        b"GET http://example.com/healthz HTTP/1.1\r\nHost: example.com\r\n\r\n",
        200,
        true,
    ),
    case(
        "absolute form, upper case, port and query",
        Layer::Head,
        b"GET HTTP://EXAMPLE.COM:80/healthz?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        200,
        true,
    ),
    case(
        "absolute form, https",
        Layer::Head,
        b"GET https://example.com/healthz HTTP/1.1\r\nHost: example.com\r\n\r\n",
        200,
        true,
    ),
    case(
        "absolute form, no path",
        Layer::Head,
        b"GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n",
        200,
        true,
    ),
    case(
        "absolute form, unknown path",
        Layer::Head,
        b"GET http://example.com/nope HTTP/1.1\r\nHost: example.com\r\n\r\n",
        404,
        true,
    ),
    case(
        "absolute form, no Host",
        Layer::Head,
        b"GET http://example.com/healthz HTTP/1.1\r\n\r\n",
        400,
        false,
    ),
    case(
        "absolute form, empty authority",
        Layer::Head,
        b"GET http:///healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    case(
        "absolute form, user info",
        Layer::Head,
        b"GET http://u@example.com/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    case(
        "absolute form, other scheme",
        Layer::Head,
        b"GET ftp://example.com/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    case(
        "asterisk form",
        Layer::Head,
        b"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    // Versions (RFC 9112 2.3).
    case(
        "HTTP/1.2 served as 1.1",
        Layer::Head,
        b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n",
        200,
        true,
    ),
    case(
        "HTTP/1.9 served as 1.1",
        Layer::Head,
        b"GET /healthz HTTP/1.9\r\nHost: x\r\n\r\n",
        200,
        true,
    ),
    case(
        "HTTP/2.0",
        Layer::Head,
        b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        505,
        false,
    ),
    case(
        "HTTP/3.0",
        Layer::Head,
        b"GET /healthz HTTP/3.0\r\nHost: x\r\n\r\n",
        505,
        false,
    ),
    case(
        "HTTP/1.10",
        Layer::Head,
        b"GET /healthz HTTP/1.10\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    case(
        "HTTP/0.9",
        Layer::Head,
        b"GET /healthz HTTP/0.9\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    case(
        "lower-case version",
        Layer::Head,
        b"GET /healthz http/1.1\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    case(
        "no version",
        Layer::Head,
        b"GET /healthz\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    // Methods (RFC 9110 9.1).
    case(
        "unknown method",
        Layer::Head,
        b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        501,
        false,
    ),
    case(
        "lower-case method",
        Layer::Head,
        b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        501,
        false,
    ),
    case(
        "known method, not allowed",
        Layer::Head,
        b"PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        405,
        true,
    ),
    case(
        "TRACE, not allowed",
        Layer::Head,
        b"TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        405,
        true,
    ),
    // Line ends (RFC 9112 2.2).
    case(
        "bare CR, no LF anywhere",
        Layer::Head,
        b"GET /healthz HTTP/1.1\rHost: x\r\r",
        400,
        false,
    ),
    case(
        "bare CR in a field",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: x\rX-A: y\r\n\r\n",
        400,
        false,
    ),
    case(
        "bare CR in the request line",
        Layer::Head,
        b"GET /heal\rthz HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        false,
    ),
    case(
        "bare CR before the blank line",
        Layer::Head,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\rX",
        400,
        false,
    ),
    // Chunked framing (RFC 9112 7.1).
    case(
        "chunked, CRLF lines",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\n\r\n"),
        422,
        true,
    ),
    case(
        "chunked, a trailer field",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nX-Sum: 1\r\n\r\n"),
        422,
        true,
    ),
    case(
        "chunked, an empty trailer value",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nX-Sum:\r\n\r\n"),
        422,
        true,
    ),
    case(
        "chunked, bare LF after the size",
        Layer::Chunked,
        chunked_register!("2\n{}\r\n0\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, bare LF after an extension",
        Layer::Chunked,
        chunked_register!("2;a=b\n{}\r\n0\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, bare LF after the data",
        Layer::Chunked,
        chunked_register!("2\r\n{}\n0\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, bare LF after the last size",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, bare LF ending the trailers",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\n\n"),
        400,
        false,
    ),
    case(
        "chunked, bare LF after a trailer",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nX-Sum: 1\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, bare CR after the data",
        Layer::Chunked,
        chunked_register!("2\r\n{}\rX0\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, a request line as trailer",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nGET /healthz HTTP/1.1\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, a trailer without colon",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nnocolon\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, a folded trailer",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nX-A: 1\r\n folded\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, space before the trailer colon",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nX-A : 1\r\n\r\n"),
        400,
        false,
    ),
    case(
        "chunked, a control byte in a trailer",
        Layer::Chunked,
        chunked_register!("2\r\n{}\r\n0\r\nX-A: 1\x072\r\n\r\n"),
        400,
        false,
    ),
];
