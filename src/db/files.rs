//! Uploaded files: one row per file whose bytes are on disk under its `id`.
//!
//! A row is inserted only after the file is durably in place and deleted
//! before the file is removed, so a crash at any point leaves at worst a file
//! without a row (swept at start-up), never a row without its bytes.
//!
//! A file is private to its uploader until it is shared in the room
//! (`shared`, set by the transaction that commits the file message, see
//! `db::messages`); deleting it removes its share links (the foreign key
//! cascades) and clears `file_id` in the messages that carried it, in the
//! same transaction.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row};

use super::{Db, DbError};
use crate::clock::Timestamp;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRow {
    pub id: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub uploaded_by: i64,
    /// The uploader's name, joined from `users`.
    pub uploader: String,
    pub created_at: Timestamp,
    /// Shared in the room: every member may see it.
    pub shared: bool,
}

impl FileRow {
    /// Whether `user_id` may see the file at all: its uploader always,
    /// everyone once it is shared in the room.
    pub fn visible_to(&self, user_id: i64) -> bool {
        self.shared || self.uploaded_by == user_id
    }
}

/// Which files [`Db::files_page`] lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// The files this user uploaded, shared or not.
    UploadedBy(i64),
    /// Every file shared in the room.
    Shared,
}

/// What [`Db::delete_owned_file`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// No such file, or one the user may not see.
    NotFound,
    /// A file the user may see (shared) but did not upload.
    NotOwner,
}

const COLUMNS: &str =
    "f.id, f.filename, f.size, f.content_type, f.sha256, f.uploaded_by, u.username, f.created_at, f.shared \
     FROM files f JOIN users u ON u.id = f.uploaded_by";

fn from_row(row: &Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: row.get(0)?,
        filename: row.get(1)?,
        size: row.get(2)?,
        content_type: row.get(3)?,
        sha256: row.get(4)?,
        uploaded_by: row.get(5)?,
        uploader: row.get(6)?,
        created_at: Timestamp(row.get(7)?),
        shared: row.get(8)?,
    })
}

impl Db {
    /// Records a file whose bytes are durably in place.
    pub async fn insert_file(&self, file: FileRow) -> Result<(), DbError> {
        super::on_postgres!(self, insert_file(file));
        self.write(move |conn| insert(conn, &file)).await
    }

    pub async fn file(&self, id: String) -> Result<Option<FileRow>, DbError> {
        super::on_postgres!(self, file(id));
        self.read(move |conn| by_id(conn, &id)).await
    }

    /// A page of the files `listing` selects, newest first.
    pub async fn files_page(&self, listing: Listing, offset: i64, limit: u32) -> Result<Vec<FileRow>, DbError> {
        super::on_postgres!(self, files_page(listing, offset, limit));
        self.read(move |conn| page(conn, listing, offset, limit)).await
    }

    /// Deletes the row of `id` (with its links, and its mention in the
    /// messages that carried it) if `user_id` uploaded it.
    pub async fn delete_owned_file(&self, id: String, user_id: i64) -> Result<Deletion, DbError> {
        super::on_postgres!(self, delete_owned_file(id, user_id));
        self.write(move |conn| delete_owned(conn, &id, user_id)).await
    }

    /// The files deleted at or after `since` on any node of a cluster, with
    /// when (see `db::pg::files`). A single SQLite node has only its own
    /// deletions, whose cached pages it forgot as it made them: none.
    #[cfg(feature = "postgres")]
    pub async fn files_deleted_since(&self, since: Timestamp) -> Result<Vec<(String, Timestamp)>, DbError> {
        super::on_postgres!(self, files_deleted_since(since));
        Ok(Vec::new())
    }

    /// The id of every file, for the start-up sweep of the uploads
    /// directory: a set of 32-byte names, a few tens of megabytes for a
    /// million files, held only while the sweep runs.
    pub async fn file_ids(&self) -> Result<HashSet<String>, DbError> {
        super::on_postgres!(self, file_ids());
        self.read(|conn| {
            let mut statement = conn.prepare_cached("SELECT id FROM files")?;
            let ids = statement.query_map([], |row| row.get(0))?;
            Ok(ids.collect::<Result<_, _>>()?)
        })
        .await
    }
}

fn insert(conn: &Connection, file: &FileRow) -> Result<(), DbError> {
    conn.prepare_cached(
        "INSERT INTO files (id, filename, size, content_type, sha256, uploaded_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute((
        &file.id,
        &file.filename,
        file.size,
        &file.content_type,
        &file.sha256,
        file.uploaded_by,
        file.created_at.0,
    ))?;
    Ok(())
}

fn by_id(conn: &Connection, id: &str) -> Result<Option<FileRow>, DbError> {
    let found = conn
        .prepare_cached(&format!("SELECT {COLUMNS} WHERE f.id = ?1"))?
        .query_row([id], from_row)
        .optional()?;
    Ok(found)
}

/// The file a live link leads to: the token's hash matches, the link is
/// neither revoked nor past its expiry at `now`.
pub(super) fn by_live_link(
    conn: &Connection,
    token_hash: &[u8; 32],
    now: Timestamp,
) -> Result<Option<FileRow>, DbError> {
    let found = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} JOIN share_links l ON l.file_id = f.id \
             WHERE l.token_hash = ?1 AND l.revoked_at IS NULL AND l.expires_at > ?2"
        ))?
        .query_row((&token_hash[..], now.0), from_row)
        .optional()?;
    Ok(found)
}

/// Both listings walk an index in `seq` order (`files_uploader`,
/// `files_shared`).
fn page(conn: &Connection, listing: Listing, offset: i64, limit: u32) -> Result<Vec<FileRow>, DbError> {
    let order = "ORDER BY f.seq DESC LIMIT ?1 OFFSET ?2";
    let rows = match listing {
        Listing::UploadedBy(user_id) => conn
            .prepare_cached(&format!("SELECT {COLUMNS} WHERE f.uploaded_by = ?3 {order}"))?
            .query_map((limit, offset, user_id), from_row)?
            .collect::<Result<_, _>>()?,
        Listing::Shared => conn
            .prepare_cached(&format!("SELECT {COLUMNS} WHERE f.shared = 1 {order}"))?
            .query_map((limit, offset), from_row)?
            .collect::<Result<_, _>>()?,
    };
    Ok(rows)
}

pub(super) fn delete_owned(conn: &Connection, id: &str, user_id: i64) -> Result<Deletion, DbError> {
    let found: Option<(i64, bool)> = conn
        .prepare_cached("SELECT uploaded_by, shared FROM files WHERE id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match found {
        Some((owner, _)) if owner == user_id => {
            conn.prepare_cached("UPDATE messages SET file_id = NULL WHERE file_id = ?1")?
                .execute([id])?;
            conn.prepare_cached("DELETE FROM files WHERE id = ?1")?.execute([id])?;
            Ok(Deletion::Deleted)
        }
        Some((_, true)) => Ok(Deletion::NotOwner),
        Some((_, false)) | None => Ok(Deletion::NotFound),
    }
}
