//! The two caches of history pages, which is what keeps the pages every
//! client asks for out of the database: the newest page until the next
//! message commits (or a file is deleted), and the older pages that can
//! never change but for a deleted file, which drops the pages carrying it.

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

/// Encoded `before_id` pages whose messages can never change, so that
/// clients scrolling back through the same history (every client starts
/// from the same newest page, so their `next_before_id`s coincide) are
/// served from memory.
///
/// Messages are never edited or deleted, and a new message always gets an
/// id above every existing one. So once the page below `before_id` holds
/// the message `before_id - 1`, no message can ever join it, and neither its
/// rows nor its `has_more` can change: it is sealed. A page that is not
/// (it reaches the newest end of the room, or the ids have a gap) is never
/// kept. The oldest entries are dropped first once the budget is reached.
///
/// One thing can still change a sealed page: deleting a file takes the
/// `file` key off the messages that carried it. So a page that carries
/// files is kept with their ids, and [`SealedPages::forget_file`] (called
/// once a deletion has committed) drops exactly the pages that carry the
/// deleted file. A page read while a deletion was committing could hold the
/// file all the same and be stored just after it was forgotten: a page with
/// files is therefore stored only if no deletion happened since its read
/// began ([`SealedPages::deletions`] is taken before the read). Pages
/// without files - nearly all of them - cannot be touched by a deletion:
/// they are stored and served exactly as before, and a lookup costs the
/// same whatever pages carry files.
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
    /// The files each kept page carries, for the pages that carry any.
    carrying: HashMap<PageKey, Box<[String]>>,
    /// Counts file deletions.
    deletions: u64,
}

/// `before_id` and `limit`.
type PageKey = (i64, u32);

impl SealedPages {
    pub(super) fn get(&self, key: PageKey) -> Option<Bytes> {
        self.lock().bodies.get(&key).cloned()
    }

    /// The count of deletions to give [`SealedPages::store`] for a page
    /// read after this call.
    pub(super) fn deletions(&self) -> u64 {
        self.lock().deletions
    }

    /// Keeps the page `key`, which carries `files`, read after
    /// [`SealedPages::deletions`] returned `deletions`. A page already kept
    /// is left as it is: being sealed, it is the same.
    pub(super) fn store(&self, key: PageKey, body: Bytes, files: Box<[String]>, deletions: u64) {
        let mut sealed = self.lock();
        let sealed = &mut *sealed;
        if body.len() > SEALED_PAGES_BUDGET || sealed.bodies.contains_key(&key) {
            return;
        }
        if !files.is_empty() && sealed.deletions != deletions {
            return;
        }
        while sealed.bytes + body.len() > SEALED_PAGES_BUDGET {
            let Some(oldest) = sealed.order.pop_front() else { break };
            sealed.remove(oldest);
        }
        sealed.bytes += body.len();
        sealed.bodies.insert(key, body);
        sealed.order.push_back(key);
        if !files.is_empty() {
            sealed.carrying.insert(key, files);
        }
    }

    /// Drops every page that carries `file_id`, and keeps out pages whose
    /// read began before this call.
    pub(crate) fn forget_file(&self, file_id: &str) {
        let mut sealed = self.lock();
        sealed.deletions += 1;
        let stale: Vec<PageKey> = sealed
            .carrying
            .iter()
            .filter(|(_, files)| files.iter().any(|id| id == file_id))
            .map(|(key, _)| *key)
            .collect();
        for key in stale {
            sealed.remove(key);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sealed> {
        lock(&self.pages)
    }
}

impl Sealed {
    /// Drops one page. Its key may stay in `order`; popping it later finds
    /// nothing to drop, or the same key stored again, which then goes early.
    fn remove(&mut self, key: PageKey) {
        if let Some(dropped) = self.bodies.remove(&key) {
            self.bytes -= dropped.len();
        }
        self.carrying.remove(&key);
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
            pages.store((id, 20), quarter.clone(), none(), 0);
        }
        pages.store((2, 20), quarter.clone(), none(), 0);
        assert!(
            (1..=4).all(|id| pages.get((id, 20)).is_some()),
            "a full budget is kept whole"
        );
        pages.store((5, 20), Bytes::from_static(b"[]"), none(), 0);
        assert!(pages.get((1, 20)).is_none(), "the oldest goes first");
        assert_eq!(pages.get((5, 20)).as_deref(), Some(&b"[]"[..]));
        assert!(pages.get((5, 21)).is_none(), "the limit is part of the key");
        pages.store((6, 20), Bytes::from(vec![b'x'; SEALED_PAGES_BUDGET + 1]), none(), 0);
        assert!(pages.get((6, 20)).is_none(), "a page over the whole budget is not kept");
        assert!(pages.lock().bytes <= SEALED_PAGES_BUDGET);
    }

    fn none() -> Box<[String]> {
        Box::default()
    }

    fn carrying(ids: &[&str]) -> Box<[String]> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn deleting_a_file_drops_exactly_the_pages_that_carry_it() {
        let pages = SealedPages::default();
        let body = |text: &'static str| Bytes::from_static(text.as_bytes());
        let before = pages.deletions();
        pages.store((21, 20), body("plain"), none(), before);
        pages.store((41, 20), body("a"), carrying(&["a"]), before);
        pages.store((61, 20), body("a and b"), carrying(&["b", "a"]), before);
        pages.store((81, 20), body("b"), carrying(&["b"]), before);
        pages.forget_file("a");
        assert_eq!(pages.get((21, 20)).as_deref(), Some(&b"plain"[..]));
        assert!(pages.get((41, 20)).is_none());
        assert!(pages.get((61, 20)).is_none());
        assert_eq!(pages.get((81, 20)).as_deref(), Some(&b"b"[..]));
        assert_eq!(pages.lock().bytes, "plain".len() + "b".len());
        pages.forget_file("unknown");
        assert!(pages.get((81, 20)).is_some(), "another file's deletion leaves the page");
    }

    #[test]
    fn a_page_with_files_read_before_a_deletion_is_not_kept() {
        let pages = SealedPages::default();
        let before = pages.deletions();
        pages.forget_file("a");
        pages.store((41, 20), Bytes::from_static(b"a"), carrying(&["a"]), before);
        assert!(pages.get((41, 20)).is_none(), "it may show the deleted file");
        pages.store((21, 20), Bytes::from_static(b"plain"), none(), before);
        assert!(pages.get((21, 20)).is_some(), "a page without files cannot be stale");
        pages.store((41, 20), Bytes::from_static(b"a"), carrying(&["a"]), pages.deletions());
        assert!(pages.get((41, 20)).is_some());
    }
}
