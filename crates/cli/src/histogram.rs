//! A log-linear latency histogram: exact below 128 ns, then 64 buckets per
//! power of two, so every recorded value is reported within 1.6 % of itself.
//! Fixed size (about 30 KiB), no allocation per sample, and mergeable, so
//! each load-generating task keeps its own and they are summed at the end.

use std::time::Duration;

/// Latencies in nanoseconds, bucketed.
#[derive(Clone, Debug)]
pub struct Histogram {
    buckets: Vec<u64>,
    samples: u64,
    max_ns: u64,
}

/// Values below this are their own bucket.
const EXACT_BELOW: u64 = 1 << SUB_BUCKET_BITS;
const SUB_BUCKET_BITS: u32 = 7;
/// Buckets per power of two above `EXACT_BELOW`.
const SUB_BUCKETS: u64 = EXACT_BELOW / 2;
const BUCKETS: usize = (EXACT_BELOW + (64 - SUB_BUCKET_BITS as u64) * SUB_BUCKETS) as usize;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            samples: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)] += 1;
        self.samples += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.samples += other.samples;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    pub fn samples(&self) -> u64 {
        self.samples
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// The smallest bucket bound at or above which `quantile` of the
    /// samples lie (an upper bound, never an underestimate); zero when
    /// empty.
    pub fn quantile(&self, quantile: f64) -> Duration {
        if self.samples == 0 {
            return Duration::ZERO;
        }
        // Rank of the sample wanted, 1-based: p50 of 2 samples is the 1st.
        let rank = ((quantile.clamp(0.0, 1.0) * self.samples as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(upper_bound_of(index).min(self.max_ns));
            }
        }
        self.max()
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < EXACT_BELOW {
        return ns as usize;
    }
    let exponent = 63 - ns.leading_zeros(); // >= SUB_BUCKET_BITS
    let shift = exponent - (SUB_BUCKET_BITS - 1);
    let mantissa = ns >> shift; // in SUB_BUCKETS..2 * SUB_BUCKETS
    let octave = u64::from(exponent - SUB_BUCKET_BITS);
    (EXACT_BELOW + octave * SUB_BUCKETS + (mantissa - SUB_BUCKETS)) as usize
}

/// The largest value that falls in bucket `index`.
fn upper_bound_of(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT_BELOW {
        return index;
    }
    let octave = (index - EXACT_BELOW) / SUB_BUCKETS;
    let mantissa = (index - EXACT_BELOW) % SUB_BUCKETS + SUB_BUCKETS;
    let shift = octave as u32 + 1;
    let bound = (u128::from(mantissa + 1) << shift) - 1;
    u64::try_from(bound).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values_tightly() {
        for ns in [
            0,
            1,
            127,
            128,
            129,
            255,
            256,
            1_000,
            123_456,
            10_000_000_000,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let index = bucket_of(ns);
            assert!(index < BUCKETS, "{ns} -> {index}");
            let upper = upper_bound_of(index);
            assert!(upper >= ns, "{ns} above its bucket's bound {upper}");
            assert!(
                (upper - ns) as f64 <= ns as f64 / 64.0 + 1.0,
                "{ns} bound {upper} too loose"
            );
            if index > 0 {
                assert!(
                    upper_bound_of(index - 1) < ns,
                    "{ns} belongs in an earlier bucket"
                );
            }
        }
    }

    #[test]
    fn quantiles_of_a_uniform_spread() {
        let mut histogram = Histogram::default();
        for us in 1..=1000 {
            histogram.record(Duration::from_micros(us));
        }
        let p50 = histogram.quantile(0.5).as_micros();
        let p99 = histogram.quantile(0.99).as_micros();
        assert!((500..=508).contains(&p50), "p50 {p50}");
        assert!((990..=1000).contains(&p99), "p99 {p99}");
        assert_eq!(histogram.quantile(1.0), Duration::from_micros(1000));
        assert_eq!(histogram.max(), Duration::from_micros(1000));
    }

    #[test]
    fn merging_adds_samples() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(Duration::from_millis(1));
        b.record(Duration::from_millis(9));
        b.record(Duration::from_millis(9));
        a.merge(&b);
        assert_eq!(a.samples(), 3);
        assert_eq!(a.max(), Duration::from_millis(9));
        assert!(a.quantile(0.34) > Duration::from_millis(8));
        assert_eq!(Histogram::default().quantile(0.5), Duration::ZERO);
    }
}
