//! Presence across the nodes of a cluster (cargo feature `postgres`): the
//! loop that publishes who is connected to this node and reads who is
//! connected elsewhere, so that `online`, `join` and `leave` count users
//! across the cluster.
//!
//! Every [`POLL`] the loop refreshes the node's heartbeat with the changes
//! to its set of users since the last publication (the whole set at the
//! start and after any failure), then reads the users of the other live
//! nodes, if any of them changed its set, and hands them to the [`Hub`],
//! which announces the differences. A user who connects on one node is
//! therefore announced on every other node within two polls (one to
//! publish, one to read) and the round trips, about 1 s; a node killed
//! without a word drops out once its heartbeat is stale
//! (`db::pg::presence::STALE`, 5 s), at the next read after that.
//!
//! While the database is away nothing changes: the hub keeps the last set
//! read, so an outage announces no mass `leave`. Once it is back, the node
//! publishes its whole set again (the database may have lost it, or
//! dropped this node as dead), and trusts what it reads only after
//! [`GRACE`], which gives the other nodes the time to be back and beat:
//! until then their heartbeats are as old as the outage, and they would be
//! taken for dead.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{interval, Instant, MissedTickBehavior};

use super::hub::Hub;
use crate::db::presence::PresenceStamp;
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
        read: PresenceStamp::default(),
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
                crate::log!(
                    Level::Warn,
                    "presence: cannot publish or read who is online (retrying): {e}"
                );
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
    /// The set this node last published, with the hub's generation of it:
    /// what the database holds for the node, unless a poll failed since.
    published: Option<(u64, HashMap<i64, String>)>,
    /// What the last read that was applied saw.
    read: PresenceStamp,
    /// Reads are applied from this instant on (see [`GRACE`]).
    trusted_from: Instant,
    /// Whether the last poll failed: an outage is logged once.
    failing: bool,
}

impl Poll {
    async fn run(&mut self, db: &Db, hub: &Hub) -> Result<(), DbError> {
        self.publish(db, hub).await?;
        if Instant::now() >= self.trusted_from {
            if let Some((stamp, elsewhere)) = db.presence_elsewhere(&self.read).await? {
                hub.set_elsewhere(elsewhere);
                self.read = stamp;
            }
        }
        Ok(())
    }

    /// Beats, with the changes to this node's set since the last
    /// publication; the whole set after a failure, at the start, or when
    /// the node was found dropped as dead.
    async fn publish(&mut self, db: &Db, hub: &Hub) -> Result<(), DbError> {
        if let Some((generation, held)) = &self.published {
            let now = hub.local_users_since(Some(*generation));
            let (came, went) = match &now {
                Some((_, users)) => changes(held, users),
                None => (Vec::new(), Vec::new()),
            };
            if db.update_presence(came, went).await? {
                if let Some((generation, users)) = now {
                    self.published = Some((generation, users.into_iter().collect()));
                }
                return Ok(());
            }
        }
        if let Some((generation, users)) = hub.local_users_since(None) {
            db.publish_presence(users.clone()).await?;
            self.published = Some((generation, users.into_iter().collect()));
        }
        Ok(())
    }
}

/// What turns the set `held` into `now`: the users who came, and the ids
/// of those who went.
fn changes(held: &HashMap<i64, String>, now: &[(i64, String)]) -> (Vec<(i64, String)>, Vec<i64>) {
    let came = now.iter().filter(|(id, _)| !held.contains_key(id)).cloned().collect();
    let now: HashSet<i64> = now.iter().map(|(id, _)| *id).collect();
    let went = held.keys().filter(|id| !now.contains(id)).copied().collect();
    (came, went)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_who_came_and_who_went() {
        let held: HashMap<i64, String> = [(1, "ann".to_string()), (2, "bob".to_string())].into();
        let (came, went) = changes(&held, &[(2, "bob".to_string()), (3, "cid".to_string())]);
        assert_eq!((came, went), (vec![(3, "cid".to_string())], vec![1]));
        let (came, went) = changes(&held, &[(2, "bob".to_string()), (1, "ann".to_string())]);
        assert!(came.is_empty() && went.is_empty());
    }
}
