//! Settings kept in the database so they survive restarts, and the health
//! probe's write.
//!
//! The epoch names one history of the `messages` table: a random id made when
//! the database is first opened, and replaced only when a backup is restored
//! over it. Message ids are only comparable within one epoch: after a restore
//! the same id may name another message (or none yet), so a client resuming
//! with the epoch it knew is told to resync when it no longer matches.

use rusqlite::{Connection, OptionalExtension};

use super::{Db, DbError};
use crate::clock;

const JWT_SECRET: &str = "jwt_secret";
const LAST_HEALTH_CHECK: &str = "last_health_check";
/// The database's epoch: a random id, new whenever a backup is restored
/// into it, so that clients resuming from the old one resync.
const EPOCH: &str = "epoch";

impl Db {
    /// The token-signing secret: the stored one, or `fresh` stored now if
    /// there is none yet.
    pub async fn jwt_secret(&self, fresh: [u8; 32]) -> Result<Vec<u8>, DbError> {
        super::on_postgres!(self, jwt_secret(fresh));
        self.write(move |conn| jwt_secret(conn, &fresh)).await
    }

    /// The database's epoch: the stored one, or a new random one stored now
    /// if there is none yet (a new database, or one written by v1).
    pub async fn epoch(&self) -> Result<String, DbError> {
        super::on_postgres!(self, epoch());
        let fresh = fresh_epoch()?;
        self.write(move |conn| {
            conn.prepare_cached("INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)")?
                .execute((EPOCH, &fresh))?;
            Ok(conn
                .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
                .query_row([EPOCH], |row| row.get::<_, String>(0))?)
        })
        .await
    }

    /// In cluster mode, begins the claim of the cluster's identity, which
    /// the shared uploads directory's marker repeats (`files::shared_dir`); on
    /// SQLite, where one process owns its uploads directory, there is none.
    #[cfg(feature = "postgres")]
    pub(crate) async fn claim_cluster(&self) -> Result<Option<super::pg::cluster::Claim>, DbError> {
        match self.postgres() {
            Some(pg) => pg.claim_cluster().await.map(Some),
            None => Ok(None),
        }
    }

    /// Whether the database can be both read and written: a query, then a
    /// real write (a page changes) of when the check ran, through the group
    /// commit like any other write, so it fails where any other write would.
    pub async fn check_health(&self) -> Result<(), DbError> {
        super::on_postgres!(self, check_health());
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
            .await?;
        let now = clock::now_millis();
        self.write(move |conn| record_health_check(conn, now)).await
    }
}

/// `INSERT OR IGNORE` makes a race between two first starts end with both
/// using the one that won.
pub(super) fn jwt_secret(conn: &Connection, fresh: &[u8]) -> Result<Vec<u8>, DbError> {
    conn.prepare_cached("INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)")?
        .execute((JWT_SECRET, fresh))?;
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([JWT_SECRET], |row| row.get(0))
        .optional()?;
    stored.ok_or_else(|| DbError::Other("JWT secret missing right after storing it".into()))
}

/// The epoch, if one was set. Read as text whichever way it was stored.
pub(super) fn epoch(conn: &Connection) -> Result<Option<String>, DbError> {
    let value: Option<rusqlite::types::Value> = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([EPOCH], |row| row.get(0))
        .optional()?;
    Ok(value.map(|value| match value {
        rusqlite::types::Value::Text(text) => text,
        rusqlite::types::Value::Blob(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        other => format!("{other:?}"),
    }))
}

/// Replaces the epoch with a new random one and returns it: what a
/// restore does, since the messages it brings back are another history.
pub(super) fn renew_epoch(conn: &Connection) -> Result<String, DbError> {
    let fresh = fresh_epoch()?;
    put(conn, EPOCH, &fresh)?;
    Ok(fresh)
}

fn record_health_check(conn: &Connection, now_millis: i64) -> Result<(), DbError> {
    put(conn, LAST_HEALTH_CHECK, now_millis)
}

/// Sets `key` to `value`, replacing any.
fn put(conn: &Connection, key: &str, value: impl rusqlite::ToSql) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute((key, value))?;
    Ok(())
}

/// 128 random bits in hex: an epoch that no other database will ever have.
fn fresh_epoch() -> Result<String, DbError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| DbError::Other(format!("no randomness for the epoch: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use crate::config::Synchronous;
    use crate::db::Db;

    #[tokio::test]
    async fn the_epoch_is_made_once_kept_across_opens_and_replaced_only_on_demand() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let db = Db::open(&path, Synchronous::Normal).unwrap();
        let first = db.epoch().await.unwrap();
        assert_eq!(first.len(), 32);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(db.epoch().await.unwrap(), first);
        drop(db);
        let db = Db::open(&path, Synchronous::Normal).unwrap();
        assert_eq!(db.epoch().await.unwrap(), first, "kept in the database");
        let renewed = db.write(super::renew_epoch).await.unwrap();
        assert_ne!(renewed, first);
        assert_eq!(db.epoch().await.unwrap(), renewed);
        let other = Db::open(&dir.path().join("other.db"), Synchronous::Normal).unwrap();
        assert_ne!(other.epoch().await.unwrap(), renewed, "each database has its own");
    }
}
