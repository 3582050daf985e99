//! The WebSocket handshake (RFC 6455, section 4.2): whether a request is one
//! this server accepts, and the `101` that accepts it. Who may open a socket
//! (the token, the origin) is the route's business, not this file's.

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::http::request::{Method, Request};
use crate::http::response::{Response, Upgrade};

/// Why a request is not a handshake this server accepts.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeError {
    /// No upgrade asked for at all: 426 with `Upgrade: websocket`.
    NotWebSocket,
    /// A version other than 13: 400 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    Malformed(&'static str),
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
}
