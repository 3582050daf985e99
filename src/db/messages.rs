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
//!
//! A file message (v2) names its file in `file_id`. A page reads that one
//! column more, and only for the rows that have one looks the file up by its
//! id (the unique index of `files`) for the `file` object, so a message
//! shows its file exactly while the file exists. Deleting a file also clears
//! `file_id` in its messages (see `db::files`). The name, size and type are
//! not copied into the message row, so nothing has to be kept in step when
//! a file goes.
//!
//! Why not a `LEFT JOIN files` in the page query: SQLite would run the join
//! (read `file_id`, test it, fill a row of NULLs) for every row it steps
//! over, the `offset` rows it skips included, where the plain query reads
//! no column of a skipped row at all. Counted with callgrind
//! (`bench/scripts/instructions.sh`), the join made a page at offset 100
//! cost 38 % more; the lookup afterwards costs a plain page one column.
//! The lookup is a second statement, so it may see a file deleted after the
//! page was read: the message then shows no file, which is what it shows
//! from then on anyway (ids are never reused, so it can never show another
//! file).

use std::future::Future;

use rusqlite::{Connection, OptionalExtension, Row};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

use super::{Db, DbError};
use crate::clock::Timestamp;

/// A query of messages as [`collect`] reads them: `id, username, content,
/// created_at, file_id`, followed by `$rest`.
macro_rules! select_messages {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, content, created_at, file_id FROM messages ",
            $rest
        )
    };
}

/// The newest messages with `id < ?1`, newest first, at most `?2` of them.
pub(super) const BEFORE_ID: &str = select_messages!("WHERE id < ?1 ORDER BY id DESC LIMIT ?2");
/// The oldest messages with `id > ?1`, oldest first, at most `?2` of them.
pub(super) const AFTER_ID: &str = select_messages!("WHERE id > ?1 ORDER BY id ASC LIMIT ?2");
/// Skips the `?2` newest messages and takes the next `?1`, newest first.
pub(super) const AT_OFFSET: &str = select_messages!("ORDER BY id DESC LIMIT ?1 OFFSET ?2");
/// The file a message carries, by its id.
const FILE: &str = "SELECT id, filename, size, content_type FROM files WHERE id = ?1";

/// A stored message, serialized as clients see it (the WebSocket `message`
/// event is this object plus `"type"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: i64,
    pub username: String,
    pub content: String,
    pub created_at: Timestamp,
    /// The file a file message carries, while it exists. A plain message
    /// has no `file` key at all, as in v1. Boxed, so that a plain message,
    /// which every page is mostly made of, stays as small as it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<Box<MessageFile>>,
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
    /// order). Queued at the call, resolved once durable. On PostgreSQL
    /// `on_commit` is not run: the cluster's messages are delivered by
    /// `Db::follow`, in the cluster's id order.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::let_and_return))]
    pub fn append_message(
        &self,
        message: NewMessage,
        on_commit: impl FnOnce(&Message) + Send + 'static,
    ) -> impl Future<Output = Result<Message, DbError>> + Send + 'static {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.postgres() {
            return futures_util::future::Either::Left(pg.append_message(message));
        }
        let sqlite = self.write_and_then(move |conn| insert(conn, message, Timestamp::now()), on_commit);
        #[cfg(feature = "postgres")]
        let sqlite = futures_util::future::Either::Right(sqlite);
        sqlite
    }

    /// Up to `limit` messages with an id below `id`, newest first.
    /// `i64::MAX` as `id` gives the newest messages.
    pub async fn messages_before(&self, id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        super::on_postgres!(self, messages_before(id, limit));
        self.read(move |conn| before_id(conn, id, limit)).await
    }

    /// Up to `limit` messages with an id above `id`, oldest first.
    pub async fn messages_after(&self, id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        super::on_postgres!(self, messages_after(id, limit));
        self.read(move |conn| after_id(conn, id, limit)).await
    }

    /// Up to `limit` messages after skipping the `offset` newest, newest first.
    pub async fn messages_at_offset(&self, offset: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        super::on_postgres!(self, messages_at_offset(offset, limit));
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
fn mark_shared(conn: &Connection, id: &str, uploader: i64) -> Result<Option<Box<MessageFile>>, DbError> {
    let file = conn
        .prepare_cached(
            "UPDATE files SET shared = 1 WHERE id = ?1 AND uploaded_by = ?2 \
             RETURNING id, filename, size, content_type",
        )?
        .query_row((id, uploader), file_from_row)
        .optional()?;
    Ok(file)
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

/// Reads the messages a [`select_messages!`] query selects, then the file
/// of each row that names one.
fn collect(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Message>, DbError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut messages = Vec::new();
    let mut carrying = Vec::new();
    while let Some(row) = rows.next()? {
        if let Some(file_id) = row.get::<_, Option<String>>(4)? {
            carrying.push((messages.len(), file_id));
        }
        messages.push(from_row(row)?);
    }
    if !carrying.is_empty() {
        let mut file = conn.prepare_cached(FILE)?;
        for (index, file_id) in carrying {
            messages[index].file = file.query_row([file_id], file_from_row).optional()?;
        }
    }
    Ok(messages)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        username: row.get(1)?,
        content: row.get(2)?,
        created_at: Timestamp(row.get(3)?),
        file: None,
    })
}

fn file_from_row(row: &Row<'_>) -> rusqlite::Result<Box<MessageFile>> {
    Ok(Box::new(MessageFile {
        id: row.get(0)?,
        filename: row.get(1)?,
        size: row.get(2)?,
        content_type: row.get(3)?,
    }))
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
        for sql in [BEFORE_ID, AFTER_ID] {
            let plan = plan(&conn, sql);
            assert!(plan.contains("SEARCH messages USING INTEGER PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("SCAN"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[test]
    fn a_file_is_found_by_its_unique_index() {
        let conn = database();
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {FILE}")).unwrap();
        let plan: String = statement.query_row(["x"], |row| row.get(3)).unwrap();
        assert_eq!(plan, "SEARCH files USING INDEX sqlite_autoindex_files_1 (id=?)");
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
        assert_eq!(ids(after_id(&conn, 1, 2).unwrap()), [2, 3]);
        assert_eq!(ids(after_id(&conn, 4, 2).unwrap()), Vec::<i64>::new());
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
