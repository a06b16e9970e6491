//! Errors of the public API, each mapped to one stable `ws_status`.

use std::fmt;

/// What a call on the client API can fail with. The message is for humans
/// (it reaches `ws_last_error`); the variant decides the status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A required pointer argument was NULL (C ABI only).
    NullArgument(&'static str),
    /// Bad URL, options, UTF-8, close code, or a call that makes no sense now.
    InvalidArgument(String),
    /// The outgoing queue is at its limit; nothing was taken.
    QueueFull(String),
    /// The client was closed (`ws_close`), or has terminated.
    Closed(String),
    /// A caught panic or a runtime failure.
    Internal(String),
}

impl Error {
    /// What a panic caught at a language boundary (C, JNI) is reported as.
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Error {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown panic");
        Error::Internal(format!("internal error (caught panic): {what}"))
    }

    /// The `ws_status` value of this error (see `include/tether.h`).
    pub fn status(&self) -> i32 {
        match self {
            Error::NullArgument(_) => -1,
            Error::InvalidArgument(_) => -2,
            Error::QueueFull(_) => -3,
            Error::Closed(_) => -4,
            Error::Internal(_) => -5,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NullArgument(what) => write!(f, "{what} must not be NULL"),
            Error::InvalidArgument(msg)
            | Error::QueueFull(msg)
            | Error::Closed(msg)
            | Error::Internal(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}
