//! Cluster mode: files deleted on other nodes leave this node's cached
//! history pages. The listings, downloads and share links read the
//! database on every request, so these caches are the only ones to tell.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chat::room::Room;
use crate::clock::Timestamp;
use crate::db::changes::Polls;
use crate::db::Db;
use crate::shutdown::Shutdown;

/// Runs until shutdown, making this node's room forget the cached history
/// pages that carry a file deleted on any node, as
/// [`delete`](super::catalog::delete) does on the deleting node.
///
/// The polls overlap (see [`Polls`]); a deletion is forgotten once,
/// the first time a poll sees it (`forgotten` holds it while the polls
/// still reach it), and a failed poll is retried from the same point. Once
/// is enough: a page whose read began before [`Room::forget_file`] is not
/// kept, and one whose read began after it reads the database after this
/// poll saw the deletion committed, so without the file.
pub(crate) async fn follow_cluster(db: Db, room: Arc<Room>, shutdown: Shutdown) {
    let mut polls = Polls::new(shutdown);
    let mut forgotten: HashMap<String, Timestamp> = HashMap::new();
    while let Some(since) = polls.next().await {
        let read = db.files_deleted_since(since).await.map(|deleted| {
            for (id, at) in deleted {
                if forgotten.insert(id.clone(), at).is_none() {
                    room.forget_file(&id);
                }
            }
            forgotten.retain(|_, at| *at >= since);
        });
        polls.done(read, "files: deletions on other nodes");
    }
}
