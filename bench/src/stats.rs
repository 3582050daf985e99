//! Latency figures: a log-linear histogram of nanoseconds and its percentiles.
//!
//! A run may time millions of deliveries, so samples go into buckets instead
//! of a vector: values below 128 ns have a bucket each, and every power of two
//! above is split into 64 buckets. A percentile is reported as the middle of
//! its bucket (the maximum is exact), which is within 1/128 (0.8 %) of the
//! true sample - far finer than the noise of any run.

use serde_json::{json, Value};

/// log2 of the buckets per power of two.
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

fn bucket_of(value: u64) -> usize {
    if value < 2 * SUB {
        return value as usize;
    }
    let shift = 63 - value.leading_zeros() - SUB_BITS;
    (u64::from(shift) * SUB + (value >> shift)) as usize
}

/// The values `[low, high)` that fall in a bucket.
fn bucket_range(bucket: usize) -> (u64, u64) {
    let bucket = bucket as u64;
    if bucket < 2 * SUB {
        return (bucket, bucket + 1);
    }
    let shift = bucket / SUB - 1;
    let low = (bucket % SUB + SUB) << shift;
    (low, low.saturating_add(1 << shift))
}

#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    max: u64,
}

impl Histogram {
    pub fn record(&mut self, value: u64) {
        let bucket = bucket_of(value);
        if bucket >= self.counts.len() {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.count += 1;
        self.sum += u128::from(value);
        self.max = self.max.max(value);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value below which a fraction `q` of the samples fall (0 when empty).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_range(bucket);
                let middle = if high - low == 1 { low } else { low + (high - low) / 2 };
                return middle.min(self.max);
            }
        }
        self.max
    }

    pub fn summary(&self) -> Summary {
        Summary {
            count: self.count,
            mean: self.sum.checked_div(u128::from(self.count)).unwrap_or(0) as u64,
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: self.max,
        }
    }
}

/// Percentiles of a histogram of nanoseconds.
#[derive(Debug, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Summary {
    /// "p50 1.234 ms  p90 ...  p99 ...  max ...  (n=1000)"
    pub fn human(&self) -> String {
        if self.count == 0 {
            return "no samples".to_string();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  max {}  mean {}  (n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            ms(self.mean),
            self.count
        )
    }

    /// The same figures in milliseconds, for the JSON line.
    pub fn json(&self) -> Value {
        json!({
            "count": self.count,
            "p50": round3(self.p50 as f64 / 1e6),
            "p90": round3(self.p90 as f64 / 1e6),
            "p99": round3(self.p99 as f64 / 1e6),
            "max": round3(self.max as f64 / 1e6),
            "mean": round3(self.mean as f64 / 1e6),
        })
    }
}

/// Nanoseconds as "1.234 ms".
pub fn ms(nanos: u64) -> String {
    format!("{:.3} ms", nanos as f64 / 1e6)
}

/// Rounds to three decimals, so the JSON line stays readable.
pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Events per second, 0 when no time passed.
pub fn rate(events: u64, nanos: u64) -> f64 {
    if nanos == 0 {
        0.0
    } else {
        round3(events as f64 * 1e9 / nanos as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_contain_their_values() {
        let mut previous_high = 0;
        for bucket in 0..3000 {
            let (low, high) = bucket_range(bucket);
            assert_eq!(low, previous_high, "bucket {bucket}");
            assert!(high > low);
            assert_eq!(bucket_of(low), bucket);
            assert_eq!(bucket_of(high - 1), bucket);
            previous_high = high;
        }
        assert_eq!(bucket_range(bucket_of(u64::MAX)).0 >> 57, 127);
    }

    #[test]
    fn small_values_give_exact_percentiles() {
        let mut h = Histogram::default();
        for v in 1..=100 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50, 90, 99, 100));
        assert_eq!(s.count, 100);
        assert_eq!(s.mean, 50);
    }

    #[test]
    fn large_values_are_within_one_percent() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1_000_003);
        }
        for (q, exact) in [(0.5, 5_000), (0.9, 9_000), (0.99, 9_900)] {
            let exact = exact as f64 * 1_000_003.0;
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.01, "q={q} got {got} want {exact}");
        }
        assert_eq!(h.summary().max, 10_000 * 1_000_003);
    }

    #[test]
    fn the_top_percentile_never_exceeds_the_maximum() {
        let mut h = Histogram::default();
        h.record(1_000_000);
        assert_eq!(h.quantile(0.99), 1_000_000);
        assert_eq!(h.quantile(0.0), 1_000_000);
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        let s = Histogram::default().summary();
        assert_eq!(
            s,
            Summary {
                count: 0,
                mean: 0,
                p50: 0,
                p90: 0,
                p99: 0,
                max: 0
            }
        );
        assert_eq!(s.human(), "no samples");
    }

    #[test]
    fn figures_are_in_milliseconds() {
        let mut h = Histogram::default();
        h.record(1_500_000);
        assert_eq!(h.summary().json()["max"], 1.5);
        assert_eq!(ms(1_234_567), "1.235 ms");
        assert_eq!(rate(500, 250_000_000), 2000.0);
        assert_eq!(rate(5, 0), 0.0);
    }
}
