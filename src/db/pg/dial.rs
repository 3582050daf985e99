//! Opening connections again after PostgreSQL was lost, with backoff.
//!
//! While the database is down, every call that needs a connection would
//! try to open one: each request, each poll of every loop, on every node.
//! Against a server that is restarting, or refusing connections because it
//! is out of them, that is a storm of attempts that only delays its
//! recovery. So a failed attempt closes the door for a while, 100 ms at
//! first and twice as long after each further failure up to [`MAX_WAIT`];
//! calls meanwhile are answered unavailable (503) at once, without trying.
//! The first success opens the door again. A node therefore notices that
//! PostgreSQL is back within [`MAX_WAIT`] of its return.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::db::DbError;

const FIRST_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(2);

/// Opens the connections of one node, all through the same backoff.
#[derive(Clone)]
pub(crate) struct Dialer {
    url: Arc<str>,
    backoff: Arc<Mutex<Backoff>>,
}

#[derive(Default)]
struct Backoff {
    /// No attempt before this, after a failure.
    closed_until: Option<Instant>,
    /// The wait after the next failure.
    wait: Duration,
}

impl Dialer {
    pub(crate) fn new(url: Arc<str>) -> Dialer {
        Dialer {
            url,
            backoff: Arc::default(),
        }
    }

    /// A new connection, unless an attempt failed too recently.
    pub(crate) async fn dial(&self) -> Result<Client, DbError> {
        if let Some(until) = self.backoff().closed_until {
            if Instant::now() < until {
                return Err(DbError::Unavailable(
                    "PostgreSQL is unreachable; the node tries again shortly".into(),
                ));
            }
        }
        match super::connect(&self.url).await {
            Ok(client) => {
                *self.backoff() = Backoff::default();
                Ok(client)
            }
            Err(e) => {
                let mut backoff = self.backoff();
                backoff.wait = (backoff.wait * 2).clamp(FIRST_WAIT, MAX_WAIT);
                backoff.closed_until = Some(Instant::now() + backoff.wait);
                Err(e)
            }
        }
    }

    fn backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failed_attempts_space_out_the_next_ones_up_to_the_longest_wait() {
        // Nothing listens on port 1: every attempt is refused at once.
        let dialer = Dialer::new("postgres://nobody@127.0.0.1:1/none".into());
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert!(matches!(dialer.dial().await, Err(DbError::Unavailable(_))));
            let until = dialer.backoff().closed_until.unwrap();
            waits.push(dialer.backoff().wait);
            // A call within the wait does not try.
            assert!(dialer.dial().await.is_err());
            assert_eq!(dialer.backoff().closed_until, Some(until), "no attempt meanwhile");
            dialer.backoff().closed_until = Some(Instant::now());
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
    }
}
