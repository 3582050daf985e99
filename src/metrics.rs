//! The server's counters, gauges and histograms, and their text form.
//!
//! One static registry of atomics ([`METRICS`]) that every floor may
//! increment: the hot paths (a request, a commit, a delivery) pay one
//! relaxed atomic add per figure, with no lock and no allocation, and they
//! pay it whether or not anybody scrapes. Relaxed is enough: each figure is
//! a tally read on its own, never used to order other memory.
//!
//! Reading is the scrape's business ([`Exposition`] writes the Prometheus
//! text format, version 0.0.4): it loads each atomic once and holds no lock
//! the chat takes, so scraping costs the chat nothing but cache traffic.
//! A histogram's count is the sum of its buckets as loaded, so the `+Inf`
//! bucket and `_count` always agree even while observations land.
//!
//! Labels are bounded by construction: routes are slots of the route table
//! (at most [`ROUTE_SLOTS`]), statuses are classes, login outcomes are three
//! names. Nothing a client sends becomes a label.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Room for the route table's routes, plus one slot for requests that match
/// none (and refusals before any route).
pub(crate) const ROUTE_SLOTS: usize = 48;
/// The slot of requests that matched no route.
pub(crate) const UNMATCHED: usize = ROUTE_SLOTS - 1;
/// Status classes 1xx to 5xx.
pub(crate) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Buckets of most histograms: a histogram has at most this many bounds,
/// plus the `+Inf` bucket.
const MAX_BOUNDS: usize = 15;

/// Latency bounds in microseconds, 100 µs to 10 s.
const LATENCY_MICROS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];
/// Write jobs in one group commit, up to the writer's batch bound (512).
const BATCH_SIZES: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

pub(crate) static METRICS: Metrics = Metrics::new();

/// A figure that only grows.
pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A figure that goes up and down.
pub(crate) struct Gauge(AtomicI64);

impl Gauge {
    const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    pub(crate) fn set(&self, value: i64) {
        self.0.store(value, Relaxed);
    }

    pub(crate) fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }

    /// Counts one more until the returned guard is dropped: an open
    /// connection is counted for exactly as long as its task holds it.
    pub(crate) fn track(&'static self) -> Tracked {
        self.0.fetch_add(1, Relaxed);
        Tracked(self)
    }
}

/// One unit of a [`Gauge`], given back on drop.
pub(crate) struct Tracked(&'static Gauge);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Relaxed);
    }
}

/// Observations in fixed buckets. Each bucket counts the observations that
/// fell in it alone (not cumulatively): an observation is one add to its
/// bucket and one to the sum.
pub(crate) struct Histogram {
    /// Upper bounds, ascending, in the unit observed.
    bounds: &'static [u64],
    /// Units observed per unit exposed (1e6 for microseconds shown as
    /// seconds): a division, so that bounds print exactly (`0.0001`).
    divisor: f64,
    /// One per bound, then the `+Inf` bucket.
    buckets: [AtomicU64; MAX_BOUNDS + 1],
    sum: AtomicU64,
}

impl Histogram {
    const fn new(bounds: &'static [u64], divisor: f64) -> Histogram {
        assert!(bounds.len() <= MAX_BOUNDS);
        Histogram {
            bounds,
            divisor,
            buckets: [const { AtomicU64::new(0) }; MAX_BOUNDS + 1],
            sum: AtomicU64::new(0),
        }
    }

    const fn latency() -> Histogram {
        Histogram::new(LATENCY_MICROS, 1e6)
    }

    pub(crate) fn observe(&self, value: u64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum.fetch_add(value, Relaxed);
    }

    pub(crate) fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }
}

/// Requests that one route answered, by status class, and how long they
/// took.
pub(crate) struct RouteMetrics {
    by_class: [Counter; 5],
    pub(crate) latency: Histogram,
}

impl RouteMetrics {
    const fn new() -> RouteMetrics {
        RouteMetrics {
            by_class: [const { Counter::new() }; 5],
            latency: Histogram::latency(),
        }
    }

    /// Counts one answer with `status`.
    pub(crate) fn answered(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
    }

    /// Answers so far in each of [`STATUS_CLASSES`].
    pub(crate) fn by_class(&self) -> [u64; 5] {
        std::array::from_fn(|class| self.by_class[class].get())
    }
}

/// Logins by outcome.
pub(crate) struct Logins {
    pub(crate) ok: Counter,
    /// A wrong name or password.
    pub(crate) bad: Counter,
    /// Refused by the login throttle before the password was checked.
    pub(crate) throttled: Counter,
}

