//! Share links on PostgreSQL: the same methods as `db::links`. Every
//! lookup reads the database and no node keeps a link in memory, so a link
//! revoked (or its file deleted) on one node is refused on every node from
//! the revocation's commit on.

use tokio_postgres::error::SqlState;

use super::files::{from_row, COLUMNS};
use super::PgDb;
use crate::clock::Timestamp;
use crate::db::links::{LinkRow, LinkTarget, NewLink};
use crate::db::DbError;

impl PgDb {
    /// Stores a link of `link.file_id`; [`DbError::NotFound`] (and nothing
    /// stored) if that file has gone, also when its deletion commits
    /// between this statement's look and its insert (the foreign key then
    /// refuses the row).
    pub(crate) async fn insert_link(&self, link: NewLink) -> Result<(), DbError> {
        let stored = self
            .client()
            .await?
            .execute(
                "INSERT INTO share_links (id, file_id, token_hash, created_at, expires_at) \
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM files WHERE id = $2)",
                &[
                    &link.id,
                    &link.file_id,
                    &&link.token_hash[..],
                    &link.created_at.0,
                    &link.expires_at.0,
                ],
            )
            .await;
        match stored {
            Ok(1) => Ok(()),
            Ok(_) => Err(DbError::NotFound("no such file")),
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => Err(DbError::NotFound("no such file")),
            Err(e) => Err(e.into()),
        }
    }

    /// The links of `file_id` still live at `now`, newest first.
    pub(crate) async fn live_links(&self, file_id: String, now: Timestamp) -> Result<Vec<LinkRow>, DbError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT id, expires_at, created_at FROM share_links \
                 WHERE file_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id",
                &[&file_id, &now.0],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(LinkRow {
                    id: row.try_get(0)?,
                    expires_at: Timestamp(row.try_get(1)?),
                    created_at: Timestamp(row.try_get(2)?),
                })
            })
            .collect()
    }

    /// Revokes the live link `link_id` of `file_id`; false if there is none.
    pub(crate) async fn revoke_link(&self, file_id: String, link_id: String, now: Timestamp) -> Result<bool, DbError> {
        let revoked = self
            .client()
            .await?
            .execute(
                "UPDATE share_links SET revoked_at = $3 \
                 WHERE id = $1 AND file_id = $2 AND revoked_at IS NULL AND expires_at > $3",
                &[&link_id, &file_id, &now.0],
            )
            .await?;
        Ok(revoked == 1)
    }

    /// What the token whose hash is `token_hash` leads to at `now`: one
    /// statement reads both the link and its file, so the answer is one
    /// snapshot's.
    pub(crate) async fn link_target(&self, token_hash: [u8; 32], now: Timestamp) -> Result<LinkTarget, DbError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {COLUMNS} RIGHT JOIN share_links l ON l.file_id = f.id \
                     AND l.revoked_at IS NULL AND l.expires_at > $2 \
                     WHERE l.token_hash = $1"
                ),
                &[&&token_hash[..], &now.0],
            )
            .await?;
        match row {
            None => Ok(LinkTarget::Unknown),
            Some(row) if row.try_get::<_, Option<String>>(0)?.is_none() => Ok(LinkTarget::Ended),
            Some(row) => Ok(LinkTarget::Live(from_row(&row)?)),
        }
    }
}
