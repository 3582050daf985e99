//! One chat connection after its `101`, from the first frame to the close:
//! a transport between the socket and the room, which does the rest.
//!
//! The session runs in a task of its own (the upgrade future, spawned by the
//! accept loop), which holds the connection permit until the session is
//! over; it spawns nothing, so nothing outlives it. Within it, a reader and
//! a writer run side by side on the two halves of the socket, raced against
//! the reasons the server may end the session (eviction by the hub,
//! shutdown, the loss of the database in cluster mode, the end of the login
//! session: revoked, or its newest token expired):
//!
//! - the reader takes text frames, applies the rate and size rules and has
//!   each message posted to the room, which broadcasts it after the commit,
//!   so the sender's copy, carrying its `id`, is its acknowledgement;
//! - the writer first sends what a resuming client missed (see
//!   [`resume`](super::resume): the session joined the room held, so live
//!   events wait until the replay is read), then drains the connection's
//!   outbox: it takes every event that is ready, feeds them all and flushes
//!   once, and pings every [`PING_EVERY`].
//!
//! Whatever ends the session, it then leaves the room (quietly if the server
//! is shutting down: its users are not leaving, and must not be told that
//! anyone is), and if the server is the one closing, sends an `error` event
//! saying why, the close frame, and waits (at most [`CLOSE_TIMEOUT`]) for
//! the client to finish the close.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{interval_at, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::events::Event;
use super::hub::{ClientId, Membership, Outbox};
use super::limit::{RateLimit, UserRates, Verdict};
use super::resume::{Resume, Turn};
use super::room::Room;
use super::Chat;
use crate::auth::sessions::{Ended, LiveSession};
use crate::auth::tokens::Claims;
use crate::db::DbError;
use crate::http::socket::linger;
use crate::log::Level;
use crate::metrics::METRICS;
use crate::shutdown::Shutdown;
use crate::ws::close::Close;

/// Longest chat message, in characters, after trimming.
pub(crate) const MAX_MESSAGE_CHARS: usize = 4096;
pub(crate) const PING_EVERY: Duration = Duration::from_secs(30);
/// A peer that sends nothing, not even a pong, for this long is dropped.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// The close handshake, and draining what the client still sends, get this
/// long; shutdown waits for sessions, so it must stay well under
/// [`SHUTDOWN_GRACE`](crate::http::server::SHUTDOWN_GRACE).
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// Bytes read and thrown away after the close frame at most (see [`linger`]).
const DRAIN_LIMIT: usize = 256 * 1024;
/// Kernel send buffer of a chat socket (Linux doubles it for bookkeeping):
/// ample for chat events, small enough that a stalled reader is noticed.
const SEND_BUFFER: u32 = 64 * 1024;
/// Events written between two flushes at most.
const BATCH: usize = 256;
/// Messages of one connection read but not yet committed, at most.
const IN_FLIGHT: usize = 64;

type Socket = WebSocketStream<TcpStream>;
type Sink = SplitSink<Socket, Message>;
type Source = SplitStream<Socket>;
/// A message's commit, resolved once it is durable and broadcast.
type Posting = Pin<Box<dyn Future<Output = Result<(), DbError>> + Send>>;

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client sent a close frame; its answer is already queued.
    ClosedByClient,
    /// The connection broke or went silent: nothing more can be said.
    Gone(Cow<'static, str>),
    Close(Close),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::ClosedByClient => f.write_str("closed the connection"),
            End::Gone(why) => write!(f, "lost the connection ({why})"),
            End::Close(close) => write!(f, "was closed with {} ({})", close.code, close.error),
        }
    }
}

impl End {
    /// See [`Close::for_error`].
    fn from_error(error: WsError) -> End {
        match (Close::for_error(&error), error) {
            (Some(close), _) => End::Close(close),
            (None, WsError::Io(e)) => End::Gone(e.to_string().into()),
            (None, WsError::Protocol(_)) => End::Gone("reset".into()),
            (None, _) => End::Gone("closed".into()),
        }
    }
}

/// What a session needs from the chat, owned, so that it can run after the
/// request that started it is gone.
pub(crate) struct Session {
    room: Arc<Room>,
    shutdown: Shutdown,
    rate_limit: u32,
    user_rates: Arc<UserRates>,
    claims: Claims,
    /// The login session the socket follows through refreshes.
    login: Arc<LiveSession>,
    resume: Resume,
    epoch: Arc<str>,
}

impl Session {
    pub(crate) fn new(chat: &Chat, claims: Claims, login: Arc<LiveSession>, resume: Resume) -> Session {
        Session {
            room: chat.room.clone(),
            shutdown: chat.shutdown.clone(),
            rate_limit: chat.rate_limit,
            user_rates: chat.user_rates.clone(),
            claims,
            login,
            resume,
            epoch: chat.epoch.clone(),
        }
    }

