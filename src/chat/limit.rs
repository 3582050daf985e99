//! The message rate of one connection (`--ws-rate-limit`): a token bucket
//! that refills at the configured rate and holds twice that, so a client may
//! burst for a moment but not keep a higher pace. All the connections of one
//! user also share a bucket of [`USER_RATE`] (burst [`USER_BURST`]), kept in
//! [`UserRates`], so that opening more sockets does not buy a higher pace; a
//! message takes a token from both or from neither.
//!
//! A message over the rate is refused with a `rate_limited` error event and
//! the connection stays open. Refusals are "sustained" once
//! [`STRIKES_TO_CLOSE`] of them fall within one [`STRIKE_WINDOW`] (a window
//! opens at the first refusal after the previous one expired); the
//! connection is then closed with 1008. A client that backs off after a
//! refusal or two is never closed; a flood is closed within a few
//! milliseconds of the tenth refusal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

pub(crate) const STRIKES_TO_CLOSE: u32 = 10;
/// Messages a second all the connections of one user may send together.
pub(crate) const USER_RATE: u32 = 50;
/// How many of them may come at once.
pub(crate) const USER_BURST: u32 = 100;
pub(crate) const STRIKE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept,
    /// Over the rate: refuse this message, keep the connection.
    Refuse,
    /// Over the rate for too long: close with 1008.
    Close,
}

pub(crate) struct RateLimit {
    /// `None` when the limit is off (`--ws-rate-limit 0`).
    bucket: Option<Bucket>,
    /// The bucket of the connection's user; `None` when the limit is off.
    user: Option<UserShare>,
    strikes: u32,
    window_start: Instant,
}

struct Bucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn full(per_sec: u32, capacity: u32, now: Instant) -> Bucket {
        Bucket {
            per_sec: f64::from(per_sec),
            capacity: f64::from(capacity),
            tokens: f64::from(capacity),
            refilled: now,
        }
    }

    /// Adds the tokens earned since the last refill; says whether one is there.
    fn refill(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.refilled = now;
        self.tokens >= 1.0
    }
}

impl RateLimit {
    /// A full bucket for `per_sec` messages a second, sharing `user`'s
    /// bucket; 0 turns the limit off.
    pub(crate) fn new(per_sec: u32, user: Option<UserShare>, now: Instant) -> RateLimit {
        RateLimit {
            bucket: (per_sec > 0).then(|| Bucket::full(per_sec, 2 * per_sec, now)),
            user,
            strikes: 0,
            window_start: now,
        }
    }

