//! Accounts: lookups and registration.

use rusqlite::{Connection, OptionalExtension};

use super::DbError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub created_at: i64,
}

/// A user with the hash needed to check a login.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// Inserts a user. `Ok(None)` means the name is taken (in any case).
pub fn insert(conn: &Connection, username: &str, password_hash: &str, now: i64) -> Result<Option<User>, DbError> {
    let inserted = conn
        .prepare_cached("INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)")?
        .execute((username, password_hash, now));
    match inserted {
        Ok(_) => Ok(Some(User {
            id: conn.last_insert_rowid(),
            username: username.to_string(),
            created_at: now,
        })),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Finds a user by name, ignoring case.
pub fn credentials(conn: &Connection, username: &str) -> Result<Option<Credentials>, DbError> {
    let found = conn
        .prepare_cached("SELECT id, username, created_at, password_hash FROM users WHERE username = ?1 COLLATE NOCASE")?
        .query_row([username], |row| {
            Ok(Credentials {
                user: User {
                    id: row.get(0)?,
                    username: row.get(1)?,
                    created_at: row.get(2)?,
                },
                password_hash: row.get(3)?,
            })
        })
        .optional()?;
    Ok(found)
}

pub fn by_id(conn: &Connection, id: i64) -> Result<Option<User>, DbError> {
    let found = conn
        .prepare_cached("SELECT id, username, created_at FROM users WHERE id = ?1")?
        .query_row([id], |row| {
            Ok(User {
                id: row.get(0)?,
                username: row.get(1)?,
                created_at: row.get(2)?,
            })
        })
        .optional()?;
    Ok(found)
}
