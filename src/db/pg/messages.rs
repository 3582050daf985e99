//! Messages on PostgreSQL: the group-commit writer that gives ids, and the
//! history reads.
//!
//! Ids come from the one row of `message_counter`, never from a sequence:
//! a sequence hands out numbers at `nextval`, so a transaction holding a
//! lower id can commit after one holding a higher id, and a reader between
//! the two commits would see a gap that later fills. Here a batch takes its
//! ids with one `UPDATE ... RETURNING` of that row inside the transaction
//! that inserts the messages. The row lock is held until the commit, so the
//! next batch (from this node or any other) gets its ids only after this
//! one has committed and become visible: ids follow commit order, with no
//! gap, and any snapshot that sees id `n` sees every id below it. That is
//! what lets every node deliver by reading `id > last delivered`.
//!
//! One batch is one counter update, one multi-row insert, one `pg_notify`
//! and one commit; a caller is answered only after the commit.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Row};

use super::{PgDb, CHANNEL};
use crate::clock::Timestamp;
use crate::db::messages::{Message, MessageFile, NewMessage};
use crate::db::DbError;
use crate::metrics::METRICS;

/// Messages batched into one transaction at most.
const MAX_BATCH: usize = 512;
const WRITE_QUEUE: usize = 8192;

/// A message columns then its file's, for [`from_row`]; `$rest` is the
/// condition, order and limit.
macro_rules! select_messages {
    ($rest:literal) => {
        concat!(
            "SELECT m.id, m.username, m.content, m.created_at, f.id, f.filename, f.size, f.content_type \
             FROM messages m LEFT JOIN files f ON f.id = m.file_id ",
            $rest
        )
    };
}

const AFTER_ID: &str = select_messages!("WHERE m.id > $1 ORDER BY m.id ASC LIMIT $2");
const BEFORE_ID: &str = select_messages!("WHERE m.id < $1 ORDER BY m.id DESC LIMIT $2");
const AT_OFFSET: &str = select_messages!("ORDER BY m.id DESC OFFSET $1 LIMIT $2");

/// A message waiting for the writer, and where its answer goes.
pub(crate) struct Append {
    message: NewMessage,
    reply: oneshot::Sender<Result<Message, DbError>>,
}

