//! The cluster's identity: a random id stored once in `settings`, which the
//! shared uploads directory's marker file repeats (see `files::shared_dir`).
//!
//! A claim holds an advisory lock, on a connection of its own, from before
//! it reads the id until the node is done with the marker, so that nodes
//! starting together decide one after the other: the second sees what the
//! first stored, and the marker the first put in place.

use tokio_postgres::Client;

use super::{connect, PgDb};
use crate::db::DbError;

/// Serializes the claims of nodes that start together.
const CLAIM_LOCK: i64 = 0x6368_6174_0002;
const CLUSTER_ID: &str = "cluster_id";

/// The cluster's id as stored when the claim began, and the connection
/// that holds the lock. Dropping it closes the connection, which frees the
/// lock.
pub(crate) struct Claim {
    client: Client,
    /// `None` until a node has stored one.
    pub(crate) stored: Option<String>,
}

impl PgDb {
    /// Begins a claim: takes the lock (waiting for a node that holds it)
    /// and reads the stored id.
    pub(crate) async fn claim_cluster(&self) -> Result<Claim, DbError> {
        let client = connect(&self.url).await?;
        client.execute("SELECT pg_advisory_lock($1)", &[&CLAIM_LOCK]).await?;
        let stored = client
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&CLUSTER_ID])
            .await?
            .map(|row| String::from_utf8(row.get(0)))
            .transpose()
            .map_err(|e| DbError::Other(format!("the cluster id is not text: {e}")))?;
        Ok(Claim { client, stored })
    }
}

impl Claim {
    /// Stores `id` as the cluster's (committed when this returns); the
    /// lock is kept until the claim is dropped.
    pub(crate) async fn store(&self, id: &str) -> Result<(), DbError> {
        self.client
            .execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)",
                &[&CLUSTER_ID, &id.as_bytes()],
            )
            .await?;
        Ok(())
    }
}
