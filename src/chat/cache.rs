//! The two caches of history pages, which is what keeps the pages every
//! client asks for out of the database: the newest page until the next
//! message commits, and the older pages that can never change.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::sync::lock;

/// The encoded body of `/history/last20`, kept until the next message is
/// committed: the newest page is what every client asks for first, and
/// between messages it does not change.
///
/// The room's commit hook calls [`NewestPage::invalidate`] after the commit
/// of a message and before broadcasting it, so a client that has seen a message
/// never gets a cached page without it. A page read from the database is
/// kept only if no message was committed since its read began (the
/// generation is unchanged), so a page read just before a commit is never
/// kept after it.
#[derive(Default)]
pub(crate) struct NewestPage {
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// Counts invalidations.
    generation: u64,
    body: Option<Bytes>,
}

impl NewestPage {
    pub(crate) fn invalidate(&self) {
        let mut cached = self.lock();
        cached.generation += 1;
        cached.body = None;
    }

    /// The cached body, or the generation a fresh read must be stored under.
    pub(super) fn get(&self) -> Result<Bytes, u64> {
        let cached = self.lock();
        cached.body.clone().ok_or(cached.generation)
    }

    pub(super) fn store(&self, generation: u64, body: Bytes) {
        let mut cached = self.lock();
        if cached.generation == generation {
            cached.body = Some(body);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cached> {
        lock(&self.cached)
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
pub(crate) struct SealedPages {
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
    pub(super) fn get(&self, key: PageKey) -> Option<Bytes> {
        self.lock().bodies.get(&key).cloned()
    }

    /// A page already kept is left as it is: being sealed, it is the same.
    pub(super) fn store(&self, key: PageKey, body: Bytes) {
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

    fn lock(&self) -> MutexGuard<'_, Sealed> {
        lock(&self.pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
