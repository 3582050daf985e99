//! `GET /ws/chat`: the WebSocket handshake (RFC 6455, section 4.2).
//!
//! Everything is decided before the `101`: a request that is not a valid
//! handshake gets 400 (426 if it is a plain GET), a missing or bad token 401,
//! and a cookie-authenticated handshake from a foreign page 403. Browsers
//! send cookies with cross-site WebSocket handshakes and do not apply CORS to
//! them, so without the `Origin` check any page a user visits could chat in
//! their name. A token passed in the query cannot have been attached by the
//! browser on its own, so it is accepted from any origin.

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::session::Session;
use crate::auth::TokenSource;
use crate::config::Config;
use crate::error::ApiError;
use crate::http::request::{Method, Request};
use crate::http::response::{Response, Upgrade};
use crate::router::Exchange;

/// Why a request is not a handshake this server accepts.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// No upgrade asked for at all: 426 with `Upgrade: websocket`.
    NotWebSocket,
    /// A version other than 13: 400 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    Malformed(&'static str),
}

impl HandshakeError {
    pub fn into_response(self) -> Response {
        match self {
            HandshakeError::NotWebSocket => ApiError::new(426, "this endpoint speaks WebSocket only")
                .into_response()
                .header("Upgrade", "websocket"),
            HandshakeError::UnsupportedVersion => {
                ApiError::new(400, "unsupported WebSocket version, only 13 is spoken")
                    .into_response()
                    .header("Sec-WebSocket-Version", "13")
            }
            HandshakeError::Malformed(detail) => ApiError::new(400, detail).into_response(),
        }
    }
}

pub async fn chat(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    let key = match handshake_key(ex.request) {
        Ok(key) => key,
        Err(refused) => return Ok(refused.into_response()),
    };
    let (claims, source) = ex.authenticate_from(true)?;
    if source == TokenSource::Cookie && !origin_allowed(ex.request, &ex.app.config) {
        return Err(ApiError::forbidden(
            "cross-site WebSocket handshake refused: origin not allowed",
        ));
    }
    let session = Session::new(ex.app, claims);
    Ok(switching_protocols(
        key,
        Box::new(move |stream, leftover| Box::pin(session.run(stream, leftover))),
    ))
}

/// The `101` that accepts a handshake whose key is `key`; once it is sent,
/// the connection is handed to `session`.
pub fn switching_protocols(key: &str, session: Upgrade) -> Response {
    let mut response = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", derive_accept_key(key.as_bytes()));
    response.upgrade = Some(session);
    response
}

/// Checks the handshake and returns its `Sec-WebSocket-Key`.
pub fn handshake_key(request: &Request) -> Result<&str, HandshakeError> {
    let wants_upgrade = request.header_has_token("connection", "upgrade");
    if request.header("upgrade").is_none() && !wants_upgrade {
        return Err(HandshakeError::NotWebSocket);
    }
    if request.method != Method::Get || request.version != 1 {
        return Err(HandshakeError::Malformed(
            "a WebSocket handshake is a GET over HTTP/1.1",
        ));
    }
    if !request.header_has_token("upgrade", "websocket") {
        return Err(HandshakeError::Malformed("Upgrade must be websocket"));
    }
    if !wants_upgrade {
        return Err(HandshakeError::Malformed("Connection must include upgrade"));
    }
    if request.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    request
        .header("sec-websocket-key")
        .map(str::trim)
        .filter(|key| is_key(key))
        .ok_or(HandshakeError::Malformed(
            "Sec-WebSocket-Key must be 16 bytes in base64",
        ))
}

/// 16 bytes in base64: 22 characters of the alphabet, then `==`.
fn is_key(key: &str) -> bool {
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/');
    key.len() == 24 && key.ends_with("==") && key.as_bytes()[..22].iter().all(base64)
}

