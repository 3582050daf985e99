//! A tiny HTTP/1.1 client over raw TCP: just what the benchmarks need.
//!
//! One `HttpConn` is one keep-alive connection carrying one request at a time
//! (no pipelining). The response head is parsed by a pure function over its
//! text; the body is framed by `Content-Length`, chunked encoding or the end
//! of the connection, and is handed to a callback piece by piece, so a large
//! download is never held whole. Requests with a large body write the head
//! and then the body in as many pieces as the caller likes.

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::{Context, Error, Result};

/// Where the server listens, from `--url http://host[:port]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(url: &str) -> std::result::Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!("'{url}' must be just http://host[:port]"));
        }
        let (host, port) = match rest.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| format!("'{url}' has an unclosed '['"))?;
                match after {
                    "" => (host, None),
                    _ => (host, Some(after.strip_prefix(':').unwrap_or(after))),
                }
            }
            None => match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let port = match port {
            None => 80,
            Some(port) => port.parse().map_err(|_| format!("'{url}' has a bad port '{port}'"))?,
        };
        Ok(Target {
            host: host.to_string(),
            port,
        })
    }

    /// `host:port` as it goes in a `Host` header or a `ws://` URL.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A target resolved once, so that opening thousands of connections never
/// waits on name resolution.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub authority: String,
}

impl Endpoint {
    pub async fn resolve(target: &Target) -> Result<Endpoint> {
        let authority = target.authority();
        let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .context(format!("cannot resolve {authority}"))?
            .next()
            .ok_or_else(|| Error::new(format!("{authority} resolves to no address")))?;
        Ok(Endpoint { addr, authority })
    }

    /// Opens a TCP connection with Nagle off: benchmarks send small
    /// messages and time them.
    pub async fn dial(&self) -> Result<TcpStream> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .context(format!("cannot connect to {}", self.authority))?;
        tcp.set_nodelay(true).context("TCP_NODELAY")?;
        Ok(tcp)
    }
}

/// The text of a request head, ending with the blank line.
pub fn request_head(
    method: &str,
    path: &str,
    authority: &str,
    headers: &[(&str, &str)],
    content_length: Option<u64>,
) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(length) = content_length {
        head.push_str(&format!("Content-Length: {length}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A parsed response head.
#[derive(Debug, PartialEq)]
pub struct Head {
    pub status: u16,
    pub reason: String,
    /// HTTP/1.0 answers close the connection unless they say keep-alive.
    http10: bool,
    pub headers: Vec<(String, String)>,
}

/// How the body after a head is delimited.
#[derive(Debug, PartialEq)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Parses a response head: the status line and the header lines, with or
/// without the final blank line.
pub fn parse_head(text: &str) -> std::result::Result<Head, String> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return Err(format!("not an HTTP/1.x status line: {status_line:?}")),
    };
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| format!("bad status in {status_line:?}"))?;
    let reason = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Head {
        status,
        reason,
        http10,
        headers,
    })
}

impl Head {
    /// The first header of that name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_has(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may carry another request after this response.
    pub fn keeps_alive(&self) -> bool {
        if self.http10 {
            self.header_has("Connection", "keep-alive")
        } else {
            !self.header_has("Connection", "close")
        }
    }

    pub fn framing(&self) -> std::result::Result<Framing, String> {
        if self.status < 200 || self.status == 204 || self.status == 304 {
            return Ok(Framing::Empty);
        }
        if self.header_has("Transfer-Encoding", "chunked") {
            return Ok(Framing::Chunked);
        }
        match self.header("Content-Length") {
            Some(length) => length
                .parse()
                .map(Framing::Length)
                .map_err(|_| format!("bad Content-Length {length:?}")),
            None => Ok(Framing::UntilClose),
        }
    }
}

/// The size on a chunk-size line, ignoring chunk extensions.
pub fn parse_chunk_size(line: &str) -> std::result::Result<u64, String> {
    let size = line.trim_end_matches(['\r', '\n']);
    let size = size.split(';').next().unwrap_or_default().trim();
    u64::from_str_radix(size, 16).map_err(|_| format!("bad chunk size line {line:?}"))
}

/// A whole response, for the small answers of the API.
#[derive(Debug)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .context(format!("HTTP {} answered with a body that is not JSON", self.status()))
    }

    /// "HTTP 409 Conflict: username already taken", for error messages.
    pub fn describe(&self) -> String {
        let detail = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("detail").map(|d| d.to_string()));
        match detail {
            Some(detail) => format!("HTTP {} {}: {detail}", self.status(), self.head.reason),
            None => format!("HTTP {} {}", self.status(), self.head.reason),
        }
    }
}

