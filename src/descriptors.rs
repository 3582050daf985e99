//! The process's open files, counted against its open-file limit, so that
//! the server answers `503` at the bound instead of failing `accept` and
//! `open` with "Too many open files" (which stalls everyone, the health
//! check included).
//!
//! [`init`] raises the soft limit to the hard one and sets the budget: the
//! limit less [`RESERVE`], the descriptors the process holds whatever the
//! load. Each connection then holds one unit for its socket from accept to
//! close; a download two more, for its open file and the duplicate of the
//! socket that `sendfile` is given on a blocking thread; an upload one more
//! for its temp file (which also covers the directory it syncs after closing
//! it).
//! The limit is the process's, so the budget is one per process: a static.

use std::error::Error;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::sys;

/// Descriptors outside the budget: stdin, stdout and stderr; the listener;
/// the event loop's epoll, waker and signal pipe; SQLite's database, WAL and
/// shared-memory files for its writer and each reader connection; the
/// duplicate a new chat socket takes for a moment to set its send buffer;
/// and the sockets of [`REFUSALS`] connections being answered `503`.
pub(crate) const RESERVE: usize = 64;
/// Connections refused over the bound that may be waiting for their `503`
/// at once; more are closed without an answer. Part of [`RESERVE`].
pub(crate) const REFUSALS: usize = 16;

/// Units the budget allows: unbounded until [`init`] sets it.
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static USED: AtomicUsize = AtomicUsize::new(0);

/// Descriptors counted against the budget, given back when dropped. It
/// lives beside what holds them (the connection task, the open file) and is
/// dropped with it.
#[derive(Debug)]
pub(crate) struct Held(usize);

impl Drop for Held {
    fn drop(&mut self) {
        USED.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// Counts `count` more descriptors, or `None` when the budget has not that
/// many left.
pub(crate) fn take(count: usize) -> Option<Held> {
    USED.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
        (used + count <= BUDGET.load(Ordering::Acquire)).then_some(used + count)
    })
    .ok()
    .map(|_| Held(count))
}

/// [`take`] for descriptors about to be opened: the error says the budget
/// is spent (see [`is_exhausted`]).
pub(crate) fn take_for_files(count: usize) -> io::Result<Held> {
    take(count).ok_or_else(|| io::Error::other(Exhausted))
}

/// Whether an I/O error means the process has no descriptor to spare: the
/// budget is spent, or the system refused one anyway.
pub(crate) fn is_exhausted(error: &io::Error) -> bool {
    error.get_ref().is_some_and(|e| e.is::<Exhausted>()) || sys::is_out_of_descriptors(error)
}

/// The budget is spent.
#[derive(Debug)]
struct Exhausted;

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no file descriptor to spare")
    }
}

impl Error for Exhausted {}

/// Raises the soft open-file limit to the hard limit and sets the budget
/// from it. Returns the limit and the budget.
pub(crate) fn init() -> io::Result<(u64, usize)> {
    let limit = sys::raise_open_file_limit()?;
    let budget = usize::try_from(limit).unwrap_or(usize::MAX).saturating_sub(RESERVE);
    BUDGET.store(budget, Ordering::Release);
    Ok((limit, budget))
}
