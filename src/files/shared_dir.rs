//! The uploads directory a cluster's nodes share (cargo feature
//! `postgres`): the marker that ties it to its cluster, and the name each
//! node gives its temp files.
//!
//! Every node must be given the same `--uploads-dir`, on storage they all
//! see. A node on another directory would answer 404 for files uploaded on
//! the others and keep its own where they cannot find them; worse, its
//! start-up sweep would have no way to tell whose files it sees. So the
//! first node writes the cluster's id (kept in the database, see
//! `db::pg::cluster`) into [`MARKER`], and every node checks it at start:
//!
//! - marker equal to the cluster's id: the directory is the cluster's;
//! - marker with another id: the directory belongs to another cluster (or
//!   to a database since recreated): refused;
//! - no marker, and the cluster already has an id: the cluster's directory
//!   is elsewhere: refused;
//! - no marker and no id yet: the first node of the cluster. An empty
//!   directory (files that are not uploads, such as a `.gitkeep`, do not
//!   count) is claimed: the marker is written and the id stored. One that
//!   already holds uploads (a single node's, say) is refused, as is any
//!   directory while the database already records files: adopting either
//!   would mix files with no row in this cluster among its own, and the
//!   sweep would delete them.
//!
//! A refusal stops the start with one line naming the directory. The
//! decision is taken under an advisory lock held until the marker is in
//! place, so nodes that start together on one empty directory agree: the
//! first claims it, the others find its marker. The marker is first written
//! under a temporary name and renamed once the id is committed; a crash
//! between the two leaves that file, holding the committed id, and the next
//! start finishes the rename (a directory that was never the cluster's
//! cannot hold the cluster's random id).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use super::store;
use crate::db::Db;
use crate::sync::blocking;
use crate::sys;

/// The marker's name in the uploads directory: the cluster's id and a
/// newline.
pub(crate) const MARKER: &str = ".chat-cluster";
/// The marker until its id is committed.
const MARKER_TEMP: &str = ".chat-cluster.tmp";

/// What a look at the directory found, against the cluster's id.
enum Found {
    /// The cluster's directory.
    Ours,
    /// Not the cluster's: why.
    Foreign(String),
    /// No marker and no cluster id yet: a first node may claim it.
    Unclaimed,
}

/// In cluster mode, checks (or, on the first node, writes) the marker of
/// `dir` and returns the name this node's temp files carry (see
/// [`node_name`]); on SQLite, where one process owns its directory, `None`.
/// An error is one line naming `dir`.
pub(crate) async fn join(db: &Db, dir: &Path, port: u16) -> Result<Option<String>, String> {
    let refused = |why: &dyn std::fmt::Display| {
        format!(
            "uploads directory {} is not this cluster's: {why}; every node must be given the cluster's shared --uploads-dir",
            dir.display()
        )
    };
    let failed = |e: &dyn std::fmt::Display| format!("uploads directory {}: {e}", dir.display());
    let Some(claim) = db.claim_cluster().await.map_err(|e| failed(&e))? else {
        return Ok(None);
    };
    let (owned, stored) = (dir.to_path_buf(), claim.stored.clone());
    match blocking(move || inspect(&owned, stored.as_deref()))
        .await
        .map_err(|e| failed(&e))?
    {
        Found::Ours => drop(claim),
        Found::Foreign(why) => return Err(refused(&why)),
        Found::Unclaimed => {
            if !db.file_ids().await.map_err(|e| failed(&e))?.is_empty() {
                return Err(refused(&format!(
                    "it has no {MARKER}, yet the database already records files; the cluster's directory is elsewhere"
                )));
            }
            let id = store::new_id().map_err(|e| failed(&e))?;
            let (owned, written) = (dir.to_path_buf(), id.clone());
            blocking(move || {
                store::create_private_dir(&owned)?;
                write_durably(&owned.join(MARKER_TEMP), &written)
            })
            .await
            .map_err(|e| failed(&e))?;
            claim.store(&id).await.map_err(|e| failed(&e))?;
            let owned = dir.to_path_buf();
            blocking(move || rename_durably(&owned)).await.map_err(|e| failed(&e))?;
            // Only now may the next node look.
            drop(claim);
        }
    }
    node_name(port).map(Some).map_err(|e| failed(&e))
}

