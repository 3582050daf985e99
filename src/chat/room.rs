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
//! Storage is reached only through `append_message`, `messages_before` and
//! `messages_at_offset`: append one message, read before an id, read at an
//! offset. That is the seam a second storage backend implements.
//!
//! Every page is fetched with one row more than asked for: the extra row
//! only says whether there is an older page (`has_more`), so no query ever
//! counts the table. In the envelope, `next_offset` is set only for the
//! offset form (the offset of the next older page) and `next_before_id` for
//! both forms (the oldest id of this page), each only while `has_more`: a
//! client can switch from offsets to the cheaper keyset form at any page.

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
        let (hub, newest) = (self.hub.clone(), self.newest.clone());
        let message = NewMessage {
            user_id,
            username,
            content,
        };
        self.db.append_message(message, move |stored| {
            METRICS.messages_committed.inc();
            newest.invalidate();
            hub.broadcast(events::message(stored));
        })
    }

    /// Adds a connection to the room (see [`Hub::connect`]).
    pub fn join(&self, user_id: i64, username: &str) -> Membership {
        self.hub.connect(user_id, username)
    }

    /// Removes a connection from the room (see [`Hub::disconnect`]).
    pub fn leave(&self, id: ClientId) {
        self.hub.disconnect(id);
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
            Start::Offset(_) => None,
        };
        if let Some(body) = key.and_then(|key| self.sealed.get(key)) {
            return Ok(body);
        }
        let fetch = query.limit + 1;
        let rows = match query.start {
            Start::Offset(offset) => self.db.messages_at_offset(offset, fetch).await?,
            Start::BeforeId(id) => self.db.messages_before(id, fetch).await?,
        };
        let body = Bytes::from(json::encode(&paginate(&rows, query)));
        if let Some((before_id, limit)) = key {
            if rows.first().is_some_and(|newest| newest.id == before_id - 1) {
                self.sealed.store((before_id, limit), body.clone());
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
}
