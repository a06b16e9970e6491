//! Tether's own log lines, routed to the app (Logcat, os_log, …) by
//! `ws_set_log_callback`. Off by default. Lines never carry header values,
//! URLs' user info or payloads.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// Severity of a log line; a sink receives lines at or above its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

/// Where log lines go.
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// The most verbose level any sink wants; 0 = logging off. Checked before
/// anything is formatted, so disabled logging costs one atomic load.
static MAX_LEVEL: AtomicU8 = AtomicU8::new(0);
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Installs `sink` for lines at `level` or more severe; `None` turns
/// logging off.
pub fn set_sink(sink: Option<(Level, Sink)>) {
    let mut slot = SINK.write();
    match sink {
        Some((level, sink)) => {
            *slot = Some(sink);
            MAX_LEVEL.store(level as u8, Ordering::Release);
        }
        None => {
            MAX_LEVEL.store(0, Ordering::Release);
            *slot = None;
        }
    }
}

pub(crate) fn enabled(level: Level) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Acquire)
}

pub(crate) fn write(level: Level, args: fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let sink = SINK.read().clone();
    if let Some(sink) = sink {
        sink(level, &args.to_string());
    }
}

/// `log!(Info, "connected to {}", host)`: formats only when enabled.
macro_rules! log {
    ($level:ident, $($arg:tt)+) => {
        $crate::logging::write($crate::logging::Level::$level, format_args!($($arg)+))
    };
}
pub(crate) use log;

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn lines_reach_the_sink_at_or_above_its_level_only() {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        set_sink(Some((
            Level::Info,
            Arc::new(move |level, line: &str| seen.lock().push((level, line.to_string()))),
        )));
        log!(Debug, "too verbose");
        log!(Info, "connected to {}", "h");
        log!(Error, "bad");
        set_sink(None);
        log!(Error, "after off");
        assert_eq!(
            *lines.lock(),
            vec![
                (Level::Info, "connected to h".into()),
                (Level::Error, "bad".into())
            ]
        );
    }
}
