//! Presence across the nodes of a cluster (cargo feature `postgres`): the
//! loop that publishes who is connected to this node and reads who is
//! connected elsewhere, so that `online`, `join` and `leave` count users
//! across the cluster.
//!
//! Every [`POLL`] the loop refreshes the node's heartbeat, publishes its
//! set of users when it changed since the last publication that
//! succeeded, then reads the users of the other live nodes and hands them
//! to the [`Hub`], which announces the differences. A user who connects on
//! one node is therefore announced on every other node within two polls
//! (one to publish, one to read) and the round trips, about 1 s; a node
//! killed without a word drops out once its heartbeat is stale
//! (`db::pg::presence::STALE`, 5 s), at the next read after that.
//!
//! While the database is away nothing changes: the hub keeps the last set
//! read, so an outage announces no mass `leave`. Once it is back, the node
//! publishes its whole set again (the database may have lost it, or
//! dropped this node as dead), and trusts what it reads only after
//! [`GRACE`], which gives the other nodes the time to be back and beat:
//! until then their heartbeats are as old as the outage, and they would be
//! taken for dead.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval, Instant, MissedTickBehavior};

use super::hub::Hub;
use crate::db::{Db, DbError};
use crate::log::Level;
use crate::shutdown::Shutdown;

/// How often a node beats, publishes and reads.
const POLL: Duration = Duration::from_millis(500);

/// How long after a failed poll what is read is not trusted yet.
const GRACE: Duration = Duration::from_secs(2);

/// Runs the loop until `shutdown`, then takes the node out of the
/// cluster's presence, so that its users leave the other nodes' count at
/// their next read (its sockets are closed without a `leave` here).
pub(crate) async fn follow_cluster(db: Db, hub: Arc<Hub>, mut shutdown: Shutdown) {
    let mut tick = interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut poll = Poll {
        published: None,
        trusted_from: Instant::now(),
        failing: false,
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.triggered() => break,
        }
        if let Err(e) = poll.run(&db, &hub).await {
            if !poll.failing {
                crate::log!(Level::Warn, "presence: other nodes' users not read (retrying): {e}");
            }
            poll.failing = true;
            poll.published = None;
            poll.trusted_from = Instant::now() + GRACE;
        } else {
            poll.failing = false;
        }
    }
    if let Err(e) = db.withdraw_presence().await {
        crate::log!(Level::Warn, "presence: this node's users not withdrawn: {e}");
    }
}

/// What the loop remembers from one poll to the next.
struct Poll {
    /// The hub's generation of the set last published, if that succeeded.
    published: Option<u64>,
    /// Reads are applied from this instant on (see [`GRACE`]).
    trusted_from: Instant,
    /// Whether the last poll failed: an outage is logged once.
    failing: bool,
}

impl Poll {
    async fn run(&mut self, db: &Db, hub: &Hub) -> Result<(), DbError> {
        let mut local = hub.local_users_since(self.published);
        if local.is_none() && !db.publish_presence(None).await? {
            // Dropped as dead: the whole set goes again.
            local = hub.local_users_since(None);
        }
        if let Some((generation, users)) = local {
            db.publish_presence(Some(users)).await?;
            self.published = Some(generation);
        }
        if Instant::now() >= self.trusted_from {
            hub.set_elsewhere(db.presence_elsewhere().await?);
        }
        Ok(())
    }
}
