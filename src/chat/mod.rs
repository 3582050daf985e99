//! The chat: one global room over WebSocket, and its history over HTTP.
//!
//! The path of a chat message: the socket ([`socket`]) reads a text frame
//! -> rate ([`limit`]) and size checks -> [`Room::post`](room::Room::post)
//! has storage commit it -> right after the commit, on the writer thread,
//! the room drops its cached newest page ([`cache`]) and the hub ([`hub`])
//! queues the event ([`events`]), encoded once, for every connection -> each
//! socket's writer drains its own queue to its socket.
//!
//! [`upgrade`] decides who may open a socket and how it [`resume`]s;
//! [`history`] serves the pages. In cluster mode, `presence` counts the
//! users of every node.

pub(crate) mod cache;
pub(crate) mod events;
pub(crate) mod history;
pub(crate) mod hub;
pub(crate) mod limit;
#[cfg(feature = "postgres")]
pub(crate) mod presence;
pub(crate) mod resume;
pub(crate) mod room;
pub(crate) mod socket;
pub(crate) mod upgrade;

use std::sync::Arc;

use crate::shutdown::Shutdown;

/// What the chat's routes need: the room, and the settings of its sockets.
pub struct Chat {
    pub room: Arc<room::Room>,
    /// Messages a second per connection (`--ws-rate-limit`); 0 is no limit.
    pub rate_limit: u32,
    /// The buckets each user's connections share (off when `rate_limit` is 0).
    pub(crate) user_rates: Arc<limit::UserRates>,
    pub shutdown: Shutdown,
    /// The database's epoch (see [`Db::epoch`](crate::db::Db::epoch)), read
    /// at start-up: only a restore changes it, and a restore runs with the
    /// server stopped.
    pub epoch: Arc<str>,
}