    /// Runs the connection to its end; `leftover` holds any bytes the client
    /// sent right after its handshake.
    pub(crate) async fn run(self, stream: TcpStream, leftover: Vec<u8>) {
        if let Err(e) = bound_send_buffer(&stream) {
            crate::log!(Level::Debug, "chat: cannot bound the send buffer: {e}");
        }
        let socket =
            WebSocketStream::from_partially_read(stream, leftover, Role::Server, Some(crate::ws::config())).await;
        let (mut sink, mut source) = socket.split();
        // Boxed, as the catch-up below: a wait that happens once.
        let turn = Box::pin(self.resume.turn()).await;
        let _open = METRICS.websocket_connections.track();
        let held = self.resume != Resume::Live;
        let Membership { id, outbox } = self.room.join(self.claims.uid, &self.claims.sub, held);
        let login_ended = self.login.ended(self.claims.exp);
        let storage_lost = self.room.storage_lost();
        // Off on SQLite: the branch below is then never polled.
        let watch_storage = storage_lost.is_some();
        let storage_lost = async move {
            if let Some(lost) = storage_lost {
                lost.await;
            }
        };
        let mut shutdown = self.shutdown.clone();
        let end = tokio::select! {
            end = self.read(&mut source, id) => end,
            end = self.send(&mut sink, &outbox, turn) => end,
            _ = outbox.evicted() => End::Close(Close::SLOW_CONSUMER),
            _ = shutdown.triggered() => End::Close(Close::SHUTDOWN),
            () = storage_lost, if watch_storage => End::Close(Close::STORAGE_LOST),
            ended = login_ended => End::Close(match ended {
                Ended::Expired => Close::EXPIRED,
                Ended::Revoked => Close::REVOKED,
            }),
        };
        self.room.leave(id, !self.shutdown.is_triggered());
        let level = if end == End::Close(Close::SLOW_CONSUMER) {
            Level::Warn
        } else {
            Level::Info
        };
        crate::log!(level, "chat: user={} {end}", self.claims.sub);
        // Boxed: the close runs once, and its state would otherwise be part
        // of every session's for its whole life.
        let _ = Box::pin(timeout(CLOSE_TIMEOUT, finish(sink, source, &outbox, end))).await;
    }

    /// Reads frames until the session must end, and says why. It keeps
    /// reading while earlier messages wait for their commit (up to
    /// [`IN_FLIGHT`] of them), so a busy sender fills one group commit
    /// instead of paying a disk sync per message; they are queued in the
    /// order read, so they commit in it. A message read before the session
    /// ends is already queued, so it is still stored and broadcast to the
    /// others even if this connection is gone before its acknowledgement.
    async fn read(&self, source: &mut Source, id: ClientId) -> End {
        let now = Instant::now();
        let mut limit = RateLimit::new(self.rate_limit, self.user_rates.join(self.claims.uid, now), now);
        let mut committing = FuturesOrdered::new();
        loop {
            let frame = tokio::select! {
                biased;
                Some(stored) = committing.next(), if !committing.is_empty() => {
                    if let Err(end) = self.check_stored(stored) {
                        return end;
                    }
                    continue;
                }
                frame = timeout(PEER_TIMEOUT, source.next()), if committing.len() < IN_FLIGHT => frame,
            };
            let text = match frame {
                Err(_) => return End::Gone("no pong in time".into()),
                Ok(None) => return End::Gone("closed".into()),
                Ok(Some(Err(e))) => return End::from_error(e),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Binary(_)))) => return End::Close(Close::BINARY),
                Ok(Some(Ok(Message::Close(_)))) => return End::ClosedByClient,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
            };
            match limit.check(Instant::now()) {
                Verdict::Accept => {}
                Verdict::Refuse => {
                    self.tell(id, "rate_limited", "too many messages, slow down");
                    continue;
                }
                Verdict::Close => return End::Close(Close::RATE),
            }
            let content = text.trim();
            if content.is_empty() {
                self.tell(id, "empty_message", "the message is empty");
                continue;
            }
            if content.chars().count() > MAX_MESSAGE_CHARS {
                self.tell(id, "message_too_long", "a message is at most 4096 characters");
                continue;
            }
            committing.push_back(self.post(content));
        }
    }

    /// Sends the catch-up, if any, releases the held outbox, then writes
    /// live events (see [`write()`]) until the socket fails. The catch-up's
    /// future is boxed: inline, its reads would make every session's state
    /// larger for its whole life, idle ones included.
    async fn send(&self, sink: &mut Sink, outbox: &Outbox, turn: Turn) -> End {
        let caught_up = Box::pin(self.resume.catch_up(&self.room, &self.epoch)).await;
        drop(turn);
        match caught_up {
            Ok(None) => {}
            Ok(Some(mut catch_up)) => {
                outbox.release(catch_up.through);
                if let Err(e) = write_batch(sink, &mut catch_up.events).await {
                    return End::from_error(e);
                }
            }
            Err(e) => {
                crate::log!(
                    Level::Error,
                    "chat: user={} cannot read the replay: {e}",
                    self.claims.sub
                );
                return End::Close(Close::INTERNAL);
            }
        }
        write(sink, outbox).await
    }

    /// A message that could not be stored ends the session with 1011.
    fn check_stored(&self, stored: Result<(), DbError>) -> Result<(), End> {
        stored.map_err(|e| {
            crate::log!(Level::Error, "chat: user={} message not stored: {e}", self.claims.sub);
            End::Close(Close::INTERNAL)
        })
    }

    /// Sends this connection alone an `error` event; it stays open.
    fn tell(&self, id: ClientId, code: &str, detail: &str) {
        self.room.tell(id, Event::Error { code, detail }.encode());
    }

    /// Posts the message to the room, which broadcasts it once committed;
    /// the future resolves then.
    fn post(&self, content: &str) -> Posting {
        let posted = self
            .room
            .post(self.claims.uid, self.claims.sub.clone(), content.to_string());
        Box::pin(async move { posted.await.map(drop) })
    }
}

