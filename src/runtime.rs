//! The one runtime thread that drives every connection.
//!
//! Started lazily by the first `ws_connect` and shared by all clients: a
//! current-thread tokio runtime parked in `block_on` on a thread of its own,
//! so no connection costs a thread and the app never sees async Rust.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Handle};

use crate::error::Error;

static RUNTIME: OnceLock<Result<Handle, String>> = OnceLock::new();

fn start() -> Result<Handle, String> {
    let runtime = Builder::new_current_thread()
        .enable_all()
        .thread_name("tether-runtime")
        .build()
        .map_err(|e| format!("cannot create the runtime: {e}"))?;
    let handle = runtime.handle().clone();
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
