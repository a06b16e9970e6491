//! Errors of the public API, each mapped to one stable `ws_status`, and the
//! numbers of the C ABI's statuses and error codes: [`ws_status`] and
//! [`ws_error_code`] are declared here, once. The C header is generated
//! from them (cbindgen), the [`error_code`] constants and
//! [`Error::status`] derive from them, and tests/code_tables.rs checks the
//! Kotlin tables against them.

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
        self.ws_status() as i32
    }

    /// The [`ws_status`] of this error.
    pub(crate) fn ws_status(&self) -> ws_status {
        match self {
            Error::NullArgument(_) => ws_status::WS_ERR_NULL_ARGUMENT,
            Error::InvalidArgument(_) => ws_status::WS_ERR_INVALID_ARGUMENT,
            Error::QueueFull(_) => ws_status::WS_ERR_QUEUE_FULL,
            Error::Closed(_) => ws_status::WS_ERR_CLOSED,
            Error::Internal(_) => ws_status::WS_ERR_INTERNAL,
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

/// Result of every fallible call. Stable values, never renumbered.
#[repr(C)]
#[allow(non_camel_case_types)] // the C name (include/tether.h)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ws_status {
    /// Success.
    WS_OK = 0,
    /// `ws_poll_event`: no event within the timeout. Not a failure.
    WS_TIMEOUT = 1,
    /// A required pointer argument was NULL.
    WS_ERR_NULL_ARGUMENT = -1,
    /// Bad URL, bad options JSON, unknown option key, text that is not
    /// UTF-8, a close code RFC 6455 forbids, a bad message kind, …
    WS_ERR_INVALID_ARGUMENT = -2,
    /// The outgoing queue is at its limit; nothing was taken.
    WS_ERR_QUEUE_FULL = -3,
    /// The client was closed by `ws_close`, or has terminated.
    WS_ERR_CLOSED = -4,
    /// A caught panic or a runtime failure (a bug: please report it).
    WS_ERR_INTERNAL = -5,
}

/// Finer error codes of `WS_EVENT_ERROR` (`ws_event.error`). Codes
/// 100..599 are HTTP statuses instead.
#[repr(C)]
#[allow(non_camel_case_types)] // the C name (include/tether.h)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ws_error_code {
    /// DNS or TCP connect failed (refused, unreachable, unknown host).
    WS_ERROR_CONNECT = -100,
    /// The attempt exceeded `connect_timeout_ms`.
    WS_ERROR_CONNECT_TIMEOUT = -101,
    /// The TLS handshake failed for a reason other than the certificate
    /// (an alert, no common protocol version or cipher, …); retried.
    /// Certificate failures have the codes below.
    WS_ERROR_TLS = -102,
    /// The HTTP upgrade failed without a usable status.
    WS_ERROR_HANDSHAKE = -103,
    /// The server chose a subprotocol that was not offered, or none.
    WS_ERROR_SUBPROTOCOL = -104,
    /// The server broke RFC 6455 (bad frame, text that is not UTF-8, …).
    WS_ERROR_PROTOCOL = -105,
    /// An incoming message or frame exceeded `max_message_bytes` or
    /// `max_frame_bytes`; the connection was closed with 1009.
    WS_ERROR_MESSAGE_TOO_BIG = -106,
    /// The connection broke (reset, or closed without a close handshake).
    WS_ERROR_CONNECTION_LOST = -107,
    /// No answer to a Ping within `pong_timeout_ms`: the link was dead.
    WS_ERROR_HEARTBEAT_TIMEOUT = -108,
    /// The server did not finish the close handshake in `close_timeout_ms`.
    WS_ERROR_CLOSE_TIMEOUT = -109,
    /// `queue.overflow` "drop_oldest" dropped queued messages.
    WS_ERROR_MESSAGE_DROPPED = -110,
    /// The client ended with queued messages that were never sent.
    WS_ERROR_UNSENT = -111,
    /// The server's certificate chain is not trusted (unknown issuer, bad
    /// signature, …). A configuration error: not retried.
    WS_ERROR_TLS_UNTRUSTED = -112,
    /// The server's certificate is expired or not yet valid. Not retried.
    WS_ERROR_TLS_EXPIRED = -113,
    /// The server's certificate is not valid for the URL's host name. Not
    /// retried.
    WS_ERROR_TLS_HOSTNAME = -114,
    /// No certificate of the server's chain matches `tls.pin_sha256`. Not
    /// retried.
    WS_ERROR_TLS_PIN = -115,
    /// The HTTP proxy (option `proxy`) could not be reached or refused the
    /// CONNECT; a 407 (bad proxy credentials) is not retried.
    WS_ERROR_PROXY = -116,
}

