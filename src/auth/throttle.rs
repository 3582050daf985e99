//! Login throttling (`--login-throttle`): failed logins counted per user
//! name and per client address, so that a password cannot be guessed at
//! the speed of bcrypt.
//!
//! - **Per name** (case-folded, whether or not the account exists, so the
//!   answer never tells which names do): after `limit` failures in a row,
//!   attempts for the name are refused until a delay has passed since the
//!   last failure: 1 s, doubling with each further failure, at most
//!   [`MAX_DELAY`]. Only attempts that were let through and failed count;
//!   a refused attempt runs no bcrypt and changes nothing. A success
//!   clears the name.
//! - **Per address**: more than `10 × limit` failures within
//!   [`WINDOW`] refuse the address for any name until its count falls back.
//!   The window moves in steps of one minute: it is the current minute and
//!   the fourteen before it.
//!
//! An attacker controls both keys, so both tables are bounded: when one is
//! full, the entry whose last failure is oldest is forgotten. Names are
//! kept as a keyed hash, so an entry costs the same however long the name.
//! Time is a parameter, so the tests are exact.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The longest a name is refused after one failure.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// The window of the per-address count.
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The per-address bound is this many times the per-name one.
const ADDRESS_FACTOR: u32 = 10;
/// Names, and addresses, remembered at most.
pub(crate) const CAPACITY: usize = 65_536;
const STEP: Duration = Duration::from_secs(60);
const STEPS: usize = (WINDOW.as_secs() / STEP.as_secs()) as usize;

pub struct Throttle {
    /// Failures in a row before a name is refused; 0 turns throttling off.
    limit: u32,
    names: Table<u64, NameFailures>,
    addresses: Table<IpAddr, AddressFailures>,
    hasher: RandomState,
    /// Minutes of the address windows are counted from here.
    epoch: Instant,
}

struct NameFailures {
    in_a_row: u32,
    last: Instant,
}

/// Failures per minute over the last [`STEPS`] minutes: `(minute, count)`,
/// a ring indexed by minute.
struct AddressFailures([(u64, u32); STEPS]);

impl Throttle {
    pub fn new(limit: u32, capacity: usize, now: Instant) -> Throttle {
        Throttle {
            limit,
            names: Table::new(capacity),
            addresses: Table::new(capacity),
            hasher: RandomState::new(),
            epoch: now,
        }
    }

    /// `Err(wait)` when an attempt for `name` from `addr` at `now` must be
    /// refused, and for how long at least.
    pub fn check(&self, name: &str, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.limit == 0 {
            return Ok(());
        }
        let by_name = self
            .names
            .get(&self.key(name))
            .filter(|f| f.in_a_row >= self.limit)
            .map(|f| (f.last + delay(f.in_a_row - self.limit)).saturating_duration_since(now))
            .unwrap_or_default();
        let minute = self.minute(now);
        let into_minute = now.saturating_duration_since(self.epoch) - STEP * minute as u32;
        let by_address = self
            .addresses
            .get(&addr)
            .map(|f| f.wait(minute, self.limit.saturating_mul(ADDRESS_FACTOR)))
            .unwrap_or_default()
            .saturating_sub(into_minute);
        let wait = by_name.max(by_address);
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// An attempt that was let through failed.
    pub fn failed(&mut self, name: &str, addr: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let key = self.key(name);
        let name = self.names.upsert(key, || NameFailures { in_a_row: 0, last: now });
        name.in_a_row = name.in_a_row.saturating_add(1);
        name.last = now;
        let minute = self.minute(now);
        let address = self.addresses.upsert(addr, || AddressFailures([(0, 0); STEPS]));
        address.add(minute);
    }

    /// A login for `name` succeeded: its count starts again.
    pub fn succeeded(&mut self, name: &str) {
        let key = self.key(name);
        self.names.remove(&key);
    }

    fn key(&self, name: &str) -> u64 {
        self.hasher.hash_one(name.to_lowercase())
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / STEP.as_secs()
    }

    #[cfg(test)]
    fn remembered(&self) -> (usize, usize) {
        (self.names.len(), self.addresses.len())
    }
}

/// The delay after `beyond` failures past the limit: 1 s, doubling, at most
/// [`MAX_DELAY`].
fn delay(beyond: u32) -> Duration {
    let secs = 1u64.checked_shl(beyond).unwrap_or(u64::MAX);
    Duration::from_secs(secs).min(MAX_DELAY)
}

impl AddressFailures {
    fn add(&mut self, minute: u64) {
        let slot = &mut self.0[(minute % STEPS as u64) as usize];
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }

