//! Cluster mode: files deleted on other nodes leave this node's cached
//! history pages. The listings, downloads and share links read the
//! database on every request, so these caches are the only ones to tell.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::chat::room::Room;
use crate::clock::{self, Timestamp};
use crate::db::Db;
use crate::log::Level;
use crate::shutdown::Shutdown;

/// How often a node asks which files the others deleted,
/// well within the contract's 2 s.
const CLUSTER_POLL: Duration = Duration::from_millis(200);
/// How far each poll reaches back beyond the previous one: `deleted_at` is
/// the clock of the node that deleted, which may run behind this one's.
const CLOCK_SKEW_MS: i64 = 10_000;

/// Runs until shutdown, making this node's room forget the cached history
/// pages that carry a file deleted on any node, as
/// [`delete`](super::catalog::delete) does on the deleting node.
///
/// The polls overlap by [`CLOCK_SKEW_MS`]; a deletion is forgotten once,
/// the first time a poll sees it (`forgotten` holds it while the polls
/// still reach it), and a failed poll is retried from the same point. Once
/// is enough: a page whose read began before [`Room::forget_file`] is not
/// kept, and one whose read began after it reads the database after this
/// poll saw the deletion committed, so without the file.
pub(crate) async fn follow_cluster(db: Db, room: Arc<Room>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(CLUSTER_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut since = clock::now_millis() - CLOCK_SKEW_MS;
    let mut forgotten: HashMap<String, Timestamp> = HashMap::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.triggered() => return,
        }
        let next = clock::now_millis() - CLOCK_SKEW_MS;
        match db.files_deleted_since(Timestamp(since)).await {
            Ok(deleted) => {
                for (id, at) in deleted {
                    if forgotten.insert(id.clone(), at).is_none() {
                        room.forget_file(&id);
                    }
                }
                since = next;
                forgotten.retain(|_, at| at.0 >= since);
            }
            Err(e) => crate::log!(Level::Warn, "files: deletions on other nodes not read: {e}"),
        }
    }
}
