//! Presence across the nodes of a cluster (cargo feature `postgres`): what
//! each node publishes of its own online users, and what it reads of the
//! others' (see `db::pg::presence`). A single SQLite node is the whole
//! room: it has nothing to publish and nobody elsewhere.

use std::collections::HashMap;

use super::{Db, DbError};

/// Which other nodes were live at a read of their users, and which version
/// of its set each had published: a poll that finds the same stamp again
/// has nothing new to read. Start from the default, before any read.
#[derive(Default, PartialEq)]
pub struct PresenceStamp(pub(super) Vec<(String, i64)>);

impl Db {
    /// Makes `users` (`(user id, username)`) this node's whole published
    /// set, and refreshes its heartbeat.
    pub async fn publish_presence(&self, users: Vec<(i64, String)>) -> Result<(), DbError> {
        super::on_postgres!(self, publish_presence(users));
        Ok(())
    }

    /// Refreshes this node's heartbeat and applies the changes to its
    /// published set: the users who `came`, the ids of those who `went`.
    /// `false` means the node had been dropped as dead, and nothing was
    /// written: the caller publishes its whole set again.
    pub async fn update_presence(&self, came: Vec<(i64, String)>, went: Vec<i64>) -> Result<bool, DbError> {
        super::on_postgres!(self, update_presence(came, went));
        Ok(true)
    }

    /// The users online on the other live nodes, by user id, with the
    /// stamp of what was read; `None` if nothing changed since the read
    /// whose stamp is `seen`.
    pub async fn presence_elsewhere(
        &self,
        seen: &PresenceStamp,
    ) -> Result<Option<(PresenceStamp, HashMap<i64, String>)>, DbError> {
        super::on_postgres!(self, presence_elsewhere(seen));
        Ok(None)
    }

    /// Takes this node out of the cluster's presence, at a graceful
    /// shutdown.
    pub async fn withdraw_presence(&self) -> Result<(), DbError> {
        super::on_postgres!(self, withdraw_presence());
        Ok(())
    }
}
