//! The live sessions, in memory: what every authenticated request and
//! every chat socket consults instead of the database.
//!
//! The database holds each session's record; this registry holds what a
//! check needs (owner, absolute limit, whether it is revoked, when its
//! newest token expires), loaded at start-up and changed by the same calls
//! that change the records (log in, refresh, revoke). A request's check is
//! then a lookup and a few loads, never a query, and a revocation is seen
//! by the very next request.
//!
//! Each session's state sits in a `watch` channel: a chat socket subscribes
//! to its session and wakes at once when it is revoked, or when a refresh
//! moves its end, without polling. Sessions whose newest token has expired
//! are dropped from the registry by [`Sessions::prune`], so it holds the
//! sessions in use, not every login of the last month.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock;
use crate::sync::lock;

/// Random bytes in a session id: 128 bits, written as 32 hex digits.
const ID_BYTES: usize = 16;

/// Whether a session may still be used, as its sockets see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Its newest token expires at `token_exp` (Unix seconds).
    Live {
        token_exp: u64,
    },
    Revoked,
}

/// Why a session ended, for the sockets that follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Its newest token expired without a refresh (which the absolute
    /// limit caps).
    Expired,
    Revoked,
}

/// One session as checks see it. Shared (`Arc`) by the registry, the
/// verified-token cache and the sockets of the session.
pub struct LiveSession {
    pub id: String,
    pub uid: i64,
    /// The absolute limit, Unix milliseconds: no token outlives it.
    pub expires_at: i64,
    state: watch::Sender<State>,
    /// Unix milliseconds of the last authenticated request, kept here and
    /// written to the database in batches.
    last_used: AtomicI64,
    /// The `last_used` the database holds.
    flushed: AtomicI64,
}

impl LiveSession {
    /// Neither revoked nor past its absolute limit at `now_ms`. (A token's
    /// own `exp` is the token's check.)
    pub fn is_live(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at && *self.state.borrow() != State::Revoked
    }

    /// Records a use at `now_ms`. A plain load first, so that the many
    /// requests of one second do not all write the shared counter.
    pub fn touch(&self, now_ms: i64) {
        if now_ms - self.last_used.load(Ordering::Relaxed) >= 1000 {
            self.last_used.store(now_ms, Ordering::Relaxed);
        }
    }

    /// A newer token expiring at `token_exp` was issued: the sockets of the
    /// session now last until then.
    pub fn extend(&self, token_exp: u64) {
        self.state.send_if_modified(|state| match state {
            State::Live { token_exp: current } if *current < token_exp => {
                *current = token_exp;
                true
            }
            _ => false,
        });
    }

    /// Resolves when the session ends: at once when it is revoked, or when
    /// its newest token expires (never before `token_exp`, the expiry of
    /// the token the caller holds), following every refresh in between.
    pub fn ended(&self, token_exp: u64) -> impl Future<Output = Ended> + Send + 'static {
        let mut state = self.state.subscribe();
        async move {
            loop {
                let newest = match *state.borrow_and_update() {
                    State::Revoked => return Ended::Revoked,
                    State::Live { token_exp: newest } => newest.max(token_exp),
                };
                let expiry = tokio::time::sleep(until_expiry(newest));
                tokio::select! {
                    () = expiry => return Ended::Expired,
                    changed = state.changed() => {
                        if changed.is_err() {
                            // The session is gone with its sender: nothing
                            // can extend it any more.
                            tokio::time::sleep(until_expiry(newest)).await;
                            return Ended::Expired;
                        }
                    }
                }
            }
        }
    }

    fn revoke(&self) {
        self.state.send_replace(State::Revoked);
    }

    fn token_exp(&self) -> Option<u64> {
        match *self.state.borrow() {
            State::Live { token_exp } => Some(token_exp),
            State::Revoked => None,
        }
    }
}

/// The registry: every live session by id.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Arc<LiveSession>>>,
}

/// What the registry needs of a session, at a login or when loading.
pub struct Opened {
    pub id: String,
    pub uid: i64,
    /// Absolute limit, Unix milliseconds.
    pub expires_at: i64,
    /// When its newest token expires, Unix seconds.
    pub token_exp: u64,
    /// Unix milliseconds.
    pub last_used: i64,
}