    /// How long from the start of `minute` until at most `bound` failures
    /// remain in the window; zero if that is already so.
    fn wait(&self, minute: u64, bound: u32) -> Duration {
        let mut in_window: Vec<(u64, u32)> = self
            .0
            .iter()
            .copied()
            .filter(|&(m, count)| count > 0 && m + STEPS as u64 > minute)
            .collect();
        in_window.sort_unstable();
        let mut total: u64 = in_window.iter().map(|&(_, c)| u64::from(c)).sum();
        for (m, count) in in_window {
            if total <= u64::from(bound) {
                break;
            }
            total -= u64::from(count);
            // The minute `m` leaves the window when minute m + STEPS begins.
            if total <= u64::from(bound) {
                return STEP * (m + STEPS as u64 - minute) as u32;
            }
        }
        Duration::ZERO
    }
}

/// A map bounded to `capacity` entries that forgets the least recently
/// written one to make room. Writes are ordered by a counter, kept both
/// with each entry and in an ordered index of the entries.
struct Table<K, V> {
    entries: HashMap<K, (V, u64)>,
    by_age: BTreeMap<u64, K>,
    next: u64,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V> Table<K, V> {
    fn new(capacity: usize) -> Table<K, V> {
        Table {
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            next: 0,
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(value, _)| value)
    }

    /// The entry of `key`, created with `new` if absent, now the newest.
    fn upsert(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
        let stamp = self.next;
        self.next += 1;
        if let Some((_, old)) = self.entries.get(&key) {
            self.by_age.remove(old);
        } else if self.entries.len() >= self.capacity {
            if let Some((_, oldest)) = self.by_age.pop_first() {
                self.entries.remove(&oldest);
            }
        }
        self.by_age.insert(stamp, key.clone());
        let entry = self.entries.entry(key).or_insert_with(|| (new(), stamp));
        entry.1 = stamp;
        &mut entry.0
    }

    fn remove(&mut self, key: &K) {
        if let Some((_, stamp)) = self.entries.remove(key) {
            self.by_age.remove(&stamp);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.by_age.len());
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_name_is_refused_after_the_limit_for_a_doubling_delay() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(3, CAPACITY, t0);
        for _ in 0..3 {
            assert_eq!(throttle.check("alice", HOME, t0), Ok(()));
            throttle.failed("alice", HOME, t0);
        }
        assert_eq!(throttle.check("alice", HOME, t0), Err(secs(1)));
        assert_eq!(throttle.check("ALICE", HOME, t0), Err(secs(1)), "case-folded");
        assert_eq!(throttle.check("bob", HOME, t0), Ok(()), "other names are not affected");
        // Each failure after a wait doubles the next one.
        let mut at = t0;
        for expected in [2, 4, 8, 16] {
            at += throttle.check("alice", HOME, at).unwrap_err();
            assert_eq!(throttle.check("alice", HOME, at), Ok(()));
            throttle.failed("alice", HOME, at);
            assert_eq!(throttle.check("alice", HOME, at), Err(secs(expected)));
            let halfway = at + secs(expected / 2);
            assert_eq!(throttle.check("alice", HOME, halfway), Err(secs(expected / 2)));
        }
    }

    #[test]
    fn the_delay_is_capped_at_15_minutes() {
        assert_eq!(delay(0), secs(1));
        assert_eq!(delay(9), secs(512));
        assert_eq!(delay(10), MAX_DELAY);
        assert_eq!(delay(200), MAX_DELAY);
        let t0 = Instant::now();
        let mut throttle = Throttle::new(1, CAPACITY, t0);
        let many = IpAddr::from([198, 51, 100, 0]);
        for i in 0..40u8 {
            let addr = IpAddr::from([198, 51, 100, i]);
            throttle.failed("carol", addr, t0);
        }
        assert_eq!(throttle.check("carol", many, t0), Err(MAX_DELAY));
    }

    #[test]
    fn a_success_clears_the_name_but_not_the_address() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(2, CAPACITY, t0);
        for _ in 0..2 {
            throttle.failed("dave", HOME, t0);
        }
        assert!(throttle.check("dave", HOME, t0).is_err());
        throttle.succeeded("Dave");
        assert_eq!(throttle.check("dave", HOME, t0), Ok(()));
        throttle.failed("dave", HOME, t0);
        assert_eq!(throttle.check("dave", HOME, t0), Ok(()), "counting starts again");
    }

    #[test]
    fn an_address_over_ten_times_the_limit_in_15_minutes_is_refused_for_any_name() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(2, CAPACITY, t0);
        let other = IpAddr::from([203, 0, 113, 5]);
        // 20 failures (the bound) spread over names, at minute 0 and 5.
        for i in 0..10 {
            throttle.failed(&format!("a{i}"), HOME, t0);
            throttle.failed(&format!("b{i}"), HOME, t0 + secs(300));
        }
        let at = t0 + secs(300);
        assert_eq!(throttle.check("fresh", HOME, at), Ok(()), "at the bound, not over it");
        throttle.failed("c", HOME, at);
        // 21 in the window: refused until minute 0 leaves it, at minute 15.
        assert_eq!(throttle.check("fresh", HOME, at), Err(secs(600)));
        assert_eq!(throttle.check("fresh", HOME, at + secs(30)), Err(secs(570)));
        assert_eq!(throttle.check("fresh", other, at), Ok(()));
        assert_eq!(throttle.check("fresh", HOME, t0 + secs(900)), Ok(()));
    }

    #[test]
    fn zero_turns_throttling_off() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(0, CAPACITY, t0);
        for _ in 0..1000 {
            throttle.failed("eve", HOME, t0);
        }
        assert_eq!(throttle.check("eve", HOME, t0), Ok(()));
        assert_eq!(throttle.remembered(), (0, 0));
    }

    #[test]
    fn a_full_table_forgets_the_entry_whose_last_failure_is_oldest() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(1, 3, t0);
        for name in ["old", "middle", "recent"] {
            throttle.failed(name, HOME, t0);
        }
        throttle.failed("old", HOME, t0);
        throttle.failed("newcomer", HOME, t0);
        assert!(throttle.check("old", HOME, t0).is_err(), "failed again, so kept");
        assert_eq!(throttle.check("middle", HOME, t0), Ok(()), "the oldest, forgotten");
        assert!(throttle.check("newcomer", HOME, t0).is_err());
    }

    #[test]
    fn a_million_names_and_addresses_keep_the_tables_bounded() {
        let t0 = Instant::now();
        let mut throttle = Throttle::new(5, CAPACITY, t0);
        for i in 0..1_000_000u32 {
            let addr = IpAddr::from(i.to_be_bytes());
            throttle.failed(&format!("user{i}"), addr, t0 + Duration::from_micros(u64::from(i)));
        }
        assert_eq!(throttle.remembered(), (CAPACITY, CAPACITY));
    }
}
