//! Backups of the SQLite file: a copy of one instant, taken on a read
//! connection while the server runs, and what a copy holds.
//!
//! The copy is SQLite's online backup in a single step: every page is read
//! inside one read transaction, so the copy is the database as of that
//! transaction's start. In WAL mode a reader never blocks the writer, so
//! the room goes on committing meanwhile; only the checkpoint waits for the
//! copy to finish.

use std::path::Path;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::{settings, DbError};

/// What a database holds, as a backup's manifest records it.
pub(crate) struct Contents {
    pub schema_version: i64,
    pub epoch: Option<String>,
    /// 0 when there is no message.
    pub newest_message_id: i64,
    pub users: i64,
    pub messages: i64,
    /// Every file row: its id and the sha256 recorded at upload.
    pub files: Vec<(String, String)>,
}

/// Copies the database at `db`, as of one instant, into the new file `out`,
/// which is left as one self-contained file (no write-ahead log).
pub(crate) fn snapshot(db: &Path, out: &Path) -> Result<(), DbError> {
    let source = open_read_only(db)?;
    let mut copy = Connection::open_with_flags(
        out,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    {
        let backup = Backup::new(&source, &mut copy)?;
        // -1: all pages in one step, so in one read transaction.
        while backup.step(-1)? != StepResult::Done {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// What the database at `path` holds (see [`Contents`]).
pub(crate) fn contents(path: &Path) -> Result<Contents, DbError> {
    let conn = open_read_only(path)?;
    let count = |sql: &str| -> Result<i64, DbError> { Ok(conn.query_row(sql, [], |row| row.get(0))?) };
    let mut statement = conn.prepare("SELECT id, sha256 FROM files ORDER BY seq")?;
    let files = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Contents {
        schema_version: conn.pragma_query_value(None, "user_version", |row| row.get(0))?,
        epoch: settings::epoch(&conn)?,
        newest_message_id: count("SELECT coalesce(max(id), 0) FROM messages")?,
        users: count("SELECT count(*) FROM users")?,
        messages: count("SELECT count(*) FROM messages")?,
        files,
    })
}

/// SQLite's `integrity_check` of the file at `path`: the problems it finds,
/// none if the file is sound.
pub(crate) fn integrity_problems(path: &Path) -> Result<Vec<String>, DbError> {
    let conn = open_read_only(path)?;
    let mut statement = conn.prepare("PRAGMA integrity_check")?;
    let lines: Vec<String> = statement.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
    Ok(lines.into_iter().filter(|line| line != "ok").collect())
}

/// Gives the database at `path` (not open elsewhere) a new epoch, and
/// returns it.
pub(crate) fn renew_epoch(path: &Path) -> Result<String, DbError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    settings::renew_epoch(&conn)
}

/// Never creates the file: a wrong path is an error, not a new database.
fn open_read_only(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::db::Db;

    #[tokio::test]
    async fn a_snapshot_is_one_file_with_the_rows_and_a_new_epoch_can_be_set() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let db = Db::open(&live, Synchronous::Normal).unwrap();
        let old = db.epoch().await.unwrap();
        let copy = dir.path().join("copy.db");
        snapshot(&live, &copy).unwrap();
        assert!(!dir.path().join("copy.db-wal").exists());
        let contents = contents(&copy).unwrap();
        assert_eq!(
            (
                contents.schema_version,
                contents.epoch.as_deref(),
                contents.newest_message_id
            ),
            (2, Some(old.as_str()), 0)
        );
        assert!(integrity_problems(&copy).unwrap().is_empty());
        let new = renew_epoch(&copy).unwrap();
        assert_ne!(new, old);
        assert_eq!(super::contents(&copy).unwrap().epoch, Some(new));
        assert!(snapshot(&dir.path().join("missing.db"), &dir.path().join("x.db")).is_err());
    }
}
