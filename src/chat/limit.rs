//! The message rate of one connection (`--ws-rate-limit`): a token bucket
//! that refills at the configured rate and holds twice that, so a client may
//! burst for a moment but not keep a higher pace.
//!
//! A message over the rate is refused with a `rate_limited` error event and
//! the connection stays open. Refusals are "sustained" once
//! [`STRIKES_TO_CLOSE`] of them fall within one [`STRIKE_WINDOW`] (a window
//! opens at the first refusal after the previous one expired); the
//! connection is then closed with 1008. A client that backs off after a
//! refusal or two is never closed; a flood is closed within a few
//! milliseconds of the tenth refusal.

use std::time::{Duration, Instant};

pub(crate) const STRIKES_TO_CLOSE: u32 = 10;
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
    strikes: u32,
    window_start: Instant,
}

struct Bucket {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl RateLimit {
    /// A full bucket for `per_sec` messages a second; 0 turns the limit off.
    pub(crate) fn new(per_sec: u32, now: Instant) -> RateLimit {
        let bucket = (per_sec > 0).then(|| Bucket {
            per_sec: f64::from(per_sec),
            capacity: 2.0 * f64::from(per_sec),
            tokens: 2.0 * f64::from(per_sec),
            refilled: now,
        });
        RateLimit {
            bucket,
            strikes: 0,
            window_start: now,
        }
    }

    /// Decides about one incoming message arriving at `now`.
    pub(crate) fn check(&mut self, now: Instant) -> Verdict {
        let Some(bucket) = &mut self.bucket else {
            return Verdict::Accept;
        };
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * bucket.per_sec).min(bucket.capacity);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(limit: &mut RateLimit, at: Instant, n: usize) -> Vec<Verdict> {
        (0..n).map(|_| limit.check(at)).collect()
    }

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_messages_are_refused() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(3, t0);
        assert_eq!(run(&mut limit, t0, 6), [Verdict::Accept; 6]);
        assert_eq!(limit.check(t0), Verdict::Refuse);
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_above_the_burst() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(2, t0);
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
        let mut flood = RateLimit::new(1, t0);
        let verdicts = run(&mut flood, t0, 2 + STRIKES_TO_CLOSE as usize);
        assert_eq!(verdicts[..2], [Verdict::Accept; 2]);
        assert!(verdicts[2..11].iter().all(|v| *v == Verdict::Refuse));
        assert_eq!(verdicts[11], Verdict::Close);

        let mut sparse = RateLimit::new(1, t0);
        run(&mut sparse, t0, 2);
        for window in 0..5u64 {
            let at = t0 + Duration::from_secs((window + 1) * 11);
            let verdicts = run(&mut sparse, at, 1 + STRIKES_TO_CLOSE as usize);
            assert!(!verdicts.contains(&Verdict::Close), "{verdicts:?}");
        }
    }

    #[test]
    fn zero_means_no_limit() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(0, t0);
        assert!(run(&mut limit, t0, 10_000).iter().all(|v| *v == Verdict::Accept));
    }
}
