//! Chat over WebSocket: the handshake ([`upgrade`]), one task per connection
//! ([`session`]), the room every connection subscribes to ([`hub`]), the
//! events it carries ([`event`]) and the per-connection message rate
//! ([`limit`]).
//!
//! The path of a chat message: session reads a text frame -> rate and size
//! checks -> the database writer commits it -> right after the commit, on the
//! writer thread, the hub serializes the event once and queues it for every
//! connection -> each session's writer drains its own queue to its socket.

pub mod event;
pub mod hub;
pub mod limit;
pub mod session;
pub mod upgrade;
