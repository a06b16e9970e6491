//! Reconnection delays: exponential backoff with jitter. Pure policy; the
//! random source is seeded so tests are deterministic.

use std::time::Duration;

use crate::options::ReconnectOptions;

/// Computes the wait before each reconnection attempt.
///
/// delay(attempt) = min(max, initial × multiplier^attempt), then jittered
/// downwards by up to `jitter` of itself, so that clients which lost the
/// same server at the same moment do not come back together.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial_ms: f64,
    max_ms: f64,
    multiplier: f64,
    jitter: f64,
    rng: SplitMix64,
}

impl Backoff {
    pub fn new(options: &ReconnectOptions) -> Backoff {
        let seed = options.jitter_seed.unwrap_or_else(seed_from_clock);
        Backoff {
            initial_ms: options.initial_delay_ms as f64,
            max_ms: options.max_delay_ms as f64,
            multiplier: options.multiplier,
            jitter: options.jitter,
            rng: SplitMix64(seed),
        }
    }

    /// Grows from `initial` from now on (SSE's `retry:` field replaces
    /// `initial_delay_ms`); `max_delay_ms` still caps it.
    pub fn set_initial_delay(&mut self, initial: Duration) {
        self.initial_ms = initial.as_millis() as f64;
    }

    /// The ceiling before jitter for `attempt` (0-based).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        // powi saturates to infinity for large attempts; min() brings it back.
        let exp = self.multiplier.powi(attempt.min(i32::MAX as u32) as i32);
        let ms = (self.initial_ms * exp).min(self.max_ms);
        Duration::from_millis(ms as u64)
    }

    /// The jittered delay for `attempt` (0-based): within
    /// [base × (1 − jitter), base].
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt).as_millis() as f64;
        let ms = base * (1.0 - self.jitter * self.rng.next_unit());
        Duration::from_millis(ms.round() as u64)
    }
}

/// A small, fast, well-distributed generator (Steele et al.); enough for
/// jitter, and seedable.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn seed_from_clock() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    // The counter keeps clients created in the same nanosecond apart.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut mix = SplitMix64(now ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32));
    mix.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(jitter: f64, seed: u64) -> ReconnectOptions {
        ReconnectOptions {
            initial_delay_ms: 1_000,
            max_delay_ms: 30_000,
            multiplier: 2.0,
            jitter,
            jitter_seed: Some(seed),
            ..ReconnectOptions::default()
        }
    }

    #[test]
    fn base_delay_grows_exponentially_up_to_the_cap() {
        let b = Backoff::new(&options(0.0, 1));
        let ms: Vec<u128> = (0..8).map(|a| b.base_delay(a).as_millis()).collect();
        assert_eq!(
            ms,
            vec![1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
        assert_eq!(b.base_delay(u32::MAX).as_millis(), 30_000);
    }

    #[test]
    fn a_new_initial_delay_is_grown_from_and_still_capped() {
        let mut b = Backoff::new(&options(0.0, 1));
        b.set_initial_delay(Duration::from_millis(250));
        let ms: Vec<u128> = (0..3).map(|a| b.base_delay(a).as_millis()).collect();
        assert_eq!(ms, vec![250, 500, 1_000]);
        b.set_initial_delay(Duration::from_secs(3_600));
        assert_eq!(b.base_delay(0).as_millis(), 30_000);
    }

    #[test]
    fn no_jitter_gives_the_base_delay() {
        let mut b = Backoff::new(&options(0.0, 7));
        for attempt in 0..10 {
            assert_eq!(b.delay(attempt), b.base_delay(attempt));
        }
    }

    #[test]
    fn jittered_delays_stay_within_bounds() {
        let mut b = Backoff::new(&options(0.5, 42));
        for attempt in 0..20 {
            let base = b.base_delay(attempt).as_millis();
            let d = b.delay(attempt).as_millis();
            assert!(
                d * 2 >= base && d <= base,
                "attempt {attempt}: {d} of {base}"
            );
        }
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Backoff::new(&options(1.0, 99));
        let mut b = Backoff::new(&options(1.0, 99));
        for attempt in 0..50 {
            assert_eq!(a.delay(attempt), b.delay(attempt));
        }
    }

    #[test]
    fn unseeded_clients_differ() {
        let unseeded = ReconnectOptions {
            jitter: 1.0,
            ..ReconnectOptions::default()
        };
        let a: Vec<_> = (0..8).map(|i| Backoff::new(&unseeded).delay(i)).collect();
        let b: Vec<_> = (0..8).map(|i| Backoff::new(&unseeded).delay(i)).collect();
        assert_ne!(a, b);
    }

    /// 1,000 clients losing the server at the same instant: their first
    /// retries must spread over the jitter window rather than arrive together.
    #[test]
    fn a_thousand_clients_spread_their_retries() {
        let mut buckets = [0u32; 10]; // 50 ms buckets over [500, 1000] ms
        for client in 0..1_000u64 {
            let mut b = Backoff::new(&options(0.5, client.wrapping_mul(0x9E37_79B9)));
            let d = b.delay(0).as_millis() as usize;
            assert!((500..=1_000).contains(&d));
            buckets[((d - 500) / 50).min(9)] += 1;
        }
        // Uniform would be 100 per bucket; no bucket may hold a crowd or be empty.
        for (i, n) in buckets.iter().enumerate() {
            assert!((50..=150).contains(n), "bucket {i} has {n}: {buckets:?}");
        }
    }
}
