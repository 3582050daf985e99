//! Chat messages: the insert behind every broadcast, and the history queries.
//!
//! `id` is the table's `INTEGER PRIMARY KEY` (the rowid), so the newest
//! messages and every "before this id" page are a range search on the
//! table's own b-tree: the cost depends on the page size, not on how many
//! messages exist or how deep the page lies. Paging by offset is the
//! exception: SQLite has to step over `offset` rows to find the page, so it
//! grows with the offset; clients that go deep should use `before_id`.
//!
//! These three methods are all the chat room asks of storage: append a
//! message, read before an id, read at an offset.
//!
//! A file message (v2) names its file in `file_id`; every read joins `files`
//! on that id (its unique index) for the `file` object, so a message shows
//! its file exactly while the file exists. Deleting a file also clears
//! `file_id` in its messages (see `db::files`). For a plain message the
//! join costs almost nothing: `file_id` is NULL, and SQLite skips the index
//! seek for a NULL key. The name, size and type are not copied into the
//! message row, so nothing has to be kept in step when a file goes.

use std::future::Future;

use rusqlite::{Connection, OptionalExtension, Row};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::{Db, DbError};
use crate::clock::Timestamp;

/// A query of messages as [`from_row`] reads them: the message's columns,
/// then its file's (NULL when it carries none), followed by `$rest`.
macro_rules! select_messages {
    ($rest:literal) => {
        concat!(
            "SELECT m.id, m.username, m.content, m.created_at, f.id, f.filename, f.size, f.content_type \
             FROM messages m LEFT JOIN files f ON f.id = m.file_id ",
            $rest
        )
    };
}

/// The newest messages with `id < ?1`, newest first, at most `?2` of them.
pub(super) const BEFORE_ID: &str = select_messages!("WHERE m.id < ?1 ORDER BY m.id DESC LIMIT ?2");
/// Skips the `?2` newest messages and takes the next `?1`, newest first.
pub(super) const AT_OFFSET: &str = select_messages!("ORDER BY m.id DESC LIMIT ?1 OFFSET ?2");

/// A stored message, serialized as clients see it (the WebSocket `message`
/// event is this object plus `"type"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: i64,
    pub username: String,
    pub content: String,
    pub created_at: Timestamp,
    /// The file a file message carries, while it exists. A plain message
    /// has no `file` key at all, as in v1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<MessageFile>,
}

/// The file of a file message, as clients see it:
/// `{"id", "filename", "size", "content_type", "download_url"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageFile {
    pub id: String,
    pub filename: String,
    pub size: u64,
    pub content_type: String,
}

/// By hand, so that `download_url` is written from the id instead of being
/// kept in every message read.
impl Serialize for MessageFile {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut file = serializer.serialize_struct("MessageFile", 5)?;
        file.serialize_field("id", &self.id)?;
        file.serialize_field("filename", &self.filename)?;
        file.serialize_field("size", &self.size)?;
        file.serialize_field("content_type", &self.content_type)?;
        file.serialize_field("download_url", &format_args!("/files/{}", self.id))?;
        file.end()
    }
}

/// A message to store: who wrote what. Its time is taken when it is
/// written, on the writer thread, so times follow ids.
pub struct NewMessage {
    pub user_id: i64,
    pub username: String,
    pub content: String,
    /// A file of `user_id`'s to carry: the same transaction marks it shared,
    /// and fails with [`DbError::NotFound`] if it is not (or no longer) there.
    pub file_id: Option<String>,
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
        file_id,
    } = message;
    let file = match &file_id {
        Some(id) => Some(mark_shared(conn, id, user_id)?.ok_or(DbError::NotFound("no such file"))?),
        None => None,
    };
    conn.prepare_cached(
        "INSERT INTO messages (user_id, username, content, created_at, file_id) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute((user_id, &username, &content, created_at.0, &file_id))?;
    Ok(Message {
        id: conn.last_insert_rowid(),
        username,
        content,
        created_at,
        file,
    })
}

