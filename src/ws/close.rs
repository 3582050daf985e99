//! The closes the server starts, with the code and the `error` event of the
//! contract for each, and the close that a tungstenite error calls for.

use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::Error as WsError;

/// A close started by the server: the code, and the `error` event that
/// goes before it (its detail is also the close reason, at most 123 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub error: &'static str,
    pub detail: &'static str,
}

impl Close {
    pub const SHUTDOWN: Close = Close::new(1001, "server_shutdown", "the server is shutting down");
    pub const PROTOCOL: Close = Close::new(1002, "protocol_error", "WebSocket protocol violation");
    pub const BINARY: Close = Close::new(1003, "binary_not_supported", "only text frames are supported");
    pub const INVALID_UTF8: Close = Close::new(1007, "invalid_utf8", "text frame is not valid UTF-8");
    pub const RATE: Close = Close::new(1008, "rate_limited", "too many messages for too long");
    pub const TOO_LARGE: Close = Close::new(1009, "message_too_large", "frame or message over 64 KiB");
    pub const INTERNAL: Close = Close::new(1011, "internal_error", "the message could not be stored");
    pub const STORAGE_LOST: Close =
        Close::new(1011, "internal_error", "the database is unavailable; reconnect shortly");
    pub const EXPIRED: Close = Close::new(4001, "token_expired", "the token expired; reconnect with a new one");
    pub const SLOW_CONSUMER: Close = Close::new(4002, "slow_consumer", "too far behind; dropped");
    pub const REVOKED: Close = Close::new(4003, "session_revoked", "the session was revoked; log in again");

    const fn new(code: u16, error: &'static str, detail: &'static str) -> Close {
        Close { code, error, detail }
    }

    /// The close that what tungstenite reports, reading or writing, calls
    /// for; `None` when the connection is gone and nothing more can be said.
    /// A full write buffer means the client has stopped reading what it is
    /// sent (pongs to its own ping flood, say) while tungstenite already
    /// holds as much for it as it may: it is as far behind as a slow
    /// consumer whose queue overflowed.
    pub fn for_error(error: &WsError) -> Option<Close> {
        match error {
            WsError::WriteBufferFull(_) => Some(Close::SLOW_CONSUMER),
            WsError::Capacity(_) => Some(Close::TOO_LARGE),
            WsError::Utf8(_) => Some(Close::INVALID_UTF8),
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)
            | WsError::ConnectionClosed
            | WsError::AlreadyClosed
            | WsError::Io(_) => None,
            WsError::Protocol(_) => Some(Close::PROTOCOL),
            _ => Some(Close::INTERNAL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_in_a_control_frame() {
        for close in [
            Close::SHUTDOWN,
            Close::PROTOCOL,
            Close::BINARY,
            Close::INVALID_UTF8,
            Close::RATE,
            Close::TOO_LARGE,
            Close::INTERNAL,
            Close::EXPIRED,
            Close::SLOW_CONSUMER,
            Close::REVOKED,
        ] {
            assert!(close.detail.len() <= 123, "{close:?}");
        }
    }
}
