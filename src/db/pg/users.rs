//! Accounts on PostgreSQL: the same methods as `db::users`. Names are
//! unique ignoring case through the unique index on `lower(username)`.

use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

use super::PgDb;
use crate::clock::Timestamp;
use crate::db::users::{Credentials, User};
use crate::db::DbError;

impl PgDb {
    /// Registers a user. `Ok(None)` means the name is taken (in any case),
    /// on whichever node it was registered.
    pub(crate) async fn create_user(&self, username: String, password_hash: String) -> Result<Option<User>, DbError> {
        let now = Timestamp::now();
        let inserted = self
            .client()
            .await?
            .query_one(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3) RETURNING id",
                &[&username, &password_hash, &now.0],
            )
            .await;
        match inserted {
            Ok(row) => Ok(Some(User {
                id: row.try_get(0)?,
                username,
                created_at: now,
            })),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Finds a user by name, ignoring case, with the hash to check a login.
    pub(crate) async fn credentials(&self, username: String) -> Result<Option<Credentials>, DbError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id, username, created_at, password_hash FROM users WHERE lower(username) = lower($1)",
                &[&username],
            )
            .await?;
        row.map(|row| {
            Ok(Credentials {
                user: user(&row)?,
                password_hash: row.try_get(3)?,
            })
        })
        .transpose()
    }

    pub(crate) async fn user(&self, id: i64) -> Result<Option<User>, DbError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT id, username, created_at FROM users WHERE id = $1", &[&id])
            .await?;
        row.map(|row| user(&row)).transpose()
    }
}

/// A user from the columns `id, username, created_at`.
fn user(row: &Row) -> Result<User, DbError> {
    Ok(User {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        created_at: Timestamp(row.try_get(2)?),
    })
}
