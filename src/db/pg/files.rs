//! Files and share links in cluster mode. Not served yet: every call but
//! the start-up sweep's is answered as unavailable (503), so no route can
//! act on a file that other nodes would not see. The sweep's list of ids is
//! real, so that a sweep never removes a file the cluster knows.

use std::collections::HashSet;

use super::PgDb;
use crate::clock::Timestamp;
use crate::db::files::{Deletion, FileRow, Listing};
use crate::db::links::{LinkRow, LinkTarget, NewLink};
use crate::db::DbError;

/// The answer of every file and link call until cluster mode serves them.
fn not_yet<T>() -> Result<T, DbError> {
    Err(DbError::Unavailable("files are not served in cluster mode yet".into()))
}

impl PgDb {
    pub(crate) async fn insert_file(&self, _file: FileRow) -> Result<(), DbError> {
        not_yet()
    }

    pub(crate) async fn file(&self, _id: String) -> Result<Option<FileRow>, DbError> {
        not_yet()
    }

    pub(crate) async fn files_page(
        &self,
        _listing: Listing,
        _offset: i64,
        _limit: u32,
    ) -> Result<Vec<FileRow>, DbError> {
        not_yet()
    }

    pub(crate) async fn delete_owned_file(&self, _id: String, _user_id: i64) -> Result<Deletion, DbError> {
        not_yet()
    }

    pub(crate) async fn insert_link(&self, _link: NewLink) -> Result<(), DbError> {
        not_yet()
    }

    pub(crate) async fn live_links(&self, _file_id: String, _now: Timestamp) -> Result<Vec<LinkRow>, DbError> {
        not_yet()
    }

    pub(crate) async fn revoke_link(
        &self,
        _file_id: String,
        _link_id: String,
        _now: Timestamp,
    ) -> Result<bool, DbError> {
        not_yet()
    }

    pub(crate) async fn link_target(&self, _token_hash: [u8; 32], _now: Timestamp) -> Result<LinkTarget, DbError> {
        not_yet()
    }

    /// The id of every file in the cluster, for the start-up sweep.
    pub(crate) async fn file_ids(&self) -> Result<HashSet<String>, DbError> {
        let rows = self.client().await?.query("SELECT id FROM files", &[]).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }
}
