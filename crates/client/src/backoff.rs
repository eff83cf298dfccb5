//! How long to wait before the next round of attempts: exponential,
//! jittered, at least the server's `Retry-After`, and capped.

use std::time::Duration;

/// The backoff between rounds (a round tries every endpoint once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The base delay after the first failed round; doubled every round.
    pub initial: Duration,
    /// No wait is longer, whatever the round or the `Retry-After`.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(2),
        }
    }
}

/// Doubling stops here: 2^16 times `initial` is past any sane `max`.
const DOUBLINGS_MAX: u32 = 16;

impl Backoff {
    /// The wait after `round` failed rounds (0 for the first), given the
    /// largest `Retry-After` the round was answered with and a uniform
    /// random draw.
    ///
    /// "Equal jitter": half of the exponential delay is fixed, the other
    /// half random, so clients that failed together spread out but none
    /// retries at once. A `Retry-After` is a floor (the server asked for
    /// it), with up to a quarter of it added at random so that clients
    /// told the same second do not come back in the same instant; `max`
    /// caps both, so a server cannot park a client for long.
    pub fn delay(&self, round: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        let exponential = self
            .initial
            .saturating_mul(1u32 << round.min(DOUBLINGS_MAX))
            .min(self.max);
        let half = exponential / 2;
        let mut wait = half + fraction(half, random);
        if let Some(retry_after) = retry_after {
            // Another part of the same draw, so the two jitters differ.
            wait = wait.max(retry_after + fraction(retry_after / 4, random.rotate_left(32)));
        }
        wait.min(self.max)
    }
}

/// A uniform share of `span` picked by `random`.
fn fraction(span: Duration, random: u64) -> Duration {
    let span_ns = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
    match span_ns.checked_add(1) {
        Some(modulus) => Duration::from_nanos(random % modulus),
        None => Duration::from_nanos(random),
    }
}

/// A random draw for the jitter. Jitter needs no cryptographic quality:
/// std's per-process random hash keys, mixed with a counter
/// (splitmix64), spare a dependency.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut z = hasher.finish().wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy() -> Backoff {
        Backoff {
            initial: 100 * MS,
            max: 2000 * MS,
        }
    }

    #[test]
    fn doubles_per_round_within_equal_jitter_bounds() {
        for (round, base) in [(0, 100), (1, 200), (2, 400), (3, 800)] {
            let low = policy().delay(round, None, 0);
            let high = policy().delay(round, None, u64::MAX);
            assert_eq!(low, base * MS / 2, "round {round}: the fixed half");
            assert!(high <= base * MS && high >= low, "round {round}: {high:?}");
        }
    }

    #[test]
    fn is_capped_however_many_rounds() {
        for round in [4, 5, 16, 17, 1000, u32::MAX] {
            for random in [0, 12345, u64::MAX] {
                assert!(policy().delay(round, None, random) <= 2000 * MS);
            }
        }
    }

    #[test]
    fn retry_after_is_a_floor_with_jitter_above_it() {
        let second = Duration::from_secs(1);
        for random in [0, 1, 987_654_321, u64::MAX] {
            let wait = policy().delay(0, Some(second), random);
            assert!(wait >= second && wait <= second + second / 4, "{wait:?}");
        }
        // Draws differ, waits differ: callers told the same second spread.
        let waits: std::collections::BTreeSet<Duration> = (0..20)
            .map(|_| policy().delay(0, Some(second), random_u64()))
            .collect();
        assert!(waits.len() > 1, "jitter varies: {waits:?}");
    }

    #[test]
    fn retry_after_beyond_the_cap_is_cut_to_the_cap() {
        let wait = policy().delay(0, Some(Duration::from_secs(3600)), 42);
        assert_eq!(wait, 2000 * MS);
    }

    #[test]
    fn zero_delays_do_not_divide_by_zero() {
        let none = Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(none.delay(3, Some(Duration::ZERO), u64::MAX), Duration::ZERO);
    }
}
