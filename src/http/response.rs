//! Responses as handlers build them, and the encoding of their heads. Every
//! response carries `Date` and a `Content-Length`: bodies are either bytes in
//! memory or a byte range of an open file, so the length is always known.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::{clock, descriptors, json};

/// Takes over the connection after a `101 Switching Protocols`, with any bytes
/// the client sent after its handshake.
pub(crate) type Upgrade = Box<dyn FnOnce(TcpStream, Vec<u8>) -> Upgraded + Send>;

/// The protocol a connection switched to, run to its end.
pub(crate) type Upgraded = Pin<Box<dyn Future<Output = ()> + Send>>;

pub enum Body {
    Bytes(Bytes),
    /// `len` bytes of `file` from `offset`, streamed without loading them.
    File {
        file: std::fs::File,
        offset: u64,
        len: u64,
        /// Given back once the file is closed.
        descriptor: Descriptor,
    },
}

/// The units of the process's descriptor budget ([`descriptors`]) that a
/// file response holds: the open file, and the duplicate of the socket
/// [`Socket::send_file`](super::socket::Socket::send_file) hands to a
/// blocking thread.
#[derive(Debug)]
pub struct Descriptor {
    _held: descriptors::Held,
}

impl Descriptor {
    /// Counts a file about to be opened; the error says the budget is spent.
    pub(crate) fn take() -> std::io::Result<Descriptor> {
        descriptors::take_for_files(2).map(|held| Descriptor { _held: held })
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
    pub upgrade: Option<Upgrade>,
    /// After this response the connection cannot be trusted to be in sync
    /// (malformed framing, a body left unread): answer, then close.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Bytes::new()),
            upgrade: None,
            close: false,
        }
    }

    /// The one shape of every error the server sends, whether the transport
    /// refused the request or a handler did: `{"detail": "..."}`.
    pub fn detail(status: u16, detail: &str) -> Response {
        #[derive(serde::Serialize)]
        struct Detail<'a> {
            detail: &'a str,
        }
        Response::json(status, &Detail { detail })
    }

    pub fn bytes(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response::new(status)
            .header("Content-Type", content_type)
            .with_body(Body::Bytes(body.into()))
    }

    pub fn json(status: u16, value: &impl serde::Serialize) -> Response {
        Response::bytes(status, "application/json", json::encode(value))
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    pub fn content_length(&self) -> u64 {
        match &self.body {
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// Head and body in one buffer, for a response sent outside the
    /// keep-alive loop (the refusal of a connection over the bound). A file
    /// body is not sent this way.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_head(false, &mut out);
        if let Body::Bytes(body) = &self.body {
            out.extend_from_slice(body);
        }
        out
    }

    /// Writes the status line and headers into `out`. `Content-Length` is
    /// left out of `1xx`, `204` and `304` responses, which have no body.
    pub fn encode_head(&self, keep_alive: bool, out: &mut Vec<u8>) {
        use std::io::Write;
        let _ = write!(out, "HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        let _ = write!(out, "Date: {}\r\n", cached_date());
        for (name, value) in &self.headers {
            let _ = write!(out, "{name}: {value}\r\n");
        }
        if !matches!(self.status, 100..=199 | 204 | 304) {
            let _ = write!(out, "Content-Length: {}\r\n", self.content_length());
        }
        if self.upgrade.is_none() && !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The `Date` value changes once a second; formatting it per response would
/// be wasted work on the hot path.
fn cached_date() -> String {
    use std::cell::RefCell;
    thread_local! {
        static CACHE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = clock::now_secs();
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != now {
            *cache = (now, clock::http_date(now));
        }
        cache.1.clone()
    })
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_has_date_length_and_close() {
        let mut out = Vec::new();
        Response::bytes(200, "text/plain", "hi").encode_head(false, &mut out);
        let head = String::from_utf8(out).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\nDate: "));
        assert!(head.contains("\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn no_content_has_no_length() {
        let mut out = Vec::new();
        Response::new(204).encode_head(true, &mut out);
        assert!(!String::from_utf8(out).unwrap().contains("Content-Length"));
    }
}
