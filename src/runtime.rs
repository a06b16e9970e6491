//! The one runtime thread that drives every connection.
//!
//! Started lazily by the first `ws_connect` and shared by all clients: a
//! current-thread tokio runtime parked in `block_on` on a thread of its own,
//! so no connection costs a thread and the app never sees async Rust.

use std::future::Future;
use std::sync::OnceLock;

use std::time::{Duration, SystemTime};

use tokio::runtime::{Builder, Handle};
use tokio::sync::watch;

use crate::error::Error;

static RUNTIME: OnceLock<Result<Handle, String>> = OnceLock::new();

/// Broadcasts how long the process was last suspended (see
/// `watch_suspensions`).
static SUSPENSIONS: OnceLock<watch::Sender<Duration>> = OnceLock::new();

fn suspension_sender() -> &'static watch::Sender<Duration> {
    SUSPENSIONS.get_or_init(|| watch::channel(Duration::ZERO).0)
}

/// A receiver that wakes when the process comes back from a suspension
/// (phone asleep, app frozen in the background), with its length.
pub(crate) fn suspensions() -> watch::Receiver<Duration> {
    suspension_sender().subscribe()
}

/// Timers run on the monotonic clock, which stops while the device
/// sleeps, so a Ping due "in 30 s" may fire hours later by the wall
/// clock. Once a second this compares both clocks and, when the wall
/// clock ran ahead, tells every connection at once.
async fn watch_suspensions() {
    const PERIOD: Duration = Duration::from_secs(1);
    let mut mono = tokio::time::Instant::now();
    let mut wall = SystemTime::now();
    loop {
        tokio::time::sleep(PERIOD).await;
        let (mono_now, wall_now) = (tokio::time::Instant::now(), SystemTime::now());
        let wall_elapsed = wall_now.duration_since(wall).unwrap_or_default();
        if let Some(slept) = crate::heartbeat::suspended_for(mono_now - mono, wall_elapsed) {
            suspension_sender().send_replace(slept);
        }
        (mono, wall) = (mono_now, wall_now);
    }
}

fn start() -> Result<Handle, String> {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .thread_name("tether-runtime")
        .build()
        .map_err(|e| format!("cannot create the runtime: {e}"))?;
    let handle = runtime.handle().clone();
    handle.spawn(watch_suspensions());
    std::thread::Builder::new()
        .name("tether-runtime".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .map_err(|e| format!("cannot start the runtime thread: {e}"))?;
    Ok(handle)
}

/// The shared runtime's handle, starting it on first use.
pub(crate) fn handle() -> Result<&'static Handle, Error> {
    RUNTIME
        .get_or_init(start)
        .as_ref()
        .map_err(|e| Error::Internal(e.clone()))
}

/// Runs `future` on the runtime thread.
pub(crate) fn spawn<F>(future: F) -> Result<(), Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    handle()?.spawn(future);
    Ok(())
}
