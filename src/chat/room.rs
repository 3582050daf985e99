//! The room: the one place a chat message goes through, from its commit to
//! every subscriber, and the one place history pages come from.
//!
//! [`Room::post`] hands the message to storage; right after its commit, on
//! the writer thread and in commit order, the commit hook drops the cached
//! newest page and broadcasts the message through the [`Hub`]. Nobody
//! therefore sees a message that could still be lost, everyone sees
//! messages in ascending `id`, and a client that has seen a message never
//! gets a cached page without it.
//!
//! Storage is reached only through `append_message`, `messages_before`,
//! `messages_after` and `messages_at_offset`: append one message, read
//! before or after an id, read at an offset. That is the seam a second
//! storage backend implements. A file shared in the room ([`Room::share`])
//! is such a message too, one that carries the file.
//!
//! Every page is fetched with one row more than asked for: the extra row
//! only says whether there is an older page (`has_more`), so no query ever
//! counts the table. In the envelope, `next_offset` is set only for the
//! offset form (the offset of the next older page) and `next_before_id` for
//! both forms (the oldest id of this page), each only while `has_more`: a
//! client can switch from offsets to the cheaper keyset form at any page.
//! The forward form (`after_id`) reads the other way, oldest first, and
//! always sets `next_after_id`, so that a client can keep polling forward
//! from the end (see [`paginate_forward`]).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::cache::{NewestPage, SealedPages};
use super::events;
use super::hub::{ClientId, Hub, Membership};
use crate::api::paging::{PageQuery, Start, DEFAULT_LIMIT};
use crate::db::messages::{Message, NewMessage};
use crate::db::{Db, DbError};
use crate::json;
use crate::metrics::METRICS;

pub struct Room {
    db: Db,
    /// Shared with the commit hooks, which run on the writer thread.
    hub: Arc<Hub>,
    newest: Arc<NewestPage>,
    sealed: SealedPages,
}

/// One page of `/history`.
#[derive(Serialize)]
struct Page<'a> {
    messages: Vec<&'a Message>,
    has_more: bool,
    next_offset: Option<i64>,
    next_before_id: Option<i64>,
    next_after_id: Option<i64>,
}

impl Room {
    pub fn new(db: Db) -> Room {
        Room {
            db,
            hub: Arc::default(),
            newest: Arc::default(),
            sealed: SealedPages::default(),
        }
    }

