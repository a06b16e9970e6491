//! `ws_last_error`: the message of this thread's last failed call.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::error::{ws_status, Error};

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Records `error` as this thread's last failure and returns its status.
pub(crate) fn fail(error: Error) -> ws_status {
    let text = error.to_string().replace('\0', " ");
    let text = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(text));
    error.ws_status()
}

/// Pointer to this thread's last message, or NULL. It stays valid until
/// the next failing call on this thread.
pub(crate) fn last() -> *const c_char {
    LAST_ERROR.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}
