//! Resuming a chat socket: `?after_id=N` (with `?epoch=E`) replays every
//! stored message after `N`, `?last=K` the `K` newest, and then the socket
//! goes live, every message reaching it exactly once and in ascending id.
//!
//! # Why the seam between replay and live has no gap and no twin
//!
//! Three facts of the room make it so:
//!
//! 1. messages are committed by the one writer thread, in id order, and
//!    each is broadcast by its commit hook on that thread after its commit
//!    (the writer commits a batch, then runs the batch's hooks in order):
//!    broadcasts happen in id order, and a message's broadcast comes after
//!    its commit - possibly well after, when a read sees it in between;
//! 2. a read started after a commit sees that commit, and a read sees a
//!    prefix of the commits (a new read transaction in WAL mode sees every
//!    transaction committed before it began, and nothing else);
//! 3. a connection that joins the hub *held* ([`Hub::connect`]) gets every
//!    event broadcast after its join, in broadcast order, kept aside until
//!    it is released.
//!
//! The session joins held at instant `J`, and only then reads storage (the
//! read starts at `R > J`). The replay is that read: every committed message
//! above `N` (the client's `after_id`), ascending; let `T` be the greater of
//! `N` and the newest id it holds. The release ([`Outbox::release`]) sets
//! `T` as the outbox's floor for good: every message with an id up to `T`,
//! held or broadcast later, is dropped, and the others pass in broadcast
//! order. The socket is sent the replay (ids in `N+1..=T`), then the
//! messages broadcast after `J` with ids above `T`, ascending by (1). No
//! message is sent twice: the two parts do not overlap.
//!
//! None is missed: take a message `m > N`. If `m <= T`, the read saw every
//! message up to its newest one, by (2) and (1) (a prefix of commits, made in
//! id order), so `m` is in the replay. If `m > T`, the read did not see `m`,
//! so `m` was committed after `R`, hence after `J`, and by (1) broadcast
//! after `J`: by (3) the outbox gets it, and it is above the floor.
//!
//! When the read is cut short (more than [`MAX_REPLAY`] missed, or another
//! epoch) the client is sent `resync` with `latest_id`, read after `J`, and
//! `T` is that id: the live stream goes on right after what the client is
//! told to load over `/history`, by the same argument.
//!
//! [`Hub::connect`]: super::hub::Hub::connect
//! [`Outbox::release`]: super::hub::Outbox::release

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::events::{self, Event};
use super::room::Room;
use crate::api::paging;
use crate::api::ApiError;
use crate::db::DbError;
use crate::http::form;

/// Most messages replayed to a socket; more than that missed is a `resync`.
pub(crate) const MAX_REPLAY: u32 = 1000;
/// The largest `?last=`.
const MAX_LAST: i64 = 100;

/// Catch-ups running at once at most. A reconnect storm queues here, in
/// arrival order, instead of overflowing the reader threads' queue (which
/// refuses at once) and failing sockets that only had to wait.
static READS: Semaphore = Semaphore::const_new(256);

/// A socket's turn to catch up (see [`Resume::turn`]).
pub(crate) type Turn = Option<SemaphorePermit<'static>>;

/// What a new socket gets before it goes live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Nothing: live messages only.
    Live,
    /// Every stored message with an id above `id`, if `epoch` (when given)
    /// is the database's.
    After { id: i64, epoch: Option<String> },
    /// The newest messages, this many.
    Last(u32),
}

/// What the socket is sent before its live events.
pub(crate) struct CatchUp {
    /// Encoded `message` events, ascending, or one `resync` event.
    pub events: Vec<Utf8Bytes>,
    /// The newest message id the catch-up accounts for: live messages up to
    /// it are dropped (see the module's note).
    pub through: i64,
}

/// Reads `after_id`, `epoch` and `last` from the handshake's query; every
/// other parameter is ignored. 422 for a bad value or both forms at once.
pub(crate) fn parse(query: &str) -> Result<Resume, ApiError> {
    let after = paging::number(query, "after_id")?;
    let last = paging::number(query, "last")?;
    match (after, last) {
        (Some(_), Some(_)) => Err(ApiError::unprocessable("give either 'after_id' or 'last', not both")),
        (Some(id), None) => Ok(Resume::After {
            id,
            epoch: form::get(query, "epoch").map(String::from),
        }),
        (None, Some(k)) if (1..=MAX_LAST).contains(&k) => Ok(Resume::Last(k as u32)),
        (None, Some(_)) => Err(ApiError::unprocessable("'last' must be from 1 to 100")),
        (None, None) => Ok(Resume::Live),
    }
}

impl Resume {
    /// Waits for this socket's turn to catch up (none is needed to go live
    /// only). It is taken before the session joins the room, and held until
    /// its catch-up is read: the join-to-release window, in which live
    /// events are held (up to the outbox's bound), then lasts one read, not
    /// the wait of a reconnect storm.
    pub(crate) async fn turn(&self) -> Turn {
        match self {
            Resume::Live => None,
            _ => READS.acquire().await.ok(),
        }
    }

    /// Reads what the socket must be sent before it goes live; `None` for
    /// [`Resume::Live`]. Must run after the session joined the hub held,
    /// within its [`turn`](Resume::turn).
    pub(crate) async fn catch_up(&self, room: &Room, epoch: &str) -> Result<Option<CatchUp>, DbError> {
        let rows = match self {
            Resume::Live => return Ok(None),
            Resume::After {
                epoch: Some(theirs), ..
            } if theirs != epoch => return resync(room).await.map(Some),
            Resume::After { id, .. } => {
                let rows = room.after(*id, MAX_REPLAY + 1).await?;
                if rows.len() > MAX_REPLAY as usize {
                    return resync(room).await.map(Some);
                }
                rows
            }
            Resume::Last(k) => {
                let mut rows = room.newest(*k).await?;
                rows.reverse();
                rows
            }
        };
        let from = match self {
            Resume::After { id, .. } => *id,
            _ => 0,
        };
        Ok(Some(CatchUp {
            events: rows.iter().map(events::message).collect(),
            through: rows.last().map_or(from, |newest| newest.id.max(from)),
        }))
    }
}

/// `resync` with the newest id, read now: the client loads history up to
/// it, and the live stream carries on after it.
async fn resync(room: &Room) -> Result<CatchUp, DbError> {
    let latest_id = room.newest(1).await?.first().map_or(0, |newest| newest.id);
    Ok(CatchUp {
        events: vec![Event::Resync { latest_id }.encode()],
        through: latest_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_picks_one_form_and_refuses_bad_values() {
        assert_eq!(parse("").unwrap(), Resume::Live);
        assert_eq!(parse("token=x").unwrap(), Resume::Live);
        assert_eq!(parse("after_id=0").unwrap(), Resume::After { id: 0, epoch: None });
        assert_eq!(
            parse("epoch=ab%20c&after_id=12").unwrap(),
            Resume::After {
                id: 12,
                epoch: Some("ab c".into())
            }
        );
        assert_eq!(parse("last=1").unwrap(), Resume::Last(1));
        assert_eq!(parse("last=100&epoch=x").unwrap(), Resume::Last(100));
        for bad in [
            "after_id=-1",
            "after_id=x",
            "after_id=",
            "after_id=1.0",
            "last=0",
            "last=101",
            "last=-5",
            "last=ten",
            "after_id=1&last=5",
        ] {
            assert_eq!(parse(bad).unwrap_err().status, 422, "{bad}");
        }
    }
}