impl Sessions {
    /// Adds a session (a new login, or one loaded at start-up).
    pub fn open(&self, opened: Opened) -> Arc<LiveSession> {
        let session = Arc::new(LiveSession {
            id: opened.id.clone(),
            uid: opened.uid,
            expires_at: opened.expires_at,
            state: watch::Sender::new(State::Live {
                token_exp: opened.token_exp,
            }),
            last_used: AtomicI64::new(opened.last_used),
            flushed: AtomicI64::new(opened.last_used),
        });
        lock(&self.live).insert(opened.id, session.clone());
        session
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSession>> {
        lock(&self.live).get(id).cloned()
    }

    /// Revokes a session: refused from now on, its sockets told at once.
    pub fn revoke(&self, id: &str) {
        if let Some(session) = lock(&self.live).remove(id) {
            session.revoke();
        }
    }

    /// The sessions used since their last write, with the time of their
    /// last use, for one batch write; [`Sessions::flushed`] records it.
    pub fn unflushed(&self) -> Vec<(String, i64)> {
        let live = lock(&self.live);
        live.values()
            .filter_map(|s| {
                let used = s.last_used.load(Ordering::Relaxed);
                (used > s.flushed.load(Ordering::Relaxed)).then(|| (s.id.clone(), used))
            })
            .collect()
    }

    /// The times of [`Sessions::unflushed`] are in the database now.
    pub fn flushed(&self, written: &[(String, i64)]) {
        let live = lock(&self.live);
        for (id, used) in written {
            if let Some(session) = live.get(id) {
                session.flushed.fetch_max(*used, Ordering::Relaxed);
            }
        }
    }

    /// Forgets the sessions that can no longer be used at `now_ms`: past
    /// their absolute limit, or whose newest token expired more than
    /// `leeway_secs` ago (tokens are accepted that long after `exp`).
    /// Returns how many were forgotten.
    pub fn prune(&self, now_ms: i64, leeway_secs: u64) -> usize {
        let mut live = lock(&self.live);
        let before = live.len();
        live.retain(|_, s| {
            let token_end = s
                .token_exp()
                .map_or(0, |exp| exp.saturating_add(leeway_secs).saturating_mul(1000));
            s.is_live(now_ms) && i64::try_from(token_end).unwrap_or(i64::MAX) >= now_ms
        });
        before - live.len()
    }

    pub fn len(&self) -> usize {
        lock(&self.live).len()
    }
}

/// A fresh session id: unguessable, and safe in a URL path.
pub(crate) fn new_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{:032x}", u128::from_be_bytes(bytes)))
}

/// Time left until `exp` (Unix seconds); zero if it has passed.
fn until_expiry(exp: u64) -> Duration {
    let left = (exp as i64).saturating_mul(1000).saturating_sub(clock::now_millis());
    Duration::from_millis(left.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opened(id: &str, token_exp: u64) -> Opened {
        Opened {
            id: id.into(),
            uid: 1,
            expires_at: clock::now_millis() + 3_600_000,
            token_exp,
            last_used: 0,
        }
    }

    #[test]
    fn ids_are_128_random_bits_in_hex() {
        let (a, b) = (new_id().unwrap(), new_id().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn expiry_is_counted_from_the_wall_clock() {
        assert_eq!(until_expiry(0), Duration::ZERO);
        let in_a_minute = until_expiry(clock::now_secs() + 60);
        assert!(in_a_minute > Duration::from_secs(58) && in_a_minute <= Duration::from_secs(60));
    }

    #[test]
    fn a_revoked_session_is_gone_and_its_holders_see_it() {
        let sessions = Sessions::default();
        let held = sessions.open(opened("a", clock::now_secs() + 60));
        let now = clock::now_millis();
        assert!(held.is_live(now));
        sessions.revoke("a");
        assert!(!held.is_live(now));
        assert!(sessions.get("a").is_none());
        let limited = sessions.open(Opened {
            expires_at: now,
            ..opened("b", clock::now_secs() + 60)
        });
        assert!(!limited.is_live(now), "past its absolute limit");
    }

    #[tokio::test]
    async fn sockets_follow_refreshes_and_end_at_once_on_revocation() {
        let sessions = Sessions::default();
        let now = clock::now_secs();
        let session = sessions.open(opened("a", now + 1));
        let ended = tokio::spawn(session.ended(now + 1));
        session.extend(now + 3600);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!ended.is_finished(), "the refresh moved the end");
        let started = std::time::Instant::now();
        sessions.revoke("a");
        assert_eq!(ended.await.unwrap(), Ended::Revoked);
        assert!(started.elapsed() < Duration::from_millis(500));
        let expired = sessions.open(opened("b", now.saturating_sub(1)));
        assert_eq!(expired.ended(0).await, Ended::Expired);
    }

    #[test]
    fn uses_are_written_once_and_unusable_sessions_pruned() {
        let sessions = Sessions::default();
        let now = clock::now_millis();
        let secs = clock::now_secs();
        let a = sessions.open(opened("a", secs + 60));
        sessions.open(opened("stale", secs - 10));
        a.touch(now);
        a.touch(now + 10);
        let batch = sessions.unflushed();
        assert_eq!(batch, [("a".to_string(), now)]);
        sessions.flushed(&batch);
        assert!(sessions.unflushed().is_empty());
        assert_eq!(sessions.prune(now, 5), 1, "the stale one only");
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions.prune(now, 60), 0);
        // Within the leeway a token is still accepted, so its session stays.
        sessions.open(opened("recent", secs - 3));
        assert_eq!(sessions.prune(now, 5), 0);
    }
}
