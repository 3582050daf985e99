//! Opening the database file with the pragmas the contract relies on, and
//! bringing its schema up to date.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::DbError;
use crate::config::Synchronous;
use crate::log::Level;
use crate::sys;

/// The schema version `schema.sql` describes.
pub(super) const SCHEMA_VERSION: i64 = 2;
pub(super) const SCHEMA: &str = include_str!("../../schema.sql");

/// What `schema.sql`'s `CREATE ... IF NOT EXISTS` cannot do: the changes to
/// tables that already exist in a database of an older version, each step
/// keyed by the version it starts from. They run in order, before
/// `schema.sql`, in the same transaction, so a database is either wholly
/// migrated or left as it was.
const MIGRATIONS: &[(i64, &str)] = &[(
    1,
    // v2: file messages, and files private until shared. Every v1 file
    // starts private to its uploader.
    "ALTER TABLE messages ADD COLUMN file_id TEXT;
     ALTER TABLE files ADD COLUMN shared INTEGER NOT NULL DEFAULT 0;",
)];

/// SQLite's name for the `synchronous` level.
fn pragma(synchronous: Synchronous) -> &'static str {
    match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    }
}

/// The database holds the token-signing secret, so it is readable by the
/// server's user only (`0600`), whatever the umask: created so before SQLite
/// opens it, or narrowed if it exists with wider permissions. SQLite creates
/// the `-wal` and `-shm` files with the database's own mode; those a crash
/// left behind are narrowed as well.
pub(super) fn make_private(path: &Path) -> Result<(), DbError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let companion = |suffix: &str| {
        let mut name = OsString::from(path.as_os_str());
        name.push(suffix);
        PathBuf::from(name)
    };
    for file in [path.to_path_buf(), companion("-wal"), companion("-shm")] {
        match sys::set_mode(&file, 0o600) {
            Ok(Some(had)) if had & 0o077 != 0 => crate::log!(
                Level::Warn,
                "{} was readable by others (mode {had:04o}): narrowed to 0600",
                file.display()
            ),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(super) fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", pragma(synchronous))?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Without the planner's stability guarantee, SQLite plans `LIMIT ?` for
    // the value bound when the statement was prepared, and binding another
    // value makes the cached statement prepare itself again on its next
    // step: a parse and plan for every history page.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Brings the database to `schema.sql`'s version in one transaction: the
/// steps from its version on, then `schema.sql`, then `user_version`.
/// Idempotent; refuses a database written by a newer version of the server.
/// Version 0 is a new, empty file: `schema.sql` alone creates it.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::Other(format!(
            "the database has schema version {version}, newer than this server's {SCHEMA_VERSION}"
        )));
    }
    let tx = conn.transaction()?;
    if version > 0 {
        for (_, step) in MIGRATIONS.iter().filter(|(from, _)| *from >= version) {
            tx.execute_batch(step)?;
        }
    }
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{messages, settings, Db};
    use rusqlite::StatementStatus;

    fn pragma<T: rusqlite::types::FromSql>(conn: &Connection, name: &str) -> Result<T, DbError> {
        Ok(conn.pragma_query_value(None, name, |row| row.get(0))?)
    }

    #[test]
    fn a_cached_statement_is_not_prepared_again_for_other_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_connection(&dir.path().join("chat.db"), Synchronous::Normal).unwrap();
        migrate(&mut conn).unwrap();
        for (before_id, limit) in [(10, 21), (5, 3), (1_000, 101)] {
            messages::before_id(&conn, before_id, limit).unwrap();
            messages::at_offset(&conn, before_id, limit).unwrap();
        }
        for sql in [messages::BEFORE_ID, messages::AT_OFFSET] {
            let statement = conn.prepare_cached(sql).unwrap();
            assert_eq!(statement.get_status(StatementStatus::RePrepare), 0, "{sql}");
        }
    }

    #[tokio::test]
    async fn schema_is_versioned_and_reapplied_harmlessly_with_the_contract_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        // SQLite numbers them: NORMAL is 1, FULL is 2.
        for (synchronous, level) in [(Synchronous::Full, 2), (Synchronous::Normal, 1)] {
            let db = Db::open(&path, synchronous).unwrap();
            let read = db
                .read(|conn| {
                    Ok((
                        pragma::<i64>(conn, "user_version")?,
                        pragma::<String>(conn, "journal_mode")?,
                        pragma::<bool>(conn, "foreign_keys")?,
                        pragma::<i64>(conn, "busy_timeout")?,
                    ))
                })
                .await
                .unwrap();
            assert_eq!(read, (SCHEMA_VERSION, "wal".to_string(), true, 5000));
            let written = db
                .write(|conn| {
                    Ok((
                        pragma::<bool>(conn, "foreign_keys")?,
                        pragma::<i64>(conn, "busy_timeout")?,
                        pragma::<i64>(conn, "synchronous")?,
                    ))
                })
                .await
                .unwrap();
            assert_eq!(written, (true, 5000, level));
            db.write(|conn| settings::jwt_secret(conn, b"first")).await.unwrap();
        }
        // The second start kept the data of the first.
        let db = Db::open(&path, Synchronous::Normal).unwrap();
        let secret = db.write(|conn| settings::jwt_secret(conn, b"second")).await.unwrap();
        assert_eq!(secret, b"first");
    }

    /// The database and uploads the v1 release wrote, kept in the tests'
    /// fixtures, copied to `dir`.
    fn v1_database(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("chat.db");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/v1.db");
        std::fs::copy(fixture, &path).unwrap();
        path
    }

    #[tokio::test]
    async fn a_v1_database_is_migrated_in_place_keeping_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = v1_database(dir.path());
        let db = Db::open(&path, Synchronous::Normal).unwrap();
        let (version, counts, shared, file_ids) = db
            .read(|conn| {
                let count = |table: &str| -> Result<i64, DbError> {
                    Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))?)
                };
                let counts = [count("users")?, count("messages")?, count("files")?, count("sessions")?];
                let shared: i64 = conn.query_row("SELECT sum(shared) FROM files", [], |row| row.get(0))?;
                let file_ids: i64 =
                    conn.query_row("SELECT count(*) FROM messages WHERE file_id IS NOT NULL", [], |row| {
                        row.get(0)
                    })?;
                Ok((pragma::<i64>(conn, "user_version")?, counts, shared, file_ids))
            })
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(counts, [3, 5, 2, 0]);
        assert_eq!(
            (shared, file_ids),
            (0, 0),
            "v1 files start private, v1 messages carry no file"
        );
        let newest = db.messages_before(i64::MAX, 1).await.unwrap();
        assert_eq!(newest[0].content, "émoji 🎉 and \"quotes\"");
        drop(db);
        // Opening the migrated file again changes nothing.
        let db = Db::open(&path, Synchronous::Normal).unwrap();
        assert_eq!(db.messages_before(i64::MAX, 10).await.unwrap().len(), 5);
    }

    #[test]
    fn a_failed_migration_leaves_the_v1_database_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = v1_database(dir.path());
        let mut conn = Connection::open(&path).unwrap();
        // A column the v2 step adds already exists: its ALTER fails, and
        // the whole migration with it.
        conn.execute_batch("ALTER TABLE files ADD COLUMN shared INTEGER")
            .unwrap();
        assert!(migrate(&mut conn).is_err());
        let version: i64 = pragma(&conn, "user_version").unwrap();
        let has_file_id: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'file_id'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!((version, has_file_id), (1, 0));
    }

    #[test]
    fn a_database_from_a_newer_server_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(Db::open(&path, Synchronous::Normal), Err(DbError::Other(e)) if e.contains("newer")));
    }

    #[tokio::test]
    async fn foreign_keys_are_enforced_and_readers_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("chat.db"), Synchronous::Normal).unwrap();
        let orphan = db
            .write(|conn| {
                Ok(conn.execute(
                    "INSERT INTO messages (user_id, username, content, created_at) VALUES (999, 'x', 'y', 0)",
                    [],
                )?)
            })
            .await;
        assert!(matches!(orphan, Err(DbError::Other(_))), "{orphan:?}");
        let from_reader = db
            .read(|conn| Ok(conn.execute("INSERT INTO settings (key, value) VALUES ('r', x'00')", [])?))
            .await;
        assert!(from_reader.is_err());
    }
}