    /// Decides about one incoming message arriving at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        let Some(bucket) = &mut self.bucket else {
            return Verdict::Accept;
        };
        let mut user = self.user.as_ref().map(|share| lock(&share.bucket));
        let own = bucket.refill(now);
        if own && user.as_mut().is_none_or(|user| user.refill(now)) {
            bucket.tokens -= 1.0;
            if let Some(user) = &mut user {
                user.tokens -= 1.0;
            }
            return Verdict::Accept;
        }
        if self.strikes == 0 || now.saturating_duration_since(self.window_start) > STRIKE_WINDOW {
            self.window_start = now;
            self.strikes = 0;
        }
        self.strikes += 1;
        if self.strikes >= STRIKES_TO_CLOSE {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

type SharedBucket = Arc<Mutex<Bucket>>;

/// The buckets of the users who have a chat connection open: one per user,
/// shared by all of that user's connections, dropped with the last of them.
pub(crate) struct UserRates {
    /// Off with `--ws-rate-limit 0`.
    enabled: bool,
    /// Each user's bucket and how many connections share it.
    users: Mutex<HashMap<i64, (usize, SharedBucket)>>,
}

/// One connection's share of its user's bucket; dropping it gives the share
/// back.
pub(crate) struct UserShare {
    rates: Arc<UserRates>,
    user: i64,
    bucket: SharedBucket,
}

impl UserRates {
    pub(crate) fn new(enabled: bool) -> UserRates {
        UserRates {
            enabled,
            users: Mutex::new(HashMap::new()),
        }
    }

    /// A share of `user`'s bucket for a new connection (a full bucket if the
    /// user had no connection), or `None` when the limit is off.
    pub(crate) fn join(self: &Arc<Self>, user: i64, now: Instant) -> Option<UserShare> {
        if !self.enabled {
            return None;
        }
        let mut users = lock(&self.users);
        let (sharers, bucket) = users
            .entry(user)
            .or_insert_with(|| (0, Arc::new(Mutex::new(Bucket::full(USER_RATE, USER_BURST, now)))));
        *sharers += 1;
        Some(UserShare {
            rates: self.clone(),
            user,
            bucket: bucket.clone(),
        })
    }
}

impl Drop for UserShare {
    fn drop(&mut self) {
        let mut users = lock(&self.rates.users);
        if let Some((sharers, _)) = users.get_mut(&self.user) {
            *sharers -= 1;
            if *sharers == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limit: &mut RateLimit, at: Instant, n: usize) -> Vec<Verdict> {
        (0..n).map(|_| limit.check(at)).collect()
    }

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_messages_are_refused() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(3, None, t0);
        assert_eq!(run(&mut limit, t0, 6), [Verdict::Accept; 6]);
        assert_eq!(limit.check(t0), Verdict::Refuse);
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_above_the_burst() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(2, None, t0);
        run(&mut limit, t0, 4);
        let later = t0 + Duration::from_millis(500);
        assert_eq!(limit.check(later), Verdict::Accept);
        assert_eq!(limit.check(later), Verdict::Refuse);
        let much_later = t0 + Duration::from_secs(3600);
        assert_eq!(run(&mut limit, much_later, 4), [Verdict::Accept; 4]);
        assert_eq!(limit.check(much_later), Verdict::Refuse);
    }

    #[test]
    fn sustained_refusals_close_and_sparse_ones_do_not() {
        let t0 = Instant::now();
        let mut flood = RateLimit::new(1, None, t0);
        let verdicts = run(&mut flood, t0, 2 + STRIKES_TO_CLOSE as usize);
        assert_eq!(verdicts[..2], [Verdict::Accept; 2]);
        assert!(verdicts[2..11].iter().all(|v| *v == Verdict::Refuse));
        assert_eq!(verdicts[11], Verdict::Close);

        let mut sparse = RateLimit::new(1, None, t0);
        run(&mut sparse, t0, 2);
        for window in 0..5u64 {
            let at = t0 + Duration::from_secs((window + 1) * 11);
            let verdicts = run(&mut sparse, at, 1 + STRIKES_TO_CLOSE as usize);
            assert!(!verdicts.contains(&Verdict::Close), "{verdicts:?}");
        }
    }

    #[test]
    fn the_connections_of_one_user_share_its_bucket() {
        let t0 = Instant::now();
        let rates = Arc::new(UserRates::new(true));
        let mut sockets: Vec<RateLimit> = (0..10).map(|_| RateLimit::new(20, rates.join(7, t0), t0)).collect();
        let accepted = sockets
            .iter_mut()
            .flat_map(|socket| run(socket, t0, 40))
            .filter(|v| *v == Verdict::Accept)
            .count();
        assert_eq!(accepted, USER_BURST as usize);
        // Another user has a bucket of its own.
        let mut other = RateLimit::new(20, rates.join(8, t0), t0);
        assert_eq!(other.check(t0), Verdict::Accept);
        // Tokens come back at the user's rate, whichever socket takes them.
        let later = t0 + Duration::from_secs(1);
        let accepted = sockets
            .iter_mut()
            .flat_map(|socket| run(socket, later, 10))
            .filter(|v| *v == Verdict::Accept)
            .count();
        assert_eq!(accepted, USER_RATE as usize);
    }

    #[test]
    fn a_user_bucket_lives_as_long_as_a_connection_shares_it() {
        let t0 = Instant::now();
        let rates = Arc::new(UserRates::new(true));
        let first = rates.join(7, t0);
        let mut second = RateLimit::new(1000, rates.join(7, t0), t0);
        run(&mut second, t0, USER_BURST as usize);
        drop(first);
        assert_eq!(second.check(t0), Verdict::Refuse, "the bucket is still shared");
        drop(second);
        assert!(lock(&rates.users).is_empty());
        let mut fresh = RateLimit::new(1000, rates.join(7, t0), t0);
        assert_eq!(fresh.check(t0), Verdict::Accept);
    }

    #[test]
    fn zero_means_no_limit() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(0, Arc::new(UserRates::new(false)).join(7, t0), t0);
        assert!(run(&mut limit, t0, 10_000).iter().all(|v| *v == Verdict::Accept));
    }
}
