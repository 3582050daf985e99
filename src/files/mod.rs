//! Files: uploads streamed to disk ([`upload`]), downloads with ranges and
//! validators ([`download`]), the listing and deletion ([`catalog`]), over
//! the bytes on disk ([`store`]). The `multipart/form-data` parser is part
//! of the transport (`http::multipart`).
//!
//! The database row is the record that a file exists: it is written after
//! the bytes are durable and deleted before they are removed, so a crash
//! leaves at worst bytes without a row, which [`recover`] removes at start-up.

pub(crate) mod catalog;
pub(crate) mod download;
pub(crate) mod store;
pub(crate) mod upload;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::clock::Timestamp;
use crate::db::files::FileRow;
use crate::db::Db;
use crate::log::Level;
use crate::sync::blocking;

/// What the file routes need.
pub struct Files {
    pub db: Db,
    /// Where the bytes live (`--uploads-dir`).
    pub dir: PathBuf,
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
        }
    }
}

/// Start-up recovery, before the server takes requests (so no upload is in
/// flight): creates the uploads directory and removes temp files and files
/// without a row (see [`store::sweep`]).
///
/// Rows whose file is missing are kept and only counted in a warning: the
/// likely cause is an uploads directory that is not the one the database
/// belongs with (a volume not mounted yet, a wrong `--uploads-dir`), and
/// deleting the rows would turn an operator's mistake into lost records.
/// Downloading such a file answers 404; its uploader can still delete it.
pub(crate) async fn recover(db: &Db, dir: &Path) -> Result<(), String> {
    let context = |e: &dyn std::fmt::Display| format!("uploads directory {}: {e}", dir.display());
    let ids = db.file_ids().await.map_err(|e| context(&e))?;
    let owned = dir.to_path_buf();
    let (swept, missing) = blocking(move || {
        let swept = store::sweep(&owned, |id| Ok(ids.contains(id)))?;
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
    if missing > 0 {
        crate::log!(
            Level::Warn,
            "{missing} file record(s) have no bytes in {}; is --uploads-dir the right directory?",
            dir.display()
        );
    }
    Ok(())
}
