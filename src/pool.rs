//! A small pool of OS threads for blocking work (SQLite reads, bcrypt), so
//! that no such call ever runs on an async worker thread. Each thread owns a
//! state built once at its start (a database connection, say), jobs wait in a
//! bounded queue, and a full queue is refused at once rather than letting
//! waiting work pile up without limit.
//!
//! Starting a pool never panics: a thread that cannot be spawned, or whose
//! state cannot be built, is an error for the caller (start-up reports it in
//! one line and exits).

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::sys;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

#[derive(Debug, PartialEq, Eq)]
pub enum PoolError {
    /// The queue is full: the caller should answer 503.
    Busy,
    /// The pool's threads have stopped.
    Gone,
}

pub(crate) struct Pool<S> {
    tx: SyncSender<Job<S>>,
}

/// How the threads of a pool are set up.
pub(crate) struct Options {
    pub name: &'static str,
    pub threads: usize,
    pub queue: usize,
    /// Nice value for the threads: background work such as password hashing
    /// runs at a lower priority so it only takes CPU the event loop leaves.
    pub nice: i32,
}

impl<S: 'static> Pool<S> {
    /// Starts the threads; each calls `init` once for its state, and the pool
    /// fails to start if any `init` fails or a thread cannot be spawned.
    pub(crate) fn start<E: From<io::Error> + Send + 'static>(
        options: Options,
        init: impl Fn() -> Result<S, E> + Send + Sync + 'static,
    ) -> Result<Pool<S>, E> {
        let (tx, rx) = mpsc::sync_channel::<Job<S>>(options.queue);
        let rx = Arc::new(Mutex::new(rx));
        let init = Arc::new(init);
        for i in 0..options.threads {
            let (ready_tx, ready_rx) = mpsc::channel();
            let rx = rx.clone();
            let init = init.clone();
            let nice = options.nice;
            std::thread::Builder::new()
                .name(format!("{}-{i}", options.name))
                .spawn(move || {
                    lower_priority(nice);
                    match init() {
                        Ok(state) => {
                            let _ = ready_tx.send(Ok(()));
                            work(state, &rx);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?;
            // A thread that ends without a word panicked in `init`.
            ready_rx
                .recv()
                .map_err(|_| io::Error::other(format!("{} thread {i} ended while starting", options.name)))??;
        }
        Ok(Pool { tx })
    }

    /// Runs `f` on a worker thread with that thread's state.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            let _ = tx.send(f(state));
        });
        match self.tx.try_send(job) {
            Ok(()) => rx.await.map_err(|_| PoolError::Gone),
            Err(TrySendError::Full(_)) => Err(PoolError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(PoolError::Gone),
        }
    }
}

fn work<S>(mut state: S, rx: &Mutex<Receiver<Job<S>>>) {
    loop {
        // The lock is held only while waiting for one job, so the other
        // threads take the next ones while this one works.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut state),
            Err(_) => return,
        }
    }
}

fn lower_priority(nice: i32) {
    if nice != 0 {
        sys::set_thread_nice(nice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(threads: usize, queue: usize) -> Options {
        Options {
            name: "test",
            threads,
            queue,
            nice: 0,
        }
    }

    #[tokio::test]
    async fn jobs_run_off_the_async_thread_with_their_state() {
        let pool = Pool::start(options(2, 8), || Ok::<_, io::Error>(41)).unwrap();
        let caller = std::thread::current().id();
        let (value, thread) = pool
            .run(|state| (*state + 1, std::thread::current().id()))
            .await
            .unwrap();
        assert_eq!(value, 42);
        assert_ne!(thread, caller);
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_not_queued() {
        let pool = Pool::start(options(1, 1), || Ok::<_, io::Error>(())).unwrap();
        let (block_tx, block_rx) = std::sync::mpsc::channel::<()>();
        let busy = pool.run(move |_| block_rx.recv());
        tokio::pin!(busy);
        // Let the worker take the blocking job, then fill the one queue slot.
        assert!(tokio::time::timeout(std::time::Duration::from_millis(50), &mut busy)
            .await
            .is_err());
        let queued = pool.run(|_| ());
        tokio::pin!(queued);
        assert!(tokio::time::timeout(std::time::Duration::from_millis(10), &mut queued)
            .await
            .is_err());
        assert_eq!(pool.run(|_| ()).await, Err(PoolError::Busy));
        block_tx.send(()).unwrap();
        assert!(busy.await.is_ok());
        assert!(queued.await.is_ok());
    }

    #[test]
    fn a_failing_init_fails_the_start() {
        let refused = Pool::<()>::start(options(2, 1), || Err(io::Error::other("no")));
        assert_eq!(refused.err().map(|e| e.to_string()), Some("no".to_string()));
    }
}
