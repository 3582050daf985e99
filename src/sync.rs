//! How the rest of the crate takes a lock and runs blocking work: one
//! function each, so the reasons below are written once.
//!
//! A mutex is poisoned when a thread panicked while holding it. Every lock
//! in this crate guards state that each update leaves consistent before
//! anything that could panic (a map insert, a counter and its queue moved
//! together), so the data behind a poisoned lock is still sound, and going
//! on is better than turning one panic into a panic on every later request.

use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, poisoned or not (see the module's note).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs blocking work (file-system calls, `sendfile`) on tokio's blocking
/// threads: an async worker must never wait for the disk. A task that
/// panicked or was cancelled at shutdown is an I/O error like any other.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}
