//! The C boundary's plumbing: statuses, this thread's last error, the
//! panic guard, and the pointer checks every `wst_*` function goes through.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What every `wst_*` function returns. Values are stable and signed;
/// they mirror `ws_status` of tether.h where the meaning is the same.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum wst_status {
    /// Done.
    WST_OK = 0,
    /// An await found nothing within its timeout (no out-parameter written).
    WST_TIMEOUT = 1,
    /// A required pointer was NULL.
    WST_ERR_NULL_ARGUMENT = -1,
    /// Bad JSON, bad UTF-8, a value out of range.
    WST_ERR_INVALID_ARGUMENT = -2,
    /// The connection (or server) is gone: nothing was done.
    WST_ERR_CLOSED = -4,
    /// A caught panic or a failure of the server thread or the OS.
    WST_ERR_INTERNAL = -5,
}

/// A failure: its status and message.
pub(crate) struct Failure(wst_status, String);

impl Failure {
    pub(crate) fn null(what: &str) -> Failure {
        Failure(wst_status::WST_ERR_NULL_ARGUMENT, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure(wst_status::WST_ERR_INVALID_ARGUMENT, message.into())
    }

    pub(crate) fn closed(message: impl Into<String>) -> Failure {
        Failure(wst_status::WST_ERR_CLOSED, message.into())
    }

    pub(crate) fn internal(message: impl Into<String>) -> Failure {
        Failure(wst_status::WST_ERR_INTERNAL, message.into())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn fail(Failure(status, message): Failure) -> wst_status {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(text));
    status
}

/// This thread's last failure message, or NULL.
pub(crate) fn last_error() -> *const c_char {
    LAST_ERROR.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// Runs `body`: `Ok` gives its status (`WST_OK` or `WST_TIMEOUT`), an
/// `Err` or a panic sets the last error. No panic leaves this function.
pub(crate) fn guard(body: impl FnOnce() -> Result<wst_status, Failure>) -> wst_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => fail(failure),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            fail(Failure::internal(format!("internal error (panic): {what}")))
        }
    }
}

/// Like `guard` for functions without a status: a panic is swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = guard(|| {
        body();
        Ok(wst_status::WST_OK)
    });
}

/// A required NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// A byte buffer; NULL is allowed only with `len == 0`.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &str,
) -> Result<&'a [u8], Failure> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Failure::null(what))
        };
    }
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: non-NULL, length checked, and the caller promises `len`
    // readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The object behind a handle.
///
/// # Safety
/// `ptr` is NULL or a live handle of type `T` (not yet freed).
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Failure> {
    // SAFETY: the caller promises a live handle (or NULL, checked here).
    unsafe { ptr.as_ref() }.ok_or_else(|| Failure::null(what))
}

/// Writes `value` to a non-NULL out-parameter (checked first with `check_out`).
///
/// # Safety
/// `out` is non-NULL and valid for writes of one `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: the caller's contract; `write` does not drop the old value.
    unsafe { out.write(value) }
}

/// What an await found, boxed into `*out` for the caller to free; or
/// `WST_TIMEOUT` when nothing came (and `*out` untouched).
///
/// # Safety
/// `out` is non-NULL (checked first with `check_out`) and valid for writes.
pub(crate) unsafe fn hand_out<T>(out: *mut *mut T, found: Option<T>) -> wst_status {
    match found {
        Some(record) => {
            // SAFETY: the caller's contract.
            unsafe { write_out(out, Box::into_raw(Box::new(record))) };
            wst_status::WST_OK
        }
        None => wst_status::WST_TIMEOUT,
    }
}

/// NULL out-parameters are refused before any work is done.
pub(crate) fn check_out<T>(out: *mut T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(())
    }
}

/// A timeout in milliseconds, -1 for "wait forever" (a year).
pub(crate) fn timeout(ms: i32) -> Result<std::time::Duration, Failure> {
    match ms {
        -1 => Ok(std::time::Duration::from_secs(365 * 24 * 3600)),
        0.. => Ok(std::time::Duration::from_millis(ms as u64)),
        _ => Err(Failure::invalid(format!("timeout_ms {ms} is below -1"))),
    }
}