/// Largest response head and largest whole body read into memory.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: u64 = 64 << 20;

/// One keep-alive HTTP/1.1 connection.
pub struct HttpConn {
    io: BufReader<TcpStream>,
    authority: String,
    reusable: bool,
}

impl HttpConn {
    pub async fn open(endpoint: &Endpoint) -> Result<HttpConn> {
        Ok(HttpConn {
            io: BufReader::with_capacity(64 * 1024, endpoint.dial().await?),
            authority: endpoint.authority.clone(),
            reusable: true,
        })
    }

    /// False once the server said it closes, or a body ran to the end of the
    /// connection: the caller must open a new one for the next request.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Sends a request with a small body and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let length = body.map(|b| b.len() as u64);
        let mut bytes = request_head(method, path, &self.authority, headers, length).into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        self.send(&bytes).await?;
        self.read_response()
            .await
            .map_err(|e| Error::new(format!("{method} {path}: {e}")))
    }

    /// Reads a whole response, whose body must be small.
    pub async fn read_response(&mut self) -> Result<Response> {
        let head = self.read_head().await?;
        let mut body = Vec::new();
        let mut too_big = false;
        self.read_body(&head, |piece| {
            if body.len() as u64 + piece.len() as u64 > MAX_BODY {
                too_big = true;
            } else {
                body.extend_from_slice(piece);
            }
        })
        .await?;
        if too_big {
            return Err(Error::new(format!("response body over {MAX_BODY} bytes")));
        }
        Ok(Response { head, body })
    }

    /// Writes a request head, for a body the caller streams with `send`.
    pub async fn send_head(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: Option<u64>,
    ) -> Result<()> {
        let head = request_head(method, path, &self.authority, headers, content_length);
        self.send(head.as_bytes()).await
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io.get_mut().write_all(bytes).await.context("sending the request")
    }

    /// Reads the next final response head, skipping `100 Continue` and other
    /// interim answers.
    pub async fn read_head(&mut self) -> Result<Head> {
        loop {
            let mut text = Vec::new();
            loop {
                let before = text.len();
                let n = self
                    .io
                    .read_until(b'\n', &mut text)
                    .await
                    .context("reading the response")?;
                if n == 0 {
                    self.reusable = false;
                    return Err(Error::new(match before {
                        0 => "the server closed the connection without answering",
                        _ => "the server closed the connection in the middle of a response head",
                    }));
                }
                if text.len() > MAX_HEAD {
                    return Err(Error::new("response head over 64 KiB"));
                }
                let line = &text[before..];
                if line == b"\r\n" || line == b"\n" {
                    break;
                }
            }
            let text = String::from_utf8_lossy(&text);
            let head = parse_head(&text).map_err(Error::new)?;
            if head.status >= 200 || head.status == 101 {
                self.reusable &= head.keeps_alive();
                return Ok(head);
            }
        }
    }

    /// Reads the body that follows `head`, handing it to `each` in pieces;
    /// returns its length.
    pub async fn read_body(&mut self, head: &Head, mut each: impl FnMut(&[u8])) -> Result<u64> {
        match head.framing().map_err(Error::new)? {
            Framing::Empty => Ok(0),
            Framing::Length(length) => {
                self.pass(length, &mut each).await?;
                Ok(length)
            }
            Framing::Chunked => {
                let mut total = 0;
                loop {
                    let line = self.read_line().await?;
                    let size = parse_chunk_size(&line).map_err(Error::new)?;
                    if size == 0 {
                        while !self.read_line().await?.trim_end().is_empty() {}
                        return Ok(total);
                    }
                    self.pass(size, &mut each).await?;
                    total += size;
                    if !self.read_line().await?.trim_end().is_empty() {
                        return Err(Error::new("chunk not followed by CRLF"));
                    }
                }
            }
            Framing::UntilClose => {
                self.reusable = false;
                let mut total = 0;
                loop {
                    let buf = self.io.fill_buf().await.context("reading the body")?;
                    if buf.is_empty() {
                        return Ok(total);
                    }
                    let n = buf.len();
                    each(buf);
                    self.io.consume(n);
                    total += n as u64;
                }
            }
        }
    }

    /// Hands exactly `length` bytes of body to `each`, straight from the
    /// read buffer.
    async fn pass(&mut self, length: u64, each: &mut impl FnMut(&[u8])) -> Result<()> {
        let mut left = length;
        while left > 0 {
            let buf = self.io.fill_buf().await.context("reading the body")?;
            if buf.is_empty() {
                self.reusable = false;
                return Err(Error::new(format!(
                    "the server closed the connection {left} bytes before the end of a {length}-byte body"
                )));
            }
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            each(&buf[..n]);
            self.io.consume(n);
            left -= n as u64;
        }
        Ok(())
    }

    async fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let n = (&mut self.io)
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut line)
            .await
            .context("reading a chunked body")?;
        if n == 0 || !line.ends_with(b"\n") {
            self.reusable = false;
            return Err(Error::new("chunked body cut short"));
        }
        Ok(String::from_utf8_lossy(&line).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_take_host_and_optional_port() {
        let t = Target::parse("http://127.0.0.1:8001").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8001));
        assert_eq!(t.authority(), "127.0.0.1:8001");
        let t = Target::parse("http://example.test/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.test", 80));
        let t = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9000));
        assert_eq!(t.authority(), "[::1]:9000");
    }

    #[test]
    fn targets_refuse_other_schemes_paths_and_bad_ports() {
        assert!(Target::parse("https://127.0.0.1").is_err());
        assert!(Target::parse("127.0.0.1:8001").is_err());
        assert!(Target::parse("http://127.0.0.1:8001/api").is_err());
        assert!(Target::parse("http://127.0.0.1:http").is_err());
        assert!(Target::parse("http://127.0.0.1:70000").is_err());
        assert!(Target::parse("http://:80").is_err());
        assert!(Target::parse("http://[::1").is_err());
    }

    #[test]
    fn request_heads_carry_host_headers_and_length() {
        let head = request_head(
            "POST",
            "/token",
            "127.0.0.1:8001",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(7),
        );
        assert_eq!(
            head,
            "POST /token HTTP/1.1\r\nHost: 127.0.0.1:8001\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\n"
        );
        assert_eq!(
            request_head("GET", "/", "h:1", &[], None),
            "GET / HTTP/1.1\r\nHost: h:1\r\n\r\n"
        );
    }

    #[test]
    fn heads_parse_status_reason_and_headers() {
        let head =
            parse_head("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\ncontent-length:  12 \r\n\r\n")
                .unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.reason, "Not Found");
        assert_eq!(head.header("Content-Length"), Some("12"));
        assert_eq!(head.framing(), Ok(Framing::Length(12)));
        assert!(head.keeps_alive());
    }

    #[test]
    fn framing_follows_status_and_headers() {
        let framing = |text: &str| parse_head(text).unwrap().framing();
        assert_eq!(framing("HTTP/1.1 204 No Content\r\n"), Ok(Framing::Empty));
        assert_eq!(
            framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n"),
            Ok(Framing::Empty)
        );
        assert_eq!(
            framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(framing("HTTP/1.1 200 OK\r\n"), Ok(Framing::UntilClose));
        assert!(framing("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n").is_err());
    }

    #[test]
    fn keep_alive_depends_on_version_and_connection_header() {
        let alive = |text: &str| parse_head(text).unwrap().keeps_alive();
        assert!(!alive("HTTP/1.1 200 OK\r\nConnection: Close\r\n"));
        assert!(!alive("HTTP/1.0 200 OK\r\n"));
        assert!(alive("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"));
    }

    #[test]
    fn malformed_heads_are_refused() {
        assert!(parse_head("SSH-2.0-OpenSSH\r\n").is_err());
        assert!(parse_head("HTTP/1.1 abc OK\r\n").is_err());
        assert!(parse_head("HTTP/1.1 200 OK\r\nno colon here\r\n").is_err());
        assert!(parse_head("").is_err());
    }

    #[test]
    fn chunk_sizes_are_hex_with_optional_extensions() {
        assert_eq!(parse_chunk_size("1a\r\n"), Ok(26));
        assert_eq!(parse_chunk_size("0;name=value\r\n"), Ok(0));
        assert_eq!(parse_chunk_size("FFFF\n"), Ok(65535));
        assert!(parse_chunk_size("\r\n").is_err());
        assert!(parse_chunk_size("xyz\r\n").is_err());
        assert!(parse_chunk_size("11111111111111111\r\n").is_err());
    }
}
