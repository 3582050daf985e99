//! Opening the database file with the pragmas the contract relies on, and
//! bringing its schema up to date.

use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use super::DbError;
use crate::config::Synchronous;

/// The schema version `schema.sql` describes.
pub(super) const SCHEMA_VERSION: i64 = 1;
pub(super) const SCHEMA: &str = include_str!("../../schema.sql");

/// SQLite's name for the `synchronous` level.
fn pragma(synchronous: Synchronous) -> &'static str {
    match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    }
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

/// Applies `schema.sql` and records its version. Idempotent; refuses a
/// database written by a newer version of the server.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), DbError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(DbError::Other(format!(
            "the database has schema version {version}, newer than this server's {SCHEMA_VERSION}"
        )));
    }
    let tx = conn.transaction()?;
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