pub(crate) struct Metrics {
    pub(crate) http_connections: Gauge,
    pub(crate) websocket_connections: Gauge,
    /// Distinct users with a chat connection, as the hub last counted them
    /// (in cluster mode, on any node).
    pub(crate) online_users: Gauge,
    pub(crate) messages_committed: Counter,
    /// Events handed to chat connections' writers (counted before the
    /// write, so never behind what a client has seen).
    pub(crate) deliveries: Counter,
    /// Chat connections evicted for falling too far behind.
    pub(crate) slow_consumer_drops: Counter,
    /// Write jobs per group commit.
    pub(crate) commit_batch_size: Histogram,
    /// From `BEGIN` to the end of `COMMIT`.
    pub(crate) commit_latency: Histogram,
    /// By slot of the route table; the last slot is [`UNMATCHED`].
    pub(crate) routes: [RouteMetrics; ROUTE_SLOTS],
    pub(crate) logins: Logins,
    /// File bytes stored by uploads.
    pub(crate) upload_bytes: Counter,
    /// File bytes of the download responses (whole or ranges) handed to
    /// the connection.
    pub(crate) download_bytes: Counter,
}

impl Metrics {
    const fn new() -> Metrics {
        Metrics {
            http_connections: Gauge::new(),
            websocket_connections: Gauge::new(),
            online_users: Gauge::new(),
            messages_committed: Counter::new(),
            deliveries: Counter::new(),
            slow_consumer_drops: Counter::new(),
            commit_batch_size: Histogram::new(BATCH_SIZES, 1.0),
            commit_latency: Histogram::latency(),
            routes: [const { RouteMetrics::new() }; ROUTE_SLOTS],
            logins: Logins {
                ok: Counter::new(),
                bad: Counter::new(),
                throttled: Counter::new(),
            },
            upload_bytes: Counter::new(),
            download_bytes: Counter::new(),
        }
    }
}

/// The Prometheus text format (0.0.4), written family by family: a family
/// opens with its `# HELP` and `# TYPE` lines, then its samples follow.
/// Label values are written as given; callers pass only names of their own
/// (route patterns, classes, outcomes), which need no escaping but `"` and
/// `\`, escaped here all the same.
#[derive(Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    /// Opens a family. `kind` is `counter`, `gauge` or `histogram`.
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line of the open family.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A family of one unlabelled sample.
    pub(crate) fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The `_bucket`, `_sum` and `_count` lines of one histogram of the
    /// open family.
    pub(crate) fn histogram(&mut self, name: &str, labels: &[(&str, &str)], histogram: &Histogram) {
        let mut cumulative = 0;
        let bounds = histogram.bounds.iter().map(|bound| Some(*bound)).chain([None]);
        for (bucket, bound) in histogram.buckets.iter().zip(bounds) {
            cumulative += bucket.load(Relaxed);
            let le = match bound {
                Some(bound) => (bound as f64 / histogram.divisor).to_string(),
                None => "+Inf".to_string(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let sum = histogram.sum.load(Relaxed) as f64 / histogram.divisor;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|le| ("le", le));
        for (i, (name, value)) in labels.iter().copied().chain(le).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let value = value.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = write!(self.out, "{name}=\"{value}\"");
        }
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_written_cumulatively_with_count_equal_to_the_inf_bucket() {
        let histogram = Histogram::new(&[1, 10], 1.0);
        for value in [0, 1, 5, 10, 11, 1000] {
            histogram.observe(value);
        }
        let mut out = Exposition::default();
        out.family("x", "histogram", "test");
        out.histogram("x", &[("route", "/a")], &histogram);
        assert_eq!(
            out.finish(),
            "# HELP x test\n# TYPE x histogram\n\
             x_bucket{route=\"/a\",le=\"1\"} 2\n\
             x_bucket{route=\"/a\",le=\"10\"} 4\n\
             x_bucket{route=\"/a\",le=\"+Inf\"} 6\n\
             x_sum{route=\"/a\"} 1027\n\
             x_count{route=\"/a\"} 6\n"
        );
    }

    #[test]
    fn latency_is_shown_in_seconds() {
        let histogram = Histogram::latency();
        histogram.observe_duration(Duration::from_millis(3));
        let mut out = Exposition::default();
        out.histogram("t", &[], &histogram);
        let text = out.finish();
        assert!(text.starts_with("t_bucket{le=\"0.0001\"} 0\n"), "{text}");
        assert!(text.contains("t_bucket{le=\"0.005\"} 1\n"), "{text}");
        assert!(text.contains("t_sum 0.003\n"), "{text}");
    }

    #[test]
    fn statuses_fall_in_their_class_and_label_values_are_escaped() {
        let route = RouteMetrics::new();
        for status in [101, 200, 204, 304, 404, 503, 99, 600] {
            route.answered(status);
        }
        assert_eq!(route.by_class(), [2, 2, 1, 1, 2]);
        let mut out = Exposition::default();
        out.sample("s", &[("a", "q\"b\\")], 1);
        assert_eq!(out.finish(), "s{a=\"q\\\"b\\\\\"} 1\n");
    }

    #[test]
    fn a_tracked_gauge_counts_while_the_guard_lives() {
        static OPEN: Gauge = Gauge::new();
        let first = OPEN.track();
        let second = OPEN.track();
        assert_eq!(OPEN.get(), 2);
        drop(first);
        drop(second);
        assert_eq!(OPEN.get(), 0);
    }
}
