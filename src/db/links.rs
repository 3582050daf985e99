//! Share links: expiring download links of a file, one row each in
//! `share_links`. Only the SHA-256 of a link's token is stored, so neither a
//! copy of the database nor a look at it can be turned into a working link;
//! a link is found by hashing the token it is presented with.
//!
//! A revoked or expired link keeps its row, so that its URL can answer
//! "gone" (410) rather than "unknown" (404); the rows go with their file
//! (`ON DELETE CASCADE`).

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::files::{self, FileRow};
use super::{Db, DbError};
use crate::clock::Timestamp;

/// A link to store. `token_hash` is the SHA-256 of the token handed out.
pub struct NewLink {
    pub id: String,
    pub file_id: String,
    pub token_hash: [u8; 32],
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A live link as its file's uploader sees it: no token, which is not kept.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct LinkRow {
    pub id: String,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// What a token leads to at a given time.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// A live link, and its file.
    Live(FileRow),
    /// A link that expired or was revoked.
    Ended,
    /// No such link (or its file was deleted, taking its links along).
    Unknown,
}

impl Db {
    /// Stores a link of `link.file_id`; [`DbError::NotFound`] (and nothing
    /// stored) if that file has gone since the caller looked.
    pub async fn insert_link(&self, link: NewLink) -> Result<(), DbError> {
        super::on_postgres!(self, insert_link(link));
        self.write(move |conn| insert(conn, &link)).await
    }

    /// The links of `file_id` still live at `now`, newest first.
    pub async fn live_links(&self, file_id: String, now: Timestamp) -> Result<Vec<LinkRow>, DbError> {
        super::on_postgres!(self, live_links(file_id, now));
        self.read(move |conn| live(conn, &file_id, now)).await
    }

    /// Revokes the live link `link_id` of `file_id`; false if there is none.
    pub async fn revoke_link(&self, file_id: String, link_id: String, now: Timestamp) -> Result<bool, DbError> {
        super::on_postgres!(self, revoke_link(file_id, link_id, now));
        self.write(move |conn| revoke(conn, &file_id, &link_id, now)).await
    }

    /// What the token whose hash is `token_hash` leads to at `now`.
    pub async fn link_target(&self, token_hash: [u8; 32], now: Timestamp) -> Result<LinkTarget, DbError> {
        super::on_postgres!(self, link_target(token_hash, now));
        self.read(move |conn| target(conn, &token_hash, now)).await
    }
}

fn insert(conn: &Connection, link: &NewLink) -> Result<(), DbError> {
    let stored = conn
        .prepare_cached(
            "INSERT INTO share_links (id, file_id, token_hash, created_at, expires_at) \
             SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM files WHERE id = ?2)",
        )?
        .execute((
            &link.id,
            &link.file_id,
            &link.token_hash[..],
            link.created_at.0,
            link.expires_at.0,
        ))?;
    if stored == 0 {
        return Err(DbError::NotFound("no such file"));
    }
    Ok(())
}

fn live(conn: &Connection, file_id: &str, now: Timestamp) -> Result<Vec<LinkRow>, DbError> {
    let rows = conn
        .prepare_cached(
            "SELECT id, expires_at, created_at FROM share_links \
             WHERE file_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 ORDER BY created_at DESC, id",
        )?
        .query_map((file_id, now.0), |row| {
            Ok(LinkRow {
                id: row.get(0)?,
                expires_at: Timestamp(row.get(1)?),
                created_at: Timestamp(row.get(2)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn revoke(conn: &Connection, file_id: &str, link_id: &str, now: Timestamp) -> Result<bool, DbError> {
    let revoked = conn
        .prepare_cached(
            "UPDATE share_links SET revoked_at = ?3 \
             WHERE id = ?1 AND file_id = ?2 AND revoked_at IS NULL AND expires_at > ?3",
        )?
        .execute((link_id, file_id, now.0))?;
    Ok(revoked == 1)
}

fn target(conn: &Connection, token_hash: &[u8; 32], now: Timestamp) -> Result<LinkTarget, DbError> {
    if let Some(file) = files::by_live_link(conn, token_hash, now)? {
        return Ok(LinkTarget::Live(file));
    }
    let known = conn
        .prepare_cached("SELECT 1 FROM share_links WHERE token_hash = ?1")?
        .query_row([&token_hash[..]], |_| Ok(()))
        .optional()?;
    Ok(if known.is_some() {
        LinkTarget::Ended
    } else {
        LinkTarget::Unknown
    })
}
