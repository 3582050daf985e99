//! Settings kept in the database so they survive restarts.

use rusqlite::{Connection, OptionalExtension};

use super::DbError;

const JWT_SECRET: &str = "jwt_secret";

/// The token-signing secret: the stored one, or `fresh` stored now if there
/// is none yet. `INSERT OR IGNORE` makes a race between two first starts end
/// with both using the one that won.
pub fn jwt_secret(conn: &Connection, fresh: &[u8]) -> Result<Vec<u8>, DbError> {
    conn.prepare_cached("INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)")?
        .execute((JWT_SECRET, fresh))?;
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([JWT_SECRET], |row| row.get(0))
        .optional()?;
    stored.ok_or_else(|| DbError::Other("JWT secret missing right after storing it".into()))
}

const LAST_HEALTH_CHECK: &str = "last_health_check";

/// Records when `/healthz` last wrote to the database: a real write (a page
/// changes), so it fails where any other write would.
pub fn record_health_check(conn: &Connection, now_millis: i64) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute((LAST_HEALTH_CHECK, now_millis))?;
    Ok(())
}