/// Compares the marker of `dir` with `stored`, the cluster's id (`None`
/// while no node has stored one). A directory that does not exist yet is
/// an empty one; it is created only once claimed, so a refused node leaves
/// nothing behind. Blocking.
fn inspect(dir: &Path, stored: Option<&str>) -> io::Result<Found> {
    let found = match (read_id(&dir.join(MARKER))?, stored) {
        (Some(marked), Some(stored)) if marked == stored => Found::Ours,
        (Some(marked), stored) => Found::Foreign(format!(
            "its {MARKER} names cluster {marked}, the database's cluster is {}",
            stored.unwrap_or("not set up yet")
        )),
        (None, Some(stored)) if read_id(&dir.join(MARKER_TEMP))?.as_deref() == Some(stored) => {
            rename_durably(dir)?;
            Found::Ours
        }
        (None, Some(stored)) => Found::Foreign(format!(
            "it has no {MARKER}, and cluster {stored} already has its uploads directory elsewhere"
        )),
        (None, None) if store::holds_uploads(dir)? => Found::Foreign(format!(
            "it has no {MARKER} and already holds uploads (a single node's?)"
        )),
        (None, None) => Found::Unclaimed,
    };
    Ok(found)
}

/// The id in the marker file at `path`, or `None` if there is none.
fn read_id(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `id` to `path` (replacing what is there) and syncs it.
fn write_durably(path: &Path, id: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{id}")?;
    file.sync_all()
}

/// Moves the marker written under its temporary name into place, and syncs
/// the directory so that the rename survives a power cut.
fn rename_durably(dir: &Path) -> io::Result<()> {
    fs::rename(dir.join(MARKER_TEMP), dir.join(MARKER))?;
    File::open(dir)?.sync_all()
}

/// This node's name among the cluster's: its host name and the port it
/// listens on, `<host>_<port>`. It needs no state of its own (a node keeps
/// nothing on local disk) and stays the same across restarts of a node on
/// a fixed port, so a node recognizes the temp files it left behind. Two
/// nodes on one machine cannot listen on one port; nodes on different
/// machines must have different host names. Characters a file name should
/// not hold become `-`.
pub(crate) fn node_name(port: u16) -> io::Result<String> {
    let host: String = sys::hostname()?
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Ok(format!("{host}_{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_named_by_its_host_and_port() {
        let name = node_name(8001).unwrap();
        let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(name, format!("{}_8001", host.trim()));
        assert!(!name.contains('/'));
    }

    #[test]
    fn an_unmarked_directory_is_claimed_only_while_the_cluster_has_none_and_it_holds_no_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("uploads");
        assert!(matches!(inspect(&uploads, None).unwrap(), Found::Unclaimed));
        assert!(!uploads.exists(), "only looked at");
        fs::create_dir(&uploads).unwrap();
        fs::write(uploads.join(".gitkeep"), b"").unwrap();
        assert!(matches!(inspect(&uploads, None).unwrap(), Found::Unclaimed));
        assert!(matches!(inspect(&uploads, Some("c1")).unwrap(), Found::Foreign(why) if why.contains("elsewhere")));
        fs::write(uploads.join(store::new_id().unwrap()), b"").unwrap();
        assert!(matches!(inspect(&uploads, None).unwrap(), Found::Foreign(why) if why.contains("holds uploads")));
    }

    #[test]
    fn a_marked_directory_is_the_cluster_it_names() {
        let dir = tempfile::tempdir().unwrap();
        write_durably(&dir.path().join(MARKER), "c1").unwrap();
        assert!(matches!(inspect(dir.path(), Some("c1")).unwrap(), Found::Ours));
        for other in [Some("c2"), None] {
            assert!(
                matches!(inspect(dir.path(), other).unwrap(), Found::Foreign(why) if why.contains("names cluster c1"))
            );
        }
    }

    #[test]
    fn a_claim_cut_off_before_its_rename_is_finished_by_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        write_durably(&dir.path().join(MARKER_TEMP), "c1").unwrap();
        assert!(matches!(inspect(dir.path(), Some("c2")).unwrap(), Found::Foreign(_)));
        assert!(matches!(inspect(dir.path(), Some("c1")).unwrap(), Found::Ours));
        assert_eq!(read_id(&dir.path().join(MARKER)).unwrap().as_deref(), Some("c1"));
        assert!(!dir.path().join(MARKER_TEMP).exists());
    }
}