/// Marks `id` shared if `uploader` uploaded it, inside the transaction that
/// stores the file message: the file as that message carries it, or `None`
/// if there is no such file of `uploader`'s (then nothing is written).
fn mark_shared(conn: &Connection, id: &str, uploader: i64) -> Result<Option<MessageFile>, DbError> {
    let file = conn
        .prepare_cached(
            "UPDATE files SET shared = 1 WHERE id = ?1 AND uploaded_by = ?2 \
             RETURNING id, filename, size, content_type",
        )?
        .query_row((id, uploader), |row| {
            Ok(MessageFile {
                id: row.get(0)?,
                filename: row.get(1)?,
                size: row.get(2)?,
                content_type: row.get(3)?,
            })
        })
        .optional()?;
    Ok(file)
}

pub(super) fn before_id(conn: &Connection, before_id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
    collect(conn, BEFORE_ID, (before_id, limit))
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
        file: match row.get::<_, Option<String>>(4)? {
            None => None,
            Some(id) => Some(MessageFile {
                id,
                filename: row.get(5)?,
                size: row.get(6)?,
                content_type: row.get(7)?,
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::files;
    use crate::json;

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
        let plan = plan(&conn, BEFORE_ID);
        assert!(plan.contains("SEARCH m USING INTEGER PRIMARY KEY"), "{plan}");
        assert!(
            plan.contains("SEARCH f USING INDEX sqlite_autoindex_files_1 (id=?)"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
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
                file_id: None,
            };
            let stored = insert(&conn, message, Timestamp(i as i64)).unwrap();
            assert_eq!(stored.id, i as i64 + 1);
        }
        let ids = |messages: Vec<Message>| messages.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(before_id(&conn, i64::MAX, 3).unwrap()), [4, 3, 2]);
        assert_eq!(ids(before_id(&conn, 3, 10).unwrap()), [2, 1]);
        assert_eq!(ids(at_offset(&conn, 1, 2).unwrap()), [3, 2]);
        assert_eq!(ids(at_offset(&conn, 9, 2).unwrap()), Vec::<i64>::new());
        assert_eq!(before_id(&conn, 2, 1).unwrap()[0].content, "a");
    }

    #[test]
    fn a_file_message_carries_its_file_while_the_file_exists() {
        let conn = database();
        conn.execute(
            "INSERT INTO files (id, filename, size, content_type, sha256, uploaded_by, created_at) \
             VALUES ('f1', 'a.txt', 5, 'text/plain', 'x', 1, 0)",
            [],
        )
        .unwrap();
        let share = |file_id: &str, user_id| NewMessage {
            user_id,
            username: "ann".into(),
            content: "a.txt".into(),
            file_id: Some(file_id.into()),
        };
        assert!(matches!(
            insert(&conn, share("f1", 2), Timestamp(0)),
            Err(DbError::NotFound(_))
        ));
        assert!(matches!(
            insert(&conn, share("nope", 1), Timestamp(0)),
            Err(DbError::NotFound(_))
        ));
        let stored = insert(&conn, share("f1", 1), Timestamp(0)).unwrap();
        let file = stored.file.clone().unwrap();
        assert_eq!(
            (file.id.as_str(), file.filename.as_str(), file.size),
            ("f1", "a.txt", 5)
        );
        assert_eq!(before_id(&conn, i64::MAX, 1).unwrap(), std::slice::from_ref(&stored));
        let shared: bool = conn.query_row("SELECT shared FROM files", [], |r| r.get(0)).unwrap();
        assert!(shared);
        assert_eq!(
            files::delete_owned(&conn, "f1", 1).unwrap(),
            super::super::files::Deletion::Deleted
        );
        let after = &before_id(&conn, i64::MAX, 1).unwrap()[0];
        assert_eq!((after.content.as_str(), &after.file), ("a.txt", &None));
        assert!(!json::encode(after).contains("\"file\""));
    }
}