    /// Commits a message, then (see the module's note) drops the newest
    /// page and broadcasts it. The commit is queued at the call, so posts
    /// commit in the order they were made; the future resolves once the
    /// message is durable and broadcast.
    pub fn post(
        &self,
        user_id: i64,
        username: String,
        content: String,
    ) -> impl Future<Output = Result<Message, DbError>> + Send + 'static {
        self.append(NewMessage {
            user_id,
            username,
            content,
            file_id: None,
        })
    }

    /// Shares the file `file_id` of `user_id`'s in the room: a message
    /// whose content is the file's name and which carries the file, posted
    /// like any other (the same commit, hook and order). The same
    /// transaction marks the file shared; a file that is not `user_id`'s, or
    /// was deleted meanwhile, is [`DbError::NotFound`] and posts nothing.
    pub fn share(
        &self,
        user_id: i64,
        username: String,
        file_id: String,
        filename: String,
    ) -> impl Future<Output = Result<Message, DbError>> + Send + 'static {
        self.append(NewMessage {
            user_id,
            username,
            content: filename,
            file_id: Some(file_id),
        })
    }

    /// The one way a message is posted: see the module's note.
    fn append(&self, message: NewMessage) -> impl Future<Output = Result<Message, DbError>> + Send + 'static {
        self.db.append_message(message, self.deliver())
    }

    /// What happens to each committed message, in id order: the commit
    /// hook on SQLite; in cluster mode, what `Room::follow_cluster` runs.
    fn deliver(&self) -> impl FnMut(&Message) + Send + 'static {
        let (hub, newest) = (self.hub.clone(), self.newest.clone());
        move |stored| {
            METRICS.messages_committed.inc();
            newest.invalidate();
            hub.broadcast_message(stored.id, events::message(stored));
        }
    }

    /// In cluster mode, delivers every node's messages to this node's
    /// subscribers in the cluster's id order, from now until `shutdown`
    /// (storage then runs no commit hook of its own; see `db::pg::follow`).
    #[cfg(feature = "postgres")]
    pub async fn follow_cluster(&self, shutdown: crate::shutdown::Shutdown) -> Result<(), DbError> {
        self.db.follow(shutdown, self.deliver()).await
    }

    /// In cluster mode, what resolves when the node loses its database:
    /// its chat sockets then close, as nothing can be posted or delivered
    /// until it returns (see [`Db::lost`]). None on SQLite.
    pub fn storage_lost(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        self.db.lost()
    }

    /// Whether the node reaches its database now (see [`Db::is_reachable`]).
    pub fn storage_reachable(&self) -> bool {
        self.db.is_reachable()
    }

    /// In cluster mode, counts and announces the users of every node, from
    /// now until `shutdown` (see [`presence`](super::presence)).
    #[cfg(feature = "postgres")]
    pub fn follow_presence(&self, shutdown: crate::shutdown::Shutdown) -> impl Future<Output = ()> + Send + 'static {
        super::presence::follow_cluster(self.db.clone(), self.hub.clone(), shutdown)
    }

    /// Forgets every cached page that may show the file `file_id`, once its
    /// deletion is committed: pages read from then on show its messages
    /// without their `file` (see [`SealedPages`]).
    pub fn forget_file(&self, file_id: &str) {
        self.newest.invalidate();
        self.sealed.forget_file(file_id);
    }

    /// Adds a connection to the room (see [`Hub::connect`]); with `held`,
    /// its live events wait until [`Outbox::release`] (see
    /// [`resume`](super::resume)).
    ///
    /// [`Outbox::release`]: super::hub::Outbox::release
    pub fn join(&self, user_id: i64, username: &str, held: bool) -> Membership {
        self.hub.connect(user_id, username, held)
    }

    /// Removes a connection from the room (see [`Hub::disconnect`]);
    /// `announce` false says nothing to the others, for a server that is
    /// shutting down: its users are not leaving.
    pub fn leave(&self, id: ClientId, announce: bool) {
        self.hub.disconnect(id, announce);
    }

    /// Up to `limit` stored messages with an id above `id`, oldest first.
    pub(super) async fn after(&self, id: i64, limit: u32) -> Result<Vec<Message>, DbError> {
        self.db.messages_after(id, limit).await
    }

    /// The `limit` newest stored messages, newest first.
    pub(super) async fn newest(&self, limit: u32) -> Result<Vec<Message>, DbError> {
        self.db.messages_before(i64::MAX, limit).await
    }

    /// Sends one connection alone an event, in order with the broadcasts.
    pub fn tell(&self, id: ClientId, event: Utf8Bytes) {
        self.hub.send_to(id, event);
    }

    /// The body of `/history/last20`: the newest messages, oldest first,
    /// from the cache while no message has been committed since.
    pub async fn newest_page(&self) -> Result<Bytes, DbError> {
        match self.newest.get() {
            Ok(body) => Ok(body),
            Err(generation) => {
                let mut newest = self.db.messages_before(i64::MAX, DEFAULT_LIMIT).await?;
                newest.reverse();
                let body = Bytes::from(json::encode(&newest));
                self.newest.store(generation, body.clone());
                Ok(body)
            }
        }
    }

    /// The body of one `/history` page; a sealed keyset page comes from the
    /// cache.
    pub async fn page(&self, query: PageQuery) -> Result<Bytes, DbError> {
        let key = match query.start {
            Start::BeforeId(id) => Some((id, query.limit)),
            Start::Offset(_) | Start::AfterId(_) => None,
        };
        if let Some(body) = key.and_then(|key| self.sealed.get(key)) {
            return Ok(body);
        }
        // Taken before the read: a file deleted during it keeps the page out.
        let deletions = self.sealed.deletions();
        let fetch = query.limit + 1;
        let rows = match query.start {
            Start::Offset(offset) => self.db.messages_at_offset(offset, fetch).await?,
            Start::BeforeId(id) => self.db.messages_before(id, fetch).await?,
            Start::AfterId(id) => {
                let rows = self.db.messages_after(id, fetch).await?;
                return Ok(Bytes::from(json::encode(&paginate_forward(&rows, id, query.limit))));
            }
        };
        let page = paginate(&rows, query);
        let body = Bytes::from(json::encode(&page));
        if let Some((before_id, limit)) = key {
            if rows.first().is_some_and(|newest| newest.id == before_id - 1) {
                let files = page
                    .messages
                    .iter()
                    .filter_map(|m| m.file.as_ref().map(|f| f.id.clone()));
                self.sealed
                    .store((before_id, limit), body.clone(), files.collect(), deletions);
            }
        }
        Ok(body)
    }
}

