//! Suspension of the process (phone asleep, app frozen in the background),
//! detected without a timer of its own.
//!
//! Timers run on the monotonic clock, which stops while the device sleeps,
//! so a Ping due "in 30 s" may fire hours later. Comparing a clock that
//! keeps running during suspend with the monotonic one, whenever the
//! driver wakes anyway (a timer fired, the app called in), tells how long
//! the process slept: no polling, no extra wakeups (battery).

use std::sync::Arc;
use std::time::Duration;

// tokio's Instant follows paused test time; in production it is std's,
// which stops during suspend on Linux, Android and Apple platforms.
use tokio::time::Instant;

/// A clock that keeps running while the device sleeps.
pub(crate) trait SuspendClock: Send + Sync + 'static {
    /// Time since an arbitrary origin, suspended time included.
    fn since_boot(&self) -> Duration;
}

/// The platform's clock that counts suspended time: CLOCK_BOOTTIME on
/// Linux and Android, CLOCK_MONOTONIC on Apple platforms (continuous
/// there, unlike the uptime clock behind `Instant`), the wall clock
/// elsewhere.
pub(crate) struct SystemSuspendClock;

impl SuspendClock for SystemSuspendClock {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn since_boot(&self) -> Duration {
        timespec(rustix::time::clock_gettime(rustix::time::ClockId::Boottime))
    }

    #[cfg(target_vendor = "apple")]
    fn since_boot(&self) -> Duration {
        timespec(rustix::time::clock_gettime(
            rustix::time::ClockId::Monotonic,
        ))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    fn since_boot(&self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn timespec(t: rustix::time::Timespec) -> Duration {
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(t.tv_nsec).unwrap_or(0).min(999_999_999);
    Duration::new(secs, nanos)
}

/// Tells, each time it is asked, whether the process was suspended since
/// the last time, and for how long.
pub(crate) struct SuspensionDetector {
    clock: Arc<dyn SuspendClock>,
    awake: Instant,
    boot: Duration,
}

impl SuspensionDetector {
    pub fn new(clock: Arc<dyn SuspendClock>) -> SuspensionDetector {
        let boot = clock.since_boot();
        SuspensionDetector {
            clock,
            awake: Instant::now(),
            boot,
        }
    }

    /// How long the process slept since the last check, if it did.
    pub fn check(&mut self) -> Option<Duration> {
        let (awake, boot) = (Instant::now(), self.clock.since_boot());
        let slept = suspended_for(
            awake.saturating_duration_since(self.awake),
            boot.saturating_sub(self.boot),
        );
        (self.awake, self.boot) = (awake, boot);
        slept
    }
}

/// How long the process was suspended, judged from how much further the
/// suspend-counting clock moved than the monotonic one over the same
/// interval; `None` below a threshold that absorbs scheduling delays and
/// clock slewing.
pub(crate) fn suspended_for(monotonic: Duration, with_suspend: Duration) -> Option<Duration> {
    const THRESHOLD: Duration = Duration::from_secs(2);
    let gap = with_suspend.saturating_sub(monotonic);
    (gap >= THRESHOLD).then_some(gap)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use parking_lot::Mutex;

    /// A suspend-counting clock for tests: follows tokio's (paused) time
    /// plus whatever suspensions a test simulates.
    pub(crate) struct TestClock {
        origin: Instant,
        slept: Mutex<Duration>,
    }

    impl TestClock {
        pub fn new() -> Arc<TestClock> {
            Arc::new(TestClock {
                origin: Instant::now(),
                slept: Mutex::new(Duration::ZERO),
            })
        }

        /// The device slept for `d`: this clock moved, the monotonic not.
        pub fn suspend(&self, d: Duration) {
            *self.slept.lock() += d;
        }
    }

    impl SuspendClock for TestClock {
        fn since_boot(&self) -> Duration {
            self.origin.elapsed() + *self.slept.lock()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestClock;
    use super::*;

    #[test]
    fn a_suspend_counting_clock_far_ahead_means_the_process_slept() {
        let s = Duration::from_secs(1);
        let ms = Duration::from_millis(1);
        assert_eq!(suspended_for(s, s), None);
        assert_eq!(suspended_for(s, s + 500 * ms), None);
        // Clock set back, or monotonic ahead: not a suspension.
        assert_eq!(suspended_for(s, Duration::ZERO), None);
        assert_eq!(suspended_for(s, 601 * s), Some(600 * s));
    }

    #[tokio::test(start_paused = true)]
    async fn the_detector_reports_each_suspension_once() {
        let clock = TestClock::new();
        let mut detector = SuspensionDetector::new(clock.clone());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(detector.check(), None, "awake time is not sleep");
        clock.suspend(Duration::from_secs(600));
        assert_eq!(detector.check(), Some(Duration::from_secs(600)));
        assert_eq!(detector.check(), None);
    }

    #[test]
    fn the_system_clock_runs() {
        let clock = SystemSuspendClock;
        let a = clock.since_boot();
        std::thread::sleep(Duration::from_millis(5));
        assert!(clock.since_boot() > a);
    }
}
