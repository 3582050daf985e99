//! WebSocket as a transport, below the chat: the handshake checks and the
//! `101` ([`handshake`]), the close codes of the contract and how
//! tungstenite's errors map to them ([`close`]), and the settings every
//! server-side socket runs with ([`config`]).

pub(crate) mod close;
pub(crate) mod handshake;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A frame or message over this size closes the connection with 1009.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The tungstenite buffers are what an idle connection costs: the read
/// buffer is allocated up front, so it is kept small, 256 bytes (a chat
/// message is a few dozen; a larger one is read in several steps, and a
/// node holding tens of thousands of idle sockets would otherwise spend a
/// quarter of its memory per connection on this buffer alone); the write
/// buffer grows only while events are waiting for a slow socket, and the
/// chat's writer (`feed`) keeps it near one batch.
pub fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}