/// Builds the envelope from up to `limit + 1` rows, newest first.
fn paginate(rows: &[Message], query: PageQuery) -> Page<'_> {
    let limit = query.limit as usize;
    let has_more = rows.len() > limit;
    let page = &rows[..rows.len().min(limit)];
    let next_offset = match query.start {
        Start::Offset(offset) if has_more => Some(offset.saturating_add(i64::from(query.limit))),
        _ => None,
    };
    Page {
        messages: page.iter().rev().collect(),
        has_more,
        next_offset,
        next_before_id: page.last().filter(|_| has_more).map(|oldest| oldest.id),
        next_after_id: None,
    }
}

/// Builds the envelope of the forward form from up to `limit + 1` rows with
/// an id above `after_id`, oldest first. `next_after_id` is the newest id of
/// the page, or `after_id` itself when the page is empty: where to ask next,
/// whether or not newer messages exist yet.
fn paginate_forward(rows: &[Message], after_id: i64, limit: u32) -> Page<'_> {
    let page = &rows[..rows.len().min(limit as usize)];
    Page {
        messages: page.iter().collect(),
        has_more: rows.len() > page.len(),
        next_offset: None,
        next_before_id: None,
        next_after_id: Some(page.last().map_or(after_id, |newest| newest.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn message(id: i64) -> Message {
        Message {
            id,
            username: "ann".into(),
            content: format!("m{id}"),
            created_at: Timestamp(0),
            file: None,
        }
    }

    #[test]
    fn a_full_page_with_an_extra_row_points_at_the_next_one() {
        let rows: Vec<Message> = (5..=9).rev().map(message).collect();
        let query = PageQuery {
            start: Start::Offset(10),
            limit: 4,
        };
        let page = paginate(&rows, query);
        let ids: Vec<i64> = page.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [6, 7, 8, 9]);
        assert!(page.has_more);
        assert_eq!((page.next_offset, page.next_before_id), (Some(14), Some(6)));
    }

    #[test]
    fn the_last_page_has_no_next() {
        let rows: Vec<Message> = (1..=2).rev().map(message).collect();
        let query = PageQuery {
            start: Start::BeforeId(3),
            limit: 2,
        };
        let page = paginate(&rows, query);
        assert_eq!(page.messages.len(), 2);
        assert!(!page.has_more);
        assert_eq!((page.next_offset, page.next_before_id), (None, None));
        assert!(paginate(&[], query).messages.is_empty());
    }

    #[test]
    fn forward_pages_are_oldest_first_and_always_say_where_to_continue() {
        let rows: Vec<Message> = (4..=7).map(message).collect();
        let page = paginate_forward(&rows, 3, 3);
        let ids: Vec<i64> = page.messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, [4, 5, 6]);
        assert!(page.has_more);
        assert_eq!(
            (page.next_after_id, page.next_before_id, page.next_offset),
            (Some(6), None, None)
        );
        let last = paginate_forward(&rows[3..], 6, 3);
        assert!(!last.has_more);
        assert_eq!(last.next_after_id, Some(7));
        assert_eq!(paginate_forward(&[], 7, 3).next_after_id, Some(7));
    }
}
