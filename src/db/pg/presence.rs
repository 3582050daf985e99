//! Presence across nodes: which users have a chat connection on which
//! node. Each node publishes its own users under its id with a heartbeat,
//! and reads those of the other live nodes (the `nodes` and `presence`
//! tables of the schema).
//!
//! A node is live while its heartbeat is younger than [`STALE`], measured
//! on the database's clock (`now()` of the statement), so the nodes' clocks
//! play no part. A node killed without a word therefore drops out of every
//! other node's count once [`STALE`] has passed since its last heartbeat,
//! and the first node to read after that deletes its rows.

use std::collections::HashMap;

use super::PgDb;
use crate::db::DbError;

/// How old a heartbeat may be before its node counts as dead: ten missed
/// heartbeats at the usual pace of the presence loop, so a slow moment of
/// the database is not taken for a death, and short enough that a killed
/// node's users leave within seconds.
pub(crate) const STALE: &str = "5 seconds";

impl PgDb {
    /// Refreshes this node's heartbeat and, when `users` is given, makes
    /// them (`(user id, username)`) the node's whole set of online users,
    /// all in one statement. Without `users`, `false` means the node was
    /// found missing (its heartbeat went stale, e.g. while the database was
    /// away, and another node deleted its rows): the caller publishes its
    /// whole set again.
    pub(crate) async fn publish_presence(&self, users: Option<Vec<(i64, String)>>) -> Result<bool, DbError> {
        let client = self.client().await?;
        let Some(users) = users else {
            let beat = client
                .execute("UPDATE nodes SET heartbeat_at = now() WHERE id = $1", &[&&*self.node])
                .await?;
            return Ok(beat == 1);
        };
        let (ids, names): (Vec<i64>, Vec<String>) = users.into_iter().unzip();
        // The foreign key is checked at the end of the statement, once the
        // node's row is in.
        client
            .execute(
                "WITH node AS (
                     INSERT INTO nodes (id, heartbeat_at) VALUES ($1, now())
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at
                 ), gone AS (
                     DELETE FROM presence WHERE node_id = $1 AND user_id <> ALL($2)
                 )
                 INSERT INTO presence (node_id, user_id, username)
                 SELECT $1, u.id, u.name FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS u (id, name)
                 ON CONFLICT (node_id, user_id) DO NOTHING",
                &[&&*self.node, &ids, &names],
            )
            .await?;
        Ok(true)
    }

    /// The users online on the other live nodes, by user id; first deletes
    /// the nodes found dead, with their rows.
    pub(crate) async fn presence_elsewhere(&self) -> Result<HashMap<i64, String>, DbError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "WITH dead AS (DELETE FROM nodes WHERE heartbeat_at <= now() - interval '{STALE}')
                     SELECT p.user_id, p.username FROM presence p JOIN nodes n ON n.id = p.node_id
                     WHERE p.node_id <> $1 AND n.heartbeat_at > now() - interval '{STALE}'"
                ),
                &[&&*self.node],
            )
            .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// Takes this node out of the cluster's presence (at a graceful
    /// shutdown): its users stop counting on the other nodes at their next
    /// read, rather than once its heartbeat is stale.
    pub(crate) async fn withdraw_presence(&self) -> Result<(), DbError> {
        self.client()
            .await?
            .execute("DELETE FROM nodes WHERE id = $1", &[&&*self.node])
            .await?;
        Ok(())
    }
}
