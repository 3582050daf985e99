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
use crate::db::presence::PresenceStamp;
use crate::db::DbError;

/// How old a heartbeat may be before its node counts as dead: ten missed
/// heartbeats at the usual pace of the presence loop, so a slow moment of
/// the database is not taken for a death, and short enough that a killed
/// node's users leave within seconds.
pub(crate) const STALE: &str = "5 seconds";

impl PgDb {
    /// Makes `users` (`(user id, username)`) this node's whole set of
    /// online users and refreshes its heartbeat, bringing the node back if
    /// it had been dropped as dead, all in one statement.
    pub(crate) async fn publish_presence(&self, users: Vec<(i64, String)>) -> Result<(), DbError> {
        let (ids, names): (Vec<i64>, Vec<String>) = users.into_iter().unzip();
        // The foreign key is checked at the end of the statement, once the
        // node's row is in.
        self.client()
            .await?
            .execute(
                "WITH node AS (
                     INSERT INTO nodes (id, heartbeat_at) VALUES ($1, now())
                     ON CONFLICT (id) DO UPDATE
                     SET heartbeat_at = excluded.heartbeat_at, version = nextval('presence_version')
                 ), gone AS (
                     DELETE FROM presence WHERE node_id = $1 AND user_id <> ALL($2)
                 )
                 INSERT INTO presence (node_id, user_id, username)
                 SELECT $1, u.id, u.name FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS u (id, name)
                 ON CONFLICT (node_id, user_id) DO NOTHING",
                &[&&*self.node, &ids, &names],
            )
            .await?;
        Ok(())
    }

    /// Refreshes this node's heartbeat, and adds `came` to its published
    /// users and removes `went` from them, all in one statement. `false`
    /// means the node was found missing (its heartbeat went stale, e.g.
    /// while the database was away, and another node deleted its rows), and
    /// nothing was written: the caller publishes its whole set again.
    pub(crate) async fn update_presence(&self, came: Vec<(i64, String)>, went: Vec<i64>) -> Result<bool, DbError> {
        let client = self.client().await?;
        if came.is_empty() && went.is_empty() {
            let beat = client
                .execute("UPDATE nodes SET heartbeat_at = now() WHERE id = $1", &[&&*self.node])
                .await?;
            return Ok(beat == 1);
        }
        let (ids, names): (Vec<i64>, Vec<String>) = came.into_iter().unzip();
        let node = client
            .query(
                "WITH node AS (
                     UPDATE nodes SET heartbeat_at = now(), version = nextval('presence_version')
                     WHERE id = $1 RETURNING id
                 ), gone AS (
                     DELETE FROM presence WHERE node_id IN (SELECT id FROM node) AND user_id = ANY($2)
                 ), came AS (
                     INSERT INTO presence (node_id, user_id, username)
                     SELECT node.id, u.id, u.name FROM node, UNNEST($3::BIGINT[], $4::TEXT[]) AS u (id, name)
                     ON CONFLICT (node_id, user_id) DO NOTHING
                 )
                 SELECT id FROM node",
                &[&&*self.node, &went, &ids, &names],
            )
            .await?;
        Ok(node.len() == 1)
    }

    /// The users online on the other live nodes, by user id, unless the
    /// live nodes and the versions of their sets are still those of `seen`;
    /// with the stamp of what was read. First deletes the nodes found dead,
    /// with their rows.
    pub(crate) async fn presence_elsewhere(
        &self,
        seen: &PresenceStamp,
    ) -> Result<Option<(PresenceStamp, HashMap<i64, String>)>, DbError> {
        let client = self.client().await?;
        let nodes = client
            .query(
                &format!(
                    "WITH dead AS (DELETE FROM nodes WHERE heartbeat_at <= now() - interval '{STALE}')
                     SELECT id, version FROM nodes
                     WHERE id <> $1 AND heartbeat_at > now() - interval '{STALE}' ORDER BY id"
                ),
                &[&&*self.node],
            )
            .await?;
        let stamp = PresenceStamp(
            nodes
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<Result<_, DbError>>()?,
        );
        if stamp == *seen {
            return Ok(None);
        }
        // A node that publishes meanwhile may show its newer set under the
        // older stamp: the next read finds the stamp changed and reads again.
        let ids: Vec<&str> = stamp.0.iter().map(|(id, _)| id.as_str()).collect();
        let rows = client
            .query(
                "SELECT user_id, username FROM presence WHERE node_id = ANY($1)",
                &[&ids],
            )
            .await?;
        let users = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, DbError>>()?;
        Ok(Some((stamp, users)))
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
