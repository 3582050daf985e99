//! Files on PostgreSQL: the same methods as `db::files`, with the same
//! order of writes (a row after the bytes are durable, deleted before they
//! are removed), plus the record of deletions every node polls.
//!
//! A deletion is also recorded in `file_deletions`, by the transaction that
//! deletes the row: each node keeps cached history pages that may carry the
//! file, and polls that table to drop them ([`PgDb::files_deleted_since`]).
//! The records are pruned by later deletions once [`KEEP_DELETIONS_MS`] old.
//!
//! A deletion locks the file's row before it clears the messages that carry
//! the file: a message sharing the file concurrently marks the same row
//! first (`db::pg::messages`), so either that message is committed before
//! the deletion reads the messages, or it finds the file gone and is
//! refused. No message is left pointing at a deleted file.

use std::collections::HashSet;

use tokio_postgres::Row;

use super::PgDb;
use crate::clock::Timestamp;
use crate::db::files::{Deletion, FileRow, Listing};
use crate::db::DbError;

/// How long a deletion stays in `file_deletions`: far longer than a poll
/// reaches back, so that a node whose polls failed for a while (its
/// database connection lost) still finds the deletions it missed.
const KEEP_DELETIONS_MS: i64 = 24 * 3600 * 1000;

/// The columns [`from_row`] reads, from `files f` joined with its uploader.
pub(super) const COLUMNS: &str =
    "f.id, f.filename, f.size, f.content_type, f.sha256, f.uploaded_by, u.username, f.created_at, f.shared \
     FROM files f JOIN users u ON u.id = f.uploaded_by";

/// A file from the [`COLUMNS`] of a row.
pub(super) fn from_row(row: &Row) -> Result<FileRow, DbError> {
    Ok(FileRow {
        id: row.try_get(0)?,
        filename: row.try_get(1)?,
        size: u64::try_from(row.try_get::<_, i64>(2)?).map_err(|e| DbError::Other(format!("file size: {e}")))?,
        content_type: row.try_get(3)?,
        sha256: row.try_get(4)?,
        uploaded_by: row.try_get(5)?,
        uploader: row.try_get(6)?,
        created_at: Timestamp(row.try_get(7)?),
        shared: row.try_get(8)?,
    })
}

impl PgDb {
    pub(crate) async fn insert_file(&self, file: FileRow) -> Result<(), DbError> {
        let size = i64::try_from(file.size).map_err(|e| DbError::Other(format!("file size: {e}")))?;
        self.client()
            .await?
            .execute(
                "INSERT INTO files (id, filename, size, content_type, sha256, uploaded_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &file.id,
                    &file.filename,
                    &size,
                    &file.content_type,
                    &file.sha256,
                    &file.uploaded_by,
                    &file.created_at.0,
                ],
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn file(&self, id: String) -> Result<Option<FileRow>, DbError> {
        let row = self
            .client()
            .await?
            .query_opt(&format!("SELECT {COLUMNS} WHERE f.id = $1"), &[&id])
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// A page of the files `listing` selects, newest first: both listings
    /// walk an index in `seq` order (`files_uploader`, `files_shared`).
    pub(crate) async fn files_page(&self, listing: Listing, offset: i64, limit: u32) -> Result<Vec<FileRow>, DbError> {
        let order = "ORDER BY f.seq DESC LIMIT $1 OFFSET $2";
        let limit = i64::from(limit);
        let client = self.client().await?;
        let rows = match listing {
            Listing::UploadedBy(user_id) => {
                client
                    .query(
                        &format!("SELECT {COLUMNS} WHERE f.uploaded_by = $3 {order}"),
                        &[&limit, &offset, &user_id],
                    )
                    .await?
            }
            Listing::Shared => {
                client
                    .query(&format!("SELECT {COLUMNS} WHERE f.shared {order}"), &[&limit, &offset])
                    .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Deletes the row of `id` if `user_id` uploaded it, in one
    /// transaction: clears `file_id` in the messages that carried it,
    /// deletes the row (its links cascade), records the deletion for the
    /// other nodes and prunes the old records.
    pub(crate) async fn delete_owned_file(&self, id: String, user_id: i64) -> Result<Deletion, DbError> {
        let now = Timestamp::now().0;
        let mut client = self.exclusive().await?;
        let transaction = client.transaction().await?;
        let found = transaction
            .query_opt("SELECT uploaded_by, shared FROM files WHERE id = $1 FOR UPDATE", &[&id])
            .await?;
        let deletion = match found.map(|row| (row.get::<_, i64>(0), row.get::<_, bool>(1))) {
            Some((owner, _)) if owner == user_id => {
                transaction
                    .execute("UPDATE messages SET file_id = NULL WHERE file_id = $1", &[&id])
                    .await?;
                transaction.execute("DELETE FROM files WHERE id = $1", &[&id]).await?;
                transaction
                    .execute(
                        "INSERT INTO file_deletions (file_id, deleted_at) VALUES ($1, $2)",
                        &[&id, &now],
                    )
                    .await?;
                transaction
                    .execute(
                        "DELETE FROM file_deletions WHERE deleted_at < $1",
                        &[&(now - KEEP_DELETIONS_MS)],
                    )
                    .await?;
                Deletion::Deleted
            }
            Some((_, true)) => Deletion::NotOwner,
            Some((_, false)) | None => Deletion::NotFound,
        };
        transaction.commit().await?;
        Ok(deletion)
    }

    /// The files deleted at or after `since` (Unix milliseconds of the
    /// deleting node's clock) on any node, with when: what each node polls
    /// to drop the cached pages that carry them. The poll should reach back
    /// further than the clocks of the nodes can differ.
    pub(crate) async fn files_deleted_since(&self, since: Timestamp) -> Result<Vec<(String, Timestamp)>, DbError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT file_id, deleted_at FROM file_deletions WHERE deleted_at >= $1",
                &[&since.0],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, Timestamp(row.try_get(1)?))))
            .collect()
    }

    /// The id of every file in the cluster, for the start-up sweep.
    pub(crate) async fn file_ids(&self) -> Result<HashSet<String>, DbError> {
        let rows = self.client().await?.query("SELECT id FROM files", &[]).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }
}
