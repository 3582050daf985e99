//! Uploaded files: one row per file whose bytes are on disk under its `id`.
//!
//! A row is inserted only after the file is durably in place and deleted
//! before the file is removed, so a crash at any point leaves at worst a file
//! without a row (swept at start-up), never a row without its bytes.

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
}

/// What [`Db::delete_owned_file`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    NotFound,
    NotOwner,
}

const COLUMNS: &str = "f.id, f.filename, f.size, f.content_type, f.sha256, f.uploaded_by, u.username, f.created_at \
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
    })
}

impl Db {
    /// Records a file whose bytes are durably in place.
    pub async fn insert_file(&self, file: FileRow) -> Result<(), DbError> {
        self.write(move |conn| insert(conn, &file)).await
    }

    pub async fn file(&self, id: String) -> Result<Option<FileRow>, DbError> {
        self.read(move |conn| by_id(conn, &id)).await
    }

    /// A page of files, newest first.
    pub async fn files_page(&self, offset: i64, limit: u32) -> Result<Vec<FileRow>, DbError> {
        self.read(move |conn| page(conn, offset, limit)).await
    }

    /// Deletes the row of `id` if `user_id` uploaded it.
    pub async fn delete_owned_file(&self, id: String, user_id: i64) -> Result<Deletion, DbError> {
        self.write(move |conn| delete_owned(conn, &id, user_id)).await
    }

    /// The id of every file, for the start-up sweep of the uploads
    /// directory: a set of 32-byte names, a few tens of megabytes for a
    /// million files, held only while the sweep runs.
    pub async fn file_ids(&self) -> Result<HashSet<String>, DbError> {
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

fn page(conn: &Connection, offset: i64, limit: u32) -> Result<Vec<FileRow>, DbError> {
    let rows = conn
        .prepare_cached(&format!("SELECT {COLUMNS} ORDER BY f.seq DESC LIMIT ?1 OFFSET ?2"))?
        .query_map((limit, offset), from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn delete_owned(conn: &Connection, id: &str, user_id: i64) -> Result<Deletion, DbError> {
    let owner: Option<i64> = conn
        .prepare_cached("SELECT uploaded_by FROM files WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    match owner {
        None => Ok(Deletion::NotFound),
        Some(owner) if owner != user_id => Ok(Deletion::NotOwner),
        Some(_) => {
            conn.prepare_cached("DELETE FROM files WHERE id = ?1")?.execute([id])?;
            Ok(Deletion::Deleted)
        }
    }
}
