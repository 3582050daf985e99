//! Cluster mode: the one way a node follows what the other nodes wrote
//! into a table (the sessions they opened, refreshed and revoked; the files
//! they deleted) by polling for the rows stamped since its previous poll.
//!
//! The stamps are the writing node's clock, which may run behind this
//! one's, so each poll reaches back [`CLOCK_SKEW_MS`] further than the
//! previous one: whatever a poll applies must therefore be idempotent. A
//! poll that fails is retried from the same point at the next tick
//! ([`Polls`]).

use std::time::Duration;

use super::DbError;
use crate::clock::{self, Timestamp};
use crate::log::Level;
use crate::shutdown::Shutdown;

/// How often a node polls: a change on one node reaches the others within
/// about this, well within the contract's 2 s.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// How far each poll reaches back beyond the previous one. Keep the nodes'
/// clocks within this of each other (NTP).
pub(crate) const CLOCK_SKEW_MS: i64 = 10_000;

/// The polls of one follower:
///
/// ```text
/// let mut polls = Polls::new(shutdown);
/// while let Some(since) = polls.next().await {
///     let read = /* read and apply the rows stamped at or after `since` */;
///     polls.done(read, "what was read");
/// }
/// ```
pub(crate) struct Polls {
    tick: tokio::time::Interval,
    shutdown: Shutdown,
    /// Where the next poll reads from.
    since: i64,
    /// Where the poll after it will, if this one succeeds.
    next: i64,
}

impl Polls {
    pub(crate) fn new(shutdown: Shutdown) -> Polls {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let since = clock::now_millis() - CLOCK_SKEW_MS;
        Polls {
            tick,
            shutdown,
            since,
            next: since,
        }
    }

    /// Waits for the next poll, and tells where it reads from; `None` once
    /// the server shuts down.
    pub(crate) async fn next(&mut self) -> Option<Timestamp> {
        tokio::select! {
            _ = self.tick.tick() => {}
            _ = self.shutdown.triggered() => return None,
        }
        self.next = clock::now_millis() - CLOCK_SKEW_MS;
        Some(Timestamp(self.since))
    }

    /// How the poll went: a success moves the next one on; a failure is
    /// logged (`what` not read) and the next poll reads from the same point.
    pub(crate) fn done(&mut self, read: Result<(), DbError>, what: &str) {
        match read {
            Ok(()) => self.since = self.next,
            Err(e) => crate::log!(Level::Warn, "{what} not read: {e}"),
        }
    }
}
