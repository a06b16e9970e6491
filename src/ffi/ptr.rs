//! Pointer helpers: each turns a raw argument into a checked Rust value,
//! so that every exported function is a few safe lines.

use std::ffi::{c_char, CStr};

use super::ws_client;
use crate::error::Error;

/// A required NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn required_str<'a>(
    ptr: *const c_char,
    what: &'static str,
) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(Error::NullArgument(what));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|e| {
        Error::InvalidArgument(format!(
            "{what} is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// An optional string: NULL gives `None`.
///
/// # Safety
/// As [`required_str`].
pub(crate) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    what: &'static str,
) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded caller contract.
    unsafe { required_str(ptr, what) }.map(Some)
}

/// A byte buffer; NULL is allowed only with `len == 0`.
///
/// # Safety
/// `ptr` is NULL or valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const u8,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], Error> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::NullArgument(what))
        };
    }
    if len > isize::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "{what}: length {len} is too large"
        )));
    }
    // SAFETY: non-NULL, length checked, and the caller promises `len`
    // readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// The client behind a handle.
///
/// # Safety
/// `ptr` is NULL or a handle from `ws_connect` not yet given to `ws_free`.
pub(crate) unsafe fn client<'a>(ptr: *const ws_client) -> Result<&'a ws_client, Error> {
    // SAFETY: the caller promises a live handle (or NULL, checked here).
    unsafe { ptr.as_ref() }.ok_or(Error::NullArgument("client"))
}

/// A checked place to write an out-parameter, written only on success.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// # Safety
    /// `ptr` is NULL or valid for writes of one `T` until `write` returns.
    pub(crate) unsafe fn new(ptr: *mut T, what: &'static str) -> Result<Out<T>, Error> {
        if ptr.is_null() {
            Err(Error::NullArgument(what))
        } else {
            Ok(Out(ptr))
        }
    }

    pub(crate) fn write(self, value: T) {
        // SAFETY: non-NULL (checked in `new`) and writable per the contract
        // of `new`; `write` does not read or drop the (maybe uninitialised)
        // old value.
        unsafe { self.0.write(value) }
    }
}
