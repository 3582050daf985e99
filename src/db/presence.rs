//! Presence across the nodes of a cluster (cargo feature `postgres`): what
//! each node publishes of its own online users, and what it reads of the
//! others' (see `db::pg::presence`). A single SQLite node is the whole
//! room: it has nothing to publish and nobody elsewhere.

use std::collections::HashMap;

use super::{Db, DbError};

impl Db {
    /// Refreshes this node's heartbeat and, when `users` is given, makes
    /// them (`(user id, username)`) its whole published set. `false`, when
    /// `users` was not given, means the node had been dropped as dead: the
    /// caller publishes its whole set again.
    pub async fn publish_presence(&self, users: Option<Vec<(i64, String)>>) -> Result<bool, DbError> {
        super::on_postgres!(self, publish_presence(users));
        Ok(true)
    }

    /// The users online on the other live nodes, by user id.
    pub async fn presence_elsewhere(&self) -> Result<HashMap<i64, String>, DbError> {
        super::on_postgres!(self, presence_elsewhere());
        Ok(HashMap::new())
    }

    /// Takes this node out of the cluster's presence, at a graceful
    /// shutdown.
    pub async fn withdraw_presence(&self) -> Result<(), DbError> {
        super::on_postgres!(self, withdraw_presence());
        Ok(())
    }
}
