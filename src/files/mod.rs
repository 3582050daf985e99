//! Files: uploads streamed to disk ([`upload`]), downloads with ranges and
//! validators ([`download`]), the listing and deletion ([`catalog`]), over
//! the bytes on disk ([`store`]) and the `multipart/form-data` parser
//! ([`multipart`]).
//!
//! The database row is the record that a file exists: it is written after
//! the bytes are durable and deleted before they are removed, so a crash
//! leaves at worst bytes without a row, which [`recover`] removes at start-up.

pub mod catalog;
pub mod download;
pub mod multipart;
pub mod store;
pub mod upload;

use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use crate::clock;
use crate::db::files::{self, FileRow};
use crate::log::Level;

/// A file as the API shows it: the upload response and the listing items.
#[derive(Serialize)]
pub struct FileView<'a> {
    pub id: &'a str,
    pub filename: &'a str,
    pub size: u64,
    pub content_type: &'a str,
    pub sha256: &'a str,
    pub download_url: String,
    pub uploaded_by: &'a str,
    pub created_at: String,
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
            created_at: clock::rfc3339_millis(row.created_at),
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
///
/// Blocking: runs on a database thread.
pub fn recover(conn: &Connection, dir: &Path) -> Result<(), String> {
    let context = |e: &dyn std::fmt::Display| format!("uploads directory {}: {e}", dir.display());
    let swept =
        store::sweep(dir, |id| files::exists(conn, id).map_err(std::io::Error::other)).map_err(|e| context(&e))?;
    if swept.temp_files + swept.orphans > 0 {
        crate::log!(
            Level::Info,
            "removed {} unfinished upload(s) and {} file(s) without a record from {}",
            swept.temp_files,
            swept.orphans,
            dir.display()
        );
    }
    let mut missing = 0usize;
    files::for_each_id(conn, |id| {
        if !store::is_valid_id(id) || !store::path(dir, id).is_file() {
            missing += 1;
        }
    })
    .map_err(|e| context(&e))?;
    if missing > 0 {
        crate::log!(
            Level::Warn,
            "{missing} file record(s) have no bytes in {}; is --uploads-dir the right directory?",
            dir.display()
        );
    }
    Ok(())
}
