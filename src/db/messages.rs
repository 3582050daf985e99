//! Chat messages: the insert behind every broadcast, and the history queries.
//!
//! `id` is the table's `INTEGER PRIMARY KEY` (the rowid), so the newest
//! messages and every "before this id" page are a range search on the
//! table's own b-tree: the cost depends on the page size, not on how many
//! messages exist or how deep the page lies. Paging by offset is the
//! exception: SQLite has to step over `offset` rows to find the page, so it
//! grows with the offset; clients that go deep should use `before_id`.
//! Reading forward, "after this id" (`/history?after_id=`, and a WebSocket
//! resuming with `after_id`), is the same range search the other way.
//!
//! These four methods are all the chat room asks of storage: append a
//! message, read before an id, read after an id, read at an offset.

use std::future::Future;

use rusqlite::{Connection, Row};
use serde::Serialize;

use super::{Db, DbError};
use crate::clock::Timestamp;

/// The newest messages with `id < ?1`, newest first, at most `?2` of them.
pub(super) const BEFORE_ID: &str =
    "SELECT id, username, content, created_at FROM messages WHERE id < ?1 ORDER BY id DESC LIMIT ?2";
/// The oldest messages with `id > ?1`, oldest first, at most `?2` of them.
pub(super) const AFTER_ID: &str =
    "SELECT id, username, content, created_at FROM messages WHERE id > ?1 ORDER BY id ASC LIMIT ?2";
/// Skips the `?2` newest messages and takes the next `?1`, newest first.
pub(super) const AT_OFFSET: &str =
    "SELECT id, username, content, created_at FROM messages ORDER BY id DESC LIMIT ?1 OFFSET ?2";

/// A stored message, serialized as clients see it (the WebSocket `message`
/// event is this object plus `"type"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: i64,
    pub username: String,
    pub content: String,
    pub created_at: Timestamp,
}

/// A message to store: who wrote what. Its time is taken when it is
/// written, on the writer thread, so times follow ids.
pub struct NewMessage {
    pub user_id: i64,
    pub username: String,
    pub content: String,
}

impl Db {
    /// Stores `message` in the next group commit; `on_commit` runs on the
    /// writer thread right after the commit, in commit order (so in id
    /// order). Queued at the call, resolved once durable.
    pub fn append_message(
        &self,
        message: NewMessage,
        on_commit: impl FnOnce(&Message) + Send + 'static,
    ) -> impl Future<Output = Result<Message, DbError>> + Send + 'static {
        self.write_and_then(move |conn| insert(conn, message, Timestamp::now()), on_commit)
    }

    /// Up to `limit` messages with an id below `id`, newest first.
    /// `i64::MAX` as `id` gives the newest messages.
    pub async fn messages_before(&self, id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        self.read(move |conn| before_id(conn, id, limit)).await
    }

    /// Up to `limit` messages with an id above `id`, oldest first.
    pub async fn messages_after(&self, id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        self.read(move |conn| after_id(conn, id, limit)).await
    }

    /// Up to `limit` messages after skipping the `offset` newest, newest first.
    pub async fn messages_at_offset(&self, offset: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        self.read(move |conn| at_offset(conn, offset, limit)).await
    }
}

/// Stores a message; its `id` is assigned here, in commit order.
fn insert(conn: &Connection, message: NewMessage, created_at: Timestamp) -> Result<Message, DbError> {
    let NewMessage {
        user_id,
        username,
        content,
    } = message;
    conn.prepare_cached("INSERT INTO messages (user_id, username, content, created_at) VALUES (?1, ?2, ?3, ?4)")?
        .execute((user_id, &username, &content, created_at.0))?;
    Ok(Message {
        id: conn.last_insert_rowid(),
        username,
        content,
        created_at,
    })
}

pub(super) fn before_id(conn: &Connection, before_id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
    collect(conn, BEFORE_ID, (before_id, limit))
}

pub(super) fn after_id(conn: &Connection, after_id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
    collect(conn, AFTER_ID, (after_id, limit))
}

pub(super) fn at_offset(conn: &Connection, offset: i64, limit: u32) -> Result<Vec<Message>, DbError> {
    collect(conn, AT_OFFSET, (limit, offset))
}

fn collect(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Message>, DbError> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(params, from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        username: row.get(1)?,
        content: row.get(2)?,
        created_at: Timestamp(row.get(3)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::SCHEMA).unwrap();
        conn.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES ('ann', 'x', 0)",
            [],
        )
        .unwrap();
        conn
    }

    fn plan(conn: &Connection, sql: &str) -> String {
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details = statement.query_map((1, 2), |row| row.get::<_, String>(3)).unwrap();
        details.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn keyset_pages_search_the_primary_key_instead_of_scanning() {
        let conn = database();
        for sql in [BEFORE_ID, AFTER_ID] {
            let plan = plan(&conn, sql);
            assert!(plan.contains("SEARCH messages USING INTEGER PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("SCAN"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[test]
    fn offset_pages_walk_the_primary_key_without_sorting() {
        let plan = plan(&database(), AT_OFFSET);
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn pages_are_newest_first_and_bounded() {
        let conn = database();
        for (i, text) in ["a", "b", "c", "d"].iter().enumerate() {
            let message = NewMessage {
                user_id: 1,
                username: "ann".into(),
                content: text.to_string(),
            };
            let stored = insert(&conn, message, Timestamp(i as i64)).unwrap();
            assert_eq!(stored.id, i as i64 + 1);
        }
        let ids = |messages: Vec<Message>| messages.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(before_id(&conn, i64::MAX, 3).unwrap()), [4, 3, 2]);
        assert_eq!(ids(before_id(&conn, 3, 10).unwrap()), [2, 1]);
        assert_eq!(ids(after_id(&conn, 1, 2).unwrap()), [2, 3]);
        assert_eq!(ids(after_id(&conn, 4, 2).unwrap()), Vec::<i64>::new());
        assert_eq!(ids(at_offset(&conn, 1, 2).unwrap()), [3, 2]);
        assert_eq!(ids(at_offset(&conn, 9, 2).unwrap()), Vec::<i64>::new());
        assert_eq!(before_id(&conn, 2, 1).unwrap()[0].content, "a");
    }
}
