//! Dead-link detection with RFC 6455 Ping frames. Pure: times and frame
//! counts come in, decisions come out.
//!
//! Any frame from the peer proves the link alive, not only the Pong: a busy
//! link whose Pong is queued behind a large message is not dead.

use std::time::Duration;

// tokio's Instant follows paused test time; in production it is std's.
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    timeout: Duration,
    outstanding: Option<Outstanding>,
}

#[derive(Debug, Clone, Copy)]
struct Outstanding {
    deadline: Instant,
    /// The peer's frame count when the Ping went out.
    frames_at_ping: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    Alive,
    Dead,
}

impl Heartbeat {
    pub fn new(pong_timeout: Duration) -> Heartbeat {
        Heartbeat {
            timeout: pong_timeout,
            outstanding: None,
        }
    }

    /// Whether a Ping is awaiting proof of life (then no new one is sent).
    pub fn awaiting(&self) -> bool {
        self.outstanding.is_some()
    }

    /// A Ping went out at `now`; `frames` is the peer's frame count then.
    pub fn ping_sent(&mut self, now: Instant, frames: u64) {
        self.outstanding = Some(Outstanding {
            deadline: now + self.timeout,
            frames_at_ping: frames,
        });
    }

    /// When `check` must run next, if a Ping is outstanding.
    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.map(|o| o.deadline)
    }

    /// Judges the link at `now`. `reading_paused` (incoming backpressure:
    /// the app is not polling) means silence proves nothing.
    pub fn check(&mut self, now: Instant, frames: u64, reading_paused: bool) -> Liveness {
        let Some(o) = self.outstanding else {
            return Liveness::Alive;
        };
        if frames != o.frames_at_ping || reading_paused {
            self.outstanding = None;
            return Liveness::Alive;
        }
        if now >= o.deadline {
            Liveness::Dead
        } else {
            Liveness::Alive
        }
    }
}

/// The payload of a Ping: when it was sent, in nanoseconds since `base`.
pub(crate) fn ping_payload(base: Instant, now: Instant) -> [u8; 8] {
    (now.saturating_duration_since(base).as_nanos() as u64).to_be_bytes()
}

/// The round trip of a Pong answering one of our Pings; `None` for an
/// unsolicited Pong or a foreign payload.
pub(crate) fn round_trip(base: Instant, now: Instant, pong: &[u8]) -> Option<Duration> {
    let sent = u64::from_be_bytes(pong.try_into().ok()?);
    let elapsed = now.saturating_duration_since(base).as_nanos() as u64;
    elapsed.checked_sub(sent).map(Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn silence_past_the_timeout_is_death() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(100 * MS);
        h.ping_sent(t0, 5);
        assert_eq!(h.deadline(), Some(t0 + 100 * MS));
        assert_eq!(h.check(t0 + 99 * MS, 5, false), Liveness::Alive);
        assert_eq!(h.check(t0 + 100 * MS, 5, false), Liveness::Dead);
    }

    #[test]
    fn any_frame_after_the_ping_is_life() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(100 * MS);
        h.ping_sent(t0, 5);
        assert_eq!(h.check(t0 + 500 * MS, 6, false), Liveness::Alive);
        assert!(!h.awaiting());
        assert_eq!(h.deadline(), None);
    }

    #[test]
    fn paused_reading_is_not_death() {
        let t0 = Instant::now();
        let mut h = Heartbeat::new(100 * MS);
        h.ping_sent(t0, 1);
        assert_eq!(h.check(t0 + 500 * MS, 1, true), Liveness::Alive);
    }

    #[test]
    fn round_trip_comes_from_our_payload() {
        let base = Instant::now();
        let payload = ping_payload(base, base + 10 * MS);
        assert_eq!(round_trip(base, base + 35 * MS, &payload), Some(25 * MS));
        assert_eq!(round_trip(base, base + 35 * MS, b"hello"), None);
        assert_eq!(round_trip(base, base + 5 * MS, &payload), None);
    }
}
