//! Reconnection delays: exponential backoff with jitter. Pure policy; the
//! random source is seeded so tests are deterministic.

use std::time::Duration;

use crate::options::ReconnectOptions;

/// Computes the wait before each reconnection attempt.
///
/// delay(attempt) = min(max, initial × multiplier^attempt), then jittered,
/// so that clients which lost the same server at the same moment do not
/// come back together:
/// - the first retry (attempt 0) is spread evenly around its base, by up to
///   ±2 × `jitter` of it (at most ±100 %: [0, 2 × initial] with the default
///   0.5). This is the attempt a whole fleet makes at once after a server
///   restart, so it gets the widest window; its mean stays the base.
/// - later retries jitter downwards by up to `jitter` of themselves: the
///   fleet is already spread, and the delay never exceeds its ceiling.
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

    /// The jittered delay for `attempt` (0-based): attempt 0 within
    /// [base × (1 − w), base × (1 + w)] with w = min(1, 2 × jitter), capped
    /// by `max_delay_ms`; later attempts within [base × (1 − jitter), base].
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let base = self.base_delay(attempt).as_millis() as f64;
        let unit = self.rng.next_unit();
        let ms = if attempt == 0 {
            let spread = (2.0 * self.jitter).min(1.0);
            (base * (1.0 + spread * (2.0 * unit - 1.0))).min(self.max_ms)
        } else {
            base * (1.0 - self.jitter * unit)
        };
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
        for attempt in 1..20 {
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

    #[test]
    fn the_first_retry_spreads_around_its_base_within_the_cap() {
        for (jitter, low, high) in [(0.5, 0, 2_000), (0.25, 500, 1_500), (1.0, 0, 2_000)] {
            let mut seen = (u128::MAX, 0);
            for seed in 0..2_000u64 {
                let d = Backoff::new(&options(jitter, seed)).delay(0).as_millis();
                assert!((low..=high).contains(&d), "jitter {jitter}: {d} ms");
                seen = (seen.0.min(d), seen.1.max(d));
            }
            // The whole window is used, not only its middle.
            assert!(
                seen.0 < low + 50 && seen.1 > high - 50,
                "jitter {jitter}: {seen:?}"
            );
        }
        let capped = ReconnectOptions {
            max_delay_ms: 1_200,
            ..options(0.5, 3)
        };
        for seed in 0..500u64 {
            let mut b = Backoff::new(&ReconnectOptions {
                jitter_seed: Some(seed),
                ..capped.clone()
            });
            assert!(b.delay(0).as_millis() <= 1_200);
        }
    }

    /// 1,000 clients losing the server at the same instant: their first
    /// retries must spread over the jitter window rather than arrive
    /// together — no 100 ms window may hold more than 10 % of them (the
    /// reconnect storm budget of DESIGN.md).
    #[test]
    fn a_thousand_clients_spread_their_retries() {
        let mut delays: Vec<u128> = (0..1_000u64)
            .map(|client| {
                let mut b = Backoff::new(&options(0.5, client.wrapping_mul(0x9E37_79B9)));
                b.delay(0).as_millis()
            })
            .collect();
        delays.sort_unstable();
        assert!(delays.iter().all(|d| *d <= 2_000));
        // The most retries in any sliding 100 ms window.
        let mut busiest = 0;
        let mut start = 0;
        for end in 0..delays.len() {
            while delays[end] - delays[start] >= 100 {
                start += 1;
            }
            busiest = busiest.max(end - start + 1);
        }
        assert!(
            busiest <= 100,
            "{busiest} of 1,000 retries in one 100 ms window"
        );
    }
}
