//! Accounts: lookups and registration.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::{Db, DbError};
use crate::clock::Timestamp;

/// An account, serialized as clients see it (never with its hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub created_at: Timestamp,
}

/// A user with the hash needed to check a login.
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

impl Db {
    /// Registers a user. `Ok(None)` means the name is taken (in any case).
    pub async fn create_user(&self, username: String, password_hash: String) -> Result<Option<User>, DbError> {
        super::on_postgres!(self, create_user(username, password_hash));
        let now = Timestamp::now();
        self.write(move |conn| insert(conn, username, &password_hash, now))
            .await
    }

    /// Finds a user by name, ignoring case, with the hash to check a login.
    pub async fn credentials(&self, username: String) -> Result<Option<Credentials>, DbError> {
        super::on_postgres!(self, credentials(username));
        self.read(move |conn| credentials(conn, &username)).await
    }

    pub async fn user(&self, id: i64) -> Result<Option<User>, DbError> {
        super::on_postgres!(self, user(id));
        self.read(move |conn| by_id(conn, id)).await
    }
}

fn insert(conn: &Connection, username: String, password_hash: &str, now: Timestamp) -> Result<Option<User>, DbError> {
    let inserted = conn
        .prepare_cached("INSERT INTO users (username, password_hash, created_at) VALUES (?1, ?2, ?3)")?
        .execute((&username, password_hash, now.0));
    match inserted {
        Ok(_) => Ok(Some(User {
            id: conn.last_insert_rowid(),
            username,
            created_at: now,
        })),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn credentials(conn: &Connection, username: &str) -> Result<Option<Credentials>, DbError> {
    let found = conn
        .prepare_cached("SELECT id, username, created_at, password_hash FROM users WHERE username = ?1 COLLATE NOCASE")?
        .query_row([username], |row| {
            Ok(Credentials {
                user: User {
                    id: row.get(0)?,
                    username: row.get(1)?,
                    created_at: Timestamp(row.get(2)?),
                },
                password_hash: row.get(3)?,
            })
        })
        .optional()?;
    Ok(found)
}

fn by_id(conn: &Connection, id: i64) -> Result<Option<User>, DbError> {
    let found = conn
        .prepare_cached("SELECT id, username, created_at FROM users WHERE id = ?1")?
        .query_row([id], |row| {
            Ok(User {
                id: row.get(0)?,
                username: row.get(1)?,
                created_at: Timestamp(row.get(2)?),
            })
        })
        .optional()?;
    Ok(found)
}
