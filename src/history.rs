//! History routes: `GET /history/last20` and `GET /history` (by offset or by
//! `before_id`), and the JSON form of a stored message, which the WebSocket
//! `message` event shares (it is this object plus `"type"`).
//!
//! Every page is fetched with one row more than asked for: the extra row
//! only says whether there is an older page (`has_more`), so no query ever
//! counts the table. In the envelope, `next_offset` is set only for the
//! offset form (the offset of the next older page) and `next_before_id` for
//! both forms (the oldest id of this page), each only while `has_more`: a
//! client can switch from offsets to the cheaper keyset form at any page.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use serde::Serialize;

use crate::clock;
use crate::db::messages::{self, Message};
use crate::error::ApiError;
use crate::http::form;
use crate::http::response::Response;
use crate::json;
use crate::router::Exchange;

/// The size of `/history/last20`, and the default `limit`.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

/// A stored message as clients see it.
#[derive(Serialize)]
pub struct MessageView<'a> {
    pub id: i64,
    pub username: &'a str,
    pub content: &'a str,
    pub created_at: String,
}

impl<'a> From<&'a Message> for MessageView<'a> {
    fn from(message: &'a Message) -> Self {
        MessageView {
            id: message.id,
            username: &message.username,
            content: &message.content,
            created_at: clock::rfc3339_millis(message.created_at),
        }
    }
}

/// Where a page of `/history` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    /// Skip this many of the newest messages.
    Offset(i64),
    /// Only messages with a smaller id.
    BeforeId(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PageQuery {
    start: Start,
    limit: u32,
}

#[derive(Serialize)]
struct Page<'a> {
    messages: Vec<MessageView<'a>>,
    has_more: bool,
    next_offset: Option<i64>,
    next_before_id: Option<i64>,
}

/// The encoded body of `/history/last20`, kept until the next message is
/// committed: the newest page is what every client asks for first, and
/// between messages it does not change.
///
/// Whoever commits a message calls [`NewestPage::invalidate`] after the
/// commit and before broadcasting it, so a client that has seen a message
/// never gets a cached page without it. A page read from the database is
/// kept only if no message was committed since its read began (the
/// generation is unchanged), so a page read just before a commit is never
/// kept after it.
#[derive(Default)]
pub struct NewestPage {
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// Counts invalidations.
    generation: u64,
    body: Option<Bytes>,
}

impl NewestPage {
    pub fn invalidate(&self) {
        let mut cached = self.lock();
        cached.generation += 1;
        cached.body = None;
    }

    /// The cached body, or the generation a fresh read must be stored under.
    fn get(&self) -> Result<Bytes, u64> {
        let cached = self.lock();
        cached.body.clone().ok_or(cached.generation)
    }

    fn store(&self, generation: u64, body: Bytes) {
        let mut cached = self.lock();
        if cached.generation == generation {
            cached.body = Some(body);
        }
    }

    /// A poisoned lock still holds a consistent pair: both fields are
    /// written under it with nothing that can panic in between.
    fn lock(&self) -> MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Bytes of encoded pages [`SealedPages`] keeps at most.
const SEALED_PAGES_BUDGET: usize = 4 * 1024 * 1024;

/// Encoded `before_id` pages that can never change, so that clients
/// scrolling back through the same history (every client starts from the
/// same newest page, so their `next_before_id`s coincide) are served from
/// memory.
///
/// Messages are never edited or deleted, and a new message always gets an
/// id above every existing one. So once the page below `before_id` holds
/// the message `before_id - 1`, no message can ever join it, and neither its
/// rows nor its `has_more` can change: it is sealed. A page that is not
/// (it reaches the newest end of the room, or the ids have a gap) is never
/// kept. The oldest entries are dropped first once the budget is reached.
#[derive(Default)]
pub struct SealedPages {
    pages: Mutex<Sealed>,
}

#[derive(Default)]
struct Sealed {
    bodies: HashMap<PageKey, Bytes>,
    /// Keys in the order they were stored, oldest first.
    order: VecDeque<PageKey>,
    bytes: usize,
}

/// `before_id` and `limit`.
type PageKey = (i64, u32);

impl SealedPages {
    fn get(&self, key: PageKey) -> Option<Bytes> {
        self.lock().bodies.get(&key).cloned()
    }

    /// A page already kept is left as it is: being sealed, it is the same.
    fn store(&self, key: PageKey, body: Bytes) {
        let mut sealed = self.lock();
        let sealed = &mut *sealed;
        if body.len() > SEALED_PAGES_BUDGET || sealed.bodies.contains_key(&key) {
            return;
        }
        while sealed.bytes + body.len() > SEALED_PAGES_BUDGET {
            let Some(oldest) = sealed.order.pop_front() else { break };
            if let Some(dropped) = sealed.bodies.remove(&oldest) {
                sealed.bytes -= dropped.len();
            }
        }
        sealed.bytes += body.len();
        sealed.bodies.insert(key, body);
        sealed.order.push_back(key);
    }

