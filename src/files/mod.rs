//! Files: uploads streamed to disk ([`upload`]), downloads with ranges and
//! validators ([`download`]), the listing and deletion ([`catalog`]),
//! sharing in the room and share links ([`sharing`]), over the bytes on disk
//! ([`store`]), shared by a cluster's nodes (`shared_dir`, cargo feature
//! `postgres`). The `multipart/form-data` parser is part of the transport
//! (`http::multipart`).
//!
//! Who may see a file: its uploader always, every member once it is shared
//! in the room, anyone with a live share link through that link only. To
//! anyone else a file does not exist: every route answers 404, never 403,
//! which would confirm the id ([`visible`]). Only a member who may see the
//! file but asks for what its uploader alone may do is told 403
//! ([`owned`]).
//!
//! The database row is the record that a file exists: it is written after
//! the bytes are durable and deleted before they are removed, so a crash
//! leaves at worst bytes without a row, which [`recover`] removes at start-up.

pub(crate) mod catalog;
#[cfg(feature = "postgres")]
pub(crate) mod cluster;
pub(crate) mod download;
#[cfg(feature = "postgres")]
pub(crate) mod shared_dir;
pub(crate) mod sharing;
pub(crate) mod store;
pub(crate) mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::api::ApiError;
use crate::chat::room::Room;
use crate::clock::Timestamp;
use crate::db::files::FileRow;
use crate::db::Db;
use crate::log::Level;
use crate::sync::blocking;

/// What the file routes need.
pub struct Files {
    pub db: Db,
    /// Where a file is shared, and whose cached pages a deletion touches.
    pub room: Arc<Room>,
    /// Where the bytes live (`--uploads-dir`).
    pub dir: PathBuf,
    /// In cluster mode, this node's name, which its temp files carry (see
    /// [`store::Sharing`]); `None` on SQLite.
    pub node: Option<String>,
    /// The largest file accepted (`--max-upload-bytes`).
    pub max_upload_bytes: u64,
}

/// A file as the API shows it: the upload response and the listing items.
#[derive(Serialize)]
pub(crate) struct FileView<'a> {
    pub id: &'a str,
    pub filename: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub sha256: &'a str,
    pub download_url: String,
    pub uploaded_by: &'a str,
    pub created_at: Timestamp,
    /// In the listings only: the upload response has no `shared`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared: Option<bool>,
}

impl<'a> From<&'a FileRow> for FileView<'a> {
    fn from(row: &'a FileRow) -> Self {
        FileView {
            id: &row.id,
            filename: &row.filename,
            size: row.size,
            content_type: &row.content_type,
            sha256: &row.sha256,
            download_url: format!("/files/{}", row.id),
            uploaded_by: &row.uploader,
            created_at: row.created_at,
            shared: None,
        }
    }
}

/// The row of `id` if `user_id` may see it; 404 otherwise, whether the file
/// does not exist or is someone else's private file. An id of the wrong
/// shape is not looked up at all.
pub(crate) async fn visible(files: &Files, id: &str, user_id: i64) -> Result<FileRow, ApiError> {
    if !store::is_valid_id(id) {
        return Err(no_such_file());
    }
    match files.db.file(id.to_string()).await? {
        Some(row) if row.visible_to(user_id) => Ok(row),
        _ => Err(no_such_file()),
    }
}

/// The row of `id` if `user_id` uploaded it: 404 as [`visible`] for a file
/// `user_id` may not see, 403 for a shared file of someone else's.
pub(crate) async fn owned(files: &Files, id: &str, user_id: i64) -> Result<FileRow, ApiError> {
    let row = visible(files, id, user_id).await?;
    if row.uploaded_by != user_id {
        return Err(not_the_uploader());
    }
    Ok(row)
}

pub(crate) fn no_such_file() -> ApiError {
    ApiError::not_found("no such file")
}

pub(crate) fn not_the_uploader() -> ApiError {
    ApiError::forbidden("only the uploader may do this")
}

/// Start-up recovery, before the server takes requests (so no upload is in
/// flight): creates the uploads directory and removes temp files and files
/// without a row (see [`store::sweep`]; in cluster mode, where `node` is
/// this node's name, another node's only past a grace period).
///
/// Rows whose file is missing are kept and only counted in a warning: the
/// likely cause is an uploads directory that is not the one the database
/// belongs with (a volume not mounted yet, a wrong `--uploads-dir`), and
/// deleting the rows would turn an operator's mistake into lost records.
/// Downloading such a file answers 404; its uploader can still delete it.
pub(crate) async fn recover(db: &Db, dir: &Path, node: Option<&str>) -> Result<(), String> {
    let context = |e: &dyn std::fmt::Display| format!("uploads directory {}: {e}", dir.display());
    let ids = db.file_ids().await.map_err(|e| context(&e))?;
    let owned = dir.to_path_buf();
    let node = node.map(str::to_string);
    let (swept, missing) = blocking(move || {
        let sharing = match &node {
            Some(node) => store::Sharing::Cluster { node },
            None => store::Sharing::Alone,
        };
        let swept = store::sweep(&owned, sharing, |id| Ok(ids.contains(id)))?;
        let missing = ids
            .iter()
            .filter(|id| !store::is_valid_id(id) || !store::path(&owned, id).is_file())
            .count();
        Ok((swept, missing))
    })
    .await
    .map_err(|e| context(&e))?;
    if swept.temp_files + swept.orphans > 0 {
        crate::log!(
            Level::Info,
            "removed {} unfinished upload(s) and {} file(s) without a record from {}",
            swept.temp_files,
            swept.orphans,
            dir.display()
        );
    }
    if swept.spared > 0 {
        crate::log!(
            Level::Info,
            "left {} file(s) of other nodes' uploads, written in the last {} min, in {}: they may be in flight",
            swept.spared,
            store::GRACE.as_secs() / 60,
            dir.display()
        );
    }
    if missing > 0 {
        crate::log!(
            Level::Warn,
            "{missing} file record(s) have no bytes in {}; is --uploads-dir the right directory?",
            dir.display()
        );
    }
    Ok(())
}
