//! The panic boundary: a panic inside an exported function becomes
//! `WS_ERR_INTERNAL` and a `ws_last_error` message, never an unwind into C.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{ws_status, Error};

/// Runs `body`; a panic becomes `WS_ERR_INTERNAL`, an `Err` its status.
/// Both set this thread's last error.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> ws_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ws_status::WS_OK,
        Ok(Err(error)) => super::last_error::fail(error),
        Err(payload) => super::last_error::fail(Error::from_panic(&*payload)),
    }
}

/// Like `guard`, for functions that return no status.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = guard(|| {
        body();
        Ok(())
    });
}