    /// Every update leaves the map, the order and the byte count agreeing
    /// before anything that could panic, so a poisoned lock is still sound.
    fn lock(&self) -> MutexGuard<'_, Sealed> {
        self.pages.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub async fn last20(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    ex.authenticate()?;
    let cache = &ex.app.newest_page;
    let body = match cache.get() {
        Ok(body) => body,
        Err(generation) => {
            let mut newest = ex
                .app
                .db
                .read(|conn| messages::before_id(conn, i64::MAX, DEFAULT_LIMIT))
                .await?;
            newest.reverse();
            let views: Vec<MessageView<'_>> = newest.iter().map(MessageView::from).collect();
            let body = json::encode(&views);
            cache.store(generation, body.clone());
            body
        }
    };
    Ok(Response::bytes(200, "application/json", body))
}

pub async fn page(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    ex.authenticate()?;
    let query = parse_query(ex.request.query())?;
    let sealed = &ex.app.sealed_pages;
    let key = match query.start {
        Start::BeforeId(id) => Some((id, query.limit)),
        Start::Offset(_) => None,
    };
    if let Some(body) = key.and_then(|key| sealed.get(key)) {
        return Ok(Response::bytes(200, "application/json", body));
    }
    let fetch = query.limit + 1;
    let rows = ex
        .app
        .db
        .read(move |conn| match query.start {
            Start::Offset(offset) => messages::at_offset(conn, offset, fetch),
            Start::BeforeId(id) => messages::before_id(conn, id, fetch),
        })
        .await?;
    let body = json::encode(&paginate(&rows, query));
    if let Some((before_id, limit)) = key {
        if rows.first().is_some_and(|newest| newest.id == before_id - 1) {
            sealed.store((before_id, limit), body.clone());
        }
    }
    Ok(Response::bytes(200, "application/json", body))
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
        messages: page.iter().rev().map(MessageView::from).collect(),
        has_more,
        next_offset,
        next_before_id: page.last().filter(|_| has_more).map(|oldest| oldest.id),
    }
}

/// `offset` (default 0) or `before_id`, never both, and `limit` 1 to 100
/// (default 20); any other parameter is ignored.
fn parse_query(query: &str) -> Result<PageQuery, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        let Some(value) = form::get(query, name) else {
            return Ok(None);
        };
        match value.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::unprocessable(format!(
                "'{name}' must be a whole number of at least 0"
            ))),
        }
    };
    let limit = match number("limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
        Some(_) => return Err(ApiError::unprocessable("'limit' must be from 1 to 100")),
    };
    let start = match (number("offset")?, number("before_id")?) {
        (Some(_), Some(_)) => return Err(ApiError::unprocessable("give either 'offset' or 'before_id', not both")),
        (_, Some(id)) => Start::BeforeId(id),
        (offset, None) => Start::Offset(offset.unwrap_or(0)),
    };
    Ok(PageQuery { start, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: i64) -> Message {
        Message {
            id,
            username: "ann".into(),
            content: format!("m{id}"),
            created_at: 0,
        }
    }

    #[test]
    fn sealed_pages_keep_to_their_budget_dropping_the_oldest() {
        let pages = SealedPages::default();
        let quarter = Bytes::from(vec![b'x'; SEALED_PAGES_BUDGET / 4]);
        for id in 1..=4 {
            pages.store((id, 20), quarter.clone());
        }
        pages.store((2, 20), quarter.clone());
        assert!(
            (1..=4).all(|id| pages.get((id, 20)).is_some()),
            "a full budget is kept whole"
        );
        pages.store((5, 20), Bytes::from_static(b"[]"));
        assert!(pages.get((1, 20)).is_none(), "the oldest goes first");
        assert_eq!(pages.get((5, 20)).as_deref(), Some(&b"[]"[..]));
        assert!(pages.get((5, 21)).is_none(), "the limit is part of the key");
        pages.store((6, 20), Bytes::from(vec![b'x'; SEALED_PAGES_BUDGET + 1]));
        assert!(pages.get((6, 20)).is_none(), "a page over the whole budget is not kept");
        assert!(pages.lock().bytes <= SEALED_PAGES_BUDGET);
    }

    #[test]
    fn queries_default_and_validate() {
        let parsed = |q: &str| parse_query(q).map(|p| (p.start, p.limit));
        assert_eq!(parsed("").unwrap(), (Start::Offset(0), 20));
        assert_eq!(parsed("offset=40&limit=100").unwrap(), (Start::Offset(40), 100));
        assert_eq!(parsed("before_id=7&limit=1&x=y").unwrap(), (Start::BeforeId(7), 1));
        for bad in [
            "limit=0",
            "limit=101",
            "limit=ten",
            "limit=",
            "offset=-1",
            "offset=1.5",
            "before_id=-3",
            "offset=99999999999999999999",
            "offset=0&before_id=5",
        ] {
            assert_eq!(parse_query(bad).unwrap_err().status, 422, "{bad}");
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