/// Writes queued events in batches, with a ping every [`PING_EVERY`], until
/// the socket fails.
async fn write(sink: &mut Sink, outbox: &Outbox) -> End {
    let mut ping = interval_at((Instant::now() + PING_EVERY).into(), PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut batch = Vec::new();
    loop {
        let written = tokio::select! {
            () = outbox.next_batch(&mut batch, BATCH) => write_batch(sink, &mut batch).await,
            _ = ping.tick() => sink.send(Message::Ping(Bytes::new())).await,
        };
        // Written and empty: an idle connection keeps no room (see the
        // outbox's `IDLE_ROOM`).
        batch.shrink_to_fit();
        if let Err(e) = written {
            return End::from_error(e);
        }
    }
}

/// Feeds every event of the batch, then flushes once. The events are
/// counted as delivered before they are written, so that a client never
/// sees an event the count does not hold yet.
async fn write_batch(sink: &mut Sink, batch: &mut Vec<Utf8Bytes>) -> Result<(), WsError> {
    METRICS.deliveries.add(batch.len() as u64);
    for event in batch.drain(..) {
        sink.feed(Message::Text(event)).await?;
    }
    sink.flush().await
}

/// Completes the close the way `end` calls for. Events already queued
/// (acknowledgements, `rate_limited` errors) still go out before the
/// server's own close, unless the connection is being dropped for being too
/// far behind.
async fn finish(mut sink: Sink, source: Source, outbox: &Outbox, end: End) {
    let said = match end {
        End::Gone(_) => return,
        End::ClosedByClient => sink.close().await,
        End::Close(close) => {
            let backlog = close != Close::SLOW_CONSUMER;
            goodbye(&mut sink, backlog.then(|| outbox.take_all()), &close).await
        }
    };
    if said.is_err() {
        return;
    }
    if let Ok(mut socket) = sink.reunite(source) {
        // The rest of an oversized frame or a flood cut short may still be
        // arriving: see `linger`. The caller bounds the whole close in time.
        linger(socket.get_mut(), DRAIN_LIMIT).await;
    }
}

/// What is left of the queue (if given), the `error` event, then the close
/// frame.
async fn goodbye(sink: &mut Sink, backlog: Option<VecDeque<Utf8Bytes>>, close: &Close) -> Result<(), WsError> {
    for event in backlog.into_iter().flatten() {
        sink.feed(Message::Text(event)).await?;
    }
    let event = Event::Error {
        code: close.error,
        detail: close.detail,
    };
    sink.feed(Message::Text(event.encode())).await?;
    let frame = CloseFrame {
        code: close.code.into(),
        reason: Utf8Bytes::from_static(close.detail),
    };
    sink.send(Message::Close(Some(frame))).await
}

/// Fixes the socket's kernel send buffer at [`SEND_BUFFER`] instead of
/// letting it grow to megabytes: a client that stops reading then fills its
/// hub queue, and is dropped as a slow consumer, after about a hundred
/// kilobytes of events instead of several megabytes of kernel memory. The
/// option belongs to the socket, so it is set through a duplicate of the
/// descriptor (closed right after) without taking the stream apart.
fn bound_send_buffer(stream: &TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsFd;
    let duplicate = std::net::TcpStream::from(stream.as_fd().try_clone_to_owned()?);
    tokio::net::TcpSocket::from_std_stream(duplicate).set_send_buffer_size(SEND_BUFFER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};

    #[test]
    fn tungstenite_errors_map_to_the_contract_close_codes() {
        let code = |e: WsError| match End::from_error(e) {
            End::Close(close) => Some(close.code),
            _ => None,
        };
        let too_long = CapacityError::MessageTooLong {
            size: 70_000,
            max_size: 65_536,
        };
        assert_eq!(code(WsError::Capacity(too_long)), Some(1009));
        assert_eq!(code(WsError::Utf8("bad".into())), Some(1007));
        assert_eq!(
            code(WsError::WriteBufferFull(Message::Ping(Bytes::new()).into())),
            Some(4002)
        );
        assert_eq!(
            code(WsError::Protocol(ProtocolError::UnmaskedFrameFromClient)),
            Some(1002)
        );
        assert_eq!(code(WsError::Protocol(ProtocolError::ControlFrameTooBig)), Some(1002));
        assert_eq!(
            code(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)),
            None
        );
        assert_eq!(code(WsError::Io(std::io::ErrorKind::BrokenPipe.into())), None);
    }
}