fn origin_allowed(request: &Request, config: &Config) -> bool {
    is_allowed_origin(
        request.header("origin"),
        request.header("host"),
        &config.allowed_origins,
        config.secure_cookies,
    )
}

/// A missing `Origin` (not a browser) is allowed; otherwise it must be the
/// server's own origin (`http://` + `Host`, or `https://` + `Host` behind a
/// TLS proxy, which `--secure-cookies` signals) or one of `allowed`.
fn is_allowed_origin(origin: Option<&str>, host: Option<&str>, allowed: &[String], https: bool) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = normalize(origin);
    if allowed.iter().any(|a| normalize(a) == origin) {
        return true;
    }
    let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
        return false;
    };
    let own = |scheme: &str| normalize(&format!("{scheme}://{host}")) == origin;
    own("http") || (https && own("https"))
}

/// Lower case, no trailing slash, no default port: the form browsers send.
fn normalize(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let default_port = if origin.starts_with("https://") { ":443" } else { ":80" };
    match origin.strip_suffix(default_port) {
        Some(bare) => bare.to_string(),
        None => origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "GET /ws/chat HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

    fn key_of(head: &str) -> Result<String, HandshakeError> {
        let request = crate::http::request::parse(head.as_bytes()).unwrap();
        handshake_key(&request).map(str::to_string)
    }

    #[test]
    fn a_valid_handshake_yields_its_key_and_the_rfc_accept_value() {
        let key = key_of(GOOD).unwrap();
        assert_eq!(derive_accept_key(key.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_plain_get_is_told_to_upgrade() {
        assert_eq!(
            key_of("GET /ws/chat HTTP/1.1\r\nHost: h\r\n\r\n"),
            Err(HandshakeError::NotWebSocket)
        );
        let response = HandshakeError::NotWebSocket.into_response();
        assert_eq!(response.status, 426);
        assert!(response.headers.contains(&("Upgrade", "websocket".to_string())));
    }

    #[test]
    fn broken_handshakes_are_refused() {
        let cases = [
            (GOOD.replace("GET", "POST"), "GET"),
            (GOOD.replace("HTTP/1.1", "HTTP/1.0"), "GET"),
            (GOOD.replace("Upgrade: WebSocket", "Upgrade: h2c"), "Upgrade"),
            (GOOD.replace("keep-alive, Upgrade", "keep-alive"), "Connection"),
            (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="), "Key"),
            (
                GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZ!=="),
                "Key",
            ),
            (
                GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                "Key",
            ),
        ];
        for (head, needle) in cases {
            match key_of(&head) {
                Err(HandshakeError::Malformed(detail)) => assert!(detail.contains(needle), "{detail}"),
                other => panic!("{head:?}: {other:?}"),
            }
        }
        assert_eq!(
            key_of(&GOOD.replace("Version: 13", "Version: 8")),
            Err(HandshakeError::UnsupportedVersion)
        );
    }

    #[test]
    fn origins_are_own_or_listed() {
        let listed = vec!["https://app.example".to_string()];
        let allowed =
            |origin: &str, host: &str, https: bool| is_allowed_origin(Some(origin), Some(host), &listed, https);
        assert!(is_allowed_origin(None, None, &[], false));
        assert!(allowed("http://localhost:8001", "localhost:8001", false));
        assert!(allowed("HTTP://LocalHost:8001/", "localhost:8001", false));
        assert!(allowed("http://chat.example", "chat.example:80", false));
        assert!(allowed("https://app.example:443", "elsewhere", false));
        assert!(!allowed("http://evil.example", "localhost:8001", false));
        assert!(!allowed("http://localhost:8002", "localhost:8001", false));
        assert!(!allowed("null", "localhost:8001", false));
        assert!(!allowed("https://localhost:8001", "localhost:8001", false));
        assert!(allowed("https://localhost:8001", "localhost:8001", true));
        assert!(!is_allowed_origin(Some("http://h"), None, &[], false));
    }
}