/// The codes of [`ws_error_code`] as plain integers, as [`Event::Error`]
/// carries them (`ws_event.error`). Codes 100..=599 are HTTP statuses of a
/// refused upgrade instead.
///
/// [`Event::Error`]: crate::Event::Error
pub mod error_code {
    use super::ws_error_code;

    /// [`ws_error_code::WS_ERROR_CONNECT`] (-100).
    pub const CONNECT: i32 = ws_error_code::WS_ERROR_CONNECT as i32;
    /// [`ws_error_code::WS_ERROR_CONNECT_TIMEOUT`] (-101).
    pub const CONNECT_TIMEOUT: i32 = ws_error_code::WS_ERROR_CONNECT_TIMEOUT as i32;
    /// [`ws_error_code::WS_ERROR_TLS`] (-102).
    pub const TLS: i32 = ws_error_code::WS_ERROR_TLS as i32;
    /// [`ws_error_code::WS_ERROR_HANDSHAKE`] (-103).
    pub const HANDSHAKE: i32 = ws_error_code::WS_ERROR_HANDSHAKE as i32;
    /// [`ws_error_code::WS_ERROR_SUBPROTOCOL`] (-104).
    pub const SUBPROTOCOL: i32 = ws_error_code::WS_ERROR_SUBPROTOCOL as i32;
    /// [`ws_error_code::WS_ERROR_PROTOCOL`] (-105).
    pub const PROTOCOL: i32 = ws_error_code::WS_ERROR_PROTOCOL as i32;
    /// [`ws_error_code::WS_ERROR_MESSAGE_TOO_BIG`] (-106).
    pub const MESSAGE_TOO_BIG: i32 = ws_error_code::WS_ERROR_MESSAGE_TOO_BIG as i32;
    /// [`ws_error_code::WS_ERROR_CONNECTION_LOST`] (-107).
    pub const CONNECTION_LOST: i32 = ws_error_code::WS_ERROR_CONNECTION_LOST as i32;
    /// [`ws_error_code::WS_ERROR_HEARTBEAT_TIMEOUT`] (-108).
    pub const HEARTBEAT_TIMEOUT: i32 = ws_error_code::WS_ERROR_HEARTBEAT_TIMEOUT as i32;
    /// [`ws_error_code::WS_ERROR_CLOSE_TIMEOUT`] (-109).
    pub const CLOSE_TIMEOUT: i32 = ws_error_code::WS_ERROR_CLOSE_TIMEOUT as i32;
    /// [`ws_error_code::WS_ERROR_MESSAGE_DROPPED`] (-110).
    pub const MESSAGE_DROPPED: i32 = ws_error_code::WS_ERROR_MESSAGE_DROPPED as i32;
    /// [`ws_error_code::WS_ERROR_UNSENT`] (-111).
    pub const UNSENT: i32 = ws_error_code::WS_ERROR_UNSENT as i32;
    /// [`ws_error_code::WS_ERROR_TLS_UNTRUSTED`] (-112).
    pub const TLS_UNTRUSTED: i32 = ws_error_code::WS_ERROR_TLS_UNTRUSTED as i32;
    /// [`ws_error_code::WS_ERROR_TLS_EXPIRED`] (-113).
    pub const TLS_EXPIRED: i32 = ws_error_code::WS_ERROR_TLS_EXPIRED as i32;
    /// [`ws_error_code::WS_ERROR_TLS_HOSTNAME`] (-114).
    pub const TLS_HOSTNAME: i32 = ws_error_code::WS_ERROR_TLS_HOSTNAME as i32;
    /// [`ws_error_code::WS_ERROR_TLS_PIN`] (-115).
    pub const TLS_PIN: i32 = ws_error_code::WS_ERROR_TLS_PIN as i32;
    /// [`ws_error_code::WS_ERROR_PROXY`] (-116).
    pub const PROXY: i32 = ws_error_code::WS_ERROR_PROXY as i32;
}