impl PgDb {
    /// Stores `message` in the next group commit. Queued at the call,
    /// resolved once committed and, while this node follows the cluster,
    /// delivered by [`follow`](super::follow): the loop that broadcasts
    /// every node's messages, this one's included, in the cluster's id
    /// order. There is no commit hook: a hook would broadcast this node's
    /// messages ahead of lower ids committed by other nodes.
    pub(crate) fn append_message(
        &self,
        message: NewMessage,
    ) -> impl Future<Output = Result<Message, DbError>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .writer
            .try_send(Append { message, reply })
            .map_err(|_| DbError::Unavailable("too many writes waiting".into()));
        let mut delivered = self.delivered.subscribe();
        async move {
            queued?;
            let stored = answer
                .await
                .map_err(|_| DbError::Unavailable("storage writer stopped".into()))??;
            if delivered.borrow().is_some() {
                delivered
                    .wait_for(|delivered| delivered.is_none_or(|last| last >= stored.id))
                    .await
                    .map_err(|_| DbError::Unavailable("delivery stopped".into()))?;
            }
            Ok(stored)
        }
    }

    /// The newest message id given out.
    pub(crate) async fn last_id(&self) -> Result<i64, DbError> {
        let row = self
            .client()
            .await?
            .query_one("SELECT last_id FROM message_counter", &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Up to `limit` messages with an id above `id`, oldest first.
    pub(crate) async fn messages_after(&self, id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        self.page(AFTER_ID, id, limit).await
    }

    /// Up to `limit` messages with an id below `id`, newest first.
    pub(crate) async fn messages_before(&self, id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        self.page(BEFORE_ID, id, limit).await
    }

    /// Up to `limit` messages after skipping the `offset` newest, newest first.
    pub(crate) async fn messages_at_offset(&self, offset: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        self.page(AT_OFFSET, offset, limit).await
    }

    /// A page of `sql`, whose parameters are an id or offset, and a limit.
    async fn page(&self, sql: &str, from: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        let rows = self.client().await?.query(sql, &[&from, &i64::from(limit)]).await?;
        rows.iter().map(from_row).collect()
    }
}

/// Starts the writer task on `client`, the node's one writing connection,
/// which it opens again (through `dialer`) before the next batch once it is
/// lost.
/// A batch whose commit was cut off is answered unavailable: it may or may
/// not have committed, and if it did, it is delivered like any other.
pub(super) fn start_writer(dialer: super::dial::Dialer, client: Client) -> mpsc::Sender<Append> {
    let (tx, mut rx) = mpsc::channel(WRITE_QUEUE);
    tokio::spawn(async move {
        let mut client = Some(client);
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            let started = std::time::Instant::now();
            let (messages, replies): (Vec<NewMessage>, Vec<_>) = batch
                .drain(..)
                .map(|append: Append| (append.message, append.reply))
                .unzip();
            let committed = match client.take().filter(|client| !client.is_closed()) {
                Some(open) => Ok(open),
                None => dialer.dial().await,
            };
            let committed = match committed {
                Ok(mut open) => {
                    let result = commit(&mut open, &messages).await;
                    client = Some(open);
                    result
                }
                Err(e) => Err(e),
            };
            match committed {
                Ok(stored) => {
                    for (reply, result) in replies.into_iter().zip(stored) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            METRICS.commit_latency.observe_duration(started.elapsed());
            METRICS.commit_batch_size.observe(messages.len() as u64);
        }
    });
    tx
}

/// Commits one batch: first marks the shared files (a message whose file
/// is not its author's is answered `NotFound` and takes no id), then takes
/// the ids of the rest, inserts them and rings the doorbell, all in one
/// transaction. The answers follow the batch's order.
async fn commit(client: &mut Client, batch: &[NewMessage]) -> Result<Vec<Result<Message, DbError>>, DbError> {
    let created_at = Timestamp::now();
    let transaction = client.transaction().await?;
    let mut files = Vec::with_capacity(batch.len());
    for message in batch {
        let file = match &message.file_id {
            None => Ok(None),
            Some(id) => match transaction
                .query_opt(
                    "UPDATE files SET shared = TRUE WHERE id = $1 AND uploaded_by = $2 \
                     RETURNING id, filename, size, content_type",
                    &[id, &message.user_id],
                )
                .await?
            {
                Some(row) => Ok(Some(file_from_row(&row, 0)?)),
                None => Err(DbError::NotFound("no such file")),
            },
        };
        files.push(file);
    }
    let accepted = files.iter().filter(|file| file.is_ok()).count() as i64;
    let mut next = 0;
    if accepted > 0 {
        let last: i64 = transaction
            .query_one(
                "UPDATE message_counter SET last_id = last_id + $1 RETURNING last_id",
                &[&accepted],
            )
            .await?
            .get(0);
        next = last - accepted + 1;
    }
    let mut columns = Columns::default();
    let mut stored = Vec::with_capacity(batch.len());
    for (message, file) in batch.iter().zip(files) {
        stored.push(file.map(|file| {
            columns.push(next, message);
            next += 1;
            Message {
                id: next - 1,
                username: message.username.clone(),
                content: message.content.clone(),
                created_at,
                file,
            }
        }));
    }
    if let Some(&last) = columns.ids.last() {
        transaction
            .execute(
                "INSERT INTO messages (id, user_id, username, content, created_at, file_id) \
                 SELECT id, user_id, username, content, $5, file_id \
                 FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $6::TEXT[]) \
                 AS m (id, user_id, username, content, file_id)",
                &[
                    &columns.ids,
                    &columns.user_ids,
                    &columns.usernames,
                    &columns.contents,
                    &created_at.0,
                    &columns.file_ids,
                ],
            )
            .await?;
        transaction
            .execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &last.to_string()])
            .await?;
    }
    transaction.commit().await?;
    Ok(stored)
}

/// The accepted messages of a batch as columns, for one `UNNEST` insert.
#[derive(Default)]
struct Columns {
    ids: Vec<i64>,
    user_ids: Vec<i64>,
    usernames: Vec<String>,
    contents: Vec<String>,
    file_ids: Vec<Option<String>>,
}

impl Columns {
    fn push(&mut self, id: i64, message: &NewMessage) {
        self.ids.push(id);
        self.user_ids.push(message.user_id);
        self.usernames.push(message.username.clone());
        self.contents.push(message.content.clone());
        self.file_ids.push(message.file_id.clone());
    }
}

/// A row of a [`select_messages!`] query.
fn from_row(row: &Row) -> Result<Message, DbError> {
    let file_id: Option<String> = row.try_get(4)?;
    Ok(Message {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        content: row.try_get(2)?,
        created_at: Timestamp(row.try_get(3)?),
        file: file_id.map(|_| file_from_row(row, 4)).transpose()?,
    })
}

/// The file whose `id, filename, size, content_type` start at column `at`.
fn file_from_row(row: &Row, at: usize) -> Result<Box<MessageFile>, tokio_postgres::Error> {
    Ok(Box::new(MessageFile {
        id: row.try_get(at)?,
        filename: row.try_get(at + 1)?,
        size: row.try_get::<_, i64>(at + 2)?.max(0) as u64,
        content_type: row.try_get(at + 3)?,
    }))
}
