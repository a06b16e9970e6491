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

/// Finer error codes carried by [`Event::Error`] (`ws_event.error`).
/// Codes 100..=599 are HTTP statuses of a refused upgrade instead.
pub mod error_code {
    /// DNS or TCP connect failed (refused, unreachable, unknown host).
    pub const CONNECT: i32 = -100;
    /// The attempt exceeded `connect_timeout_ms`.
    pub const CONNECT_TIMEOUT: i32 = -101;
    /// TLS failed (handshake, trust, hostname).
    pub const TLS: i32 = -102;
    /// The HTTP upgrade failed without a usable status (malformed answer).
    pub const HANDSHAKE: i32 = -103;
    /// The server chose a subprotocol that was not offered, or none of them.
    pub const SUBPROTOCOL: i32 = -104;
    /// The peer broke RFC 6455 (bad frame, bad UTF-8 in text, …).
    pub const PROTOCOL: i32 = -105;
    /// An incoming message or frame exceeded `max_message_bytes` /
    /// `max_frame_bytes`.
    pub const MESSAGE_TOO_BIG: i32 = -106;
    /// The connection broke (reset, EOF without close handshake, I/O error).
    pub const CONNECTION_LOST: i32 = -107;
    /// No Pong or other frame within `pong_timeout_ms` of a Ping.
    pub const HEARTBEAT_TIMEOUT: i32 = -108;
    /// The peer did not answer our Close frame within `close_timeout_ms`.
    pub const CLOSE_TIMEOUT: i32 = -109;
    /// `queue.overflow = "drop_oldest"` dropped a queued message.
    pub const MESSAGE_DROPPED: i32 = -110;
    /// The client ended with messages still queued; they were never sent.
    pub const UNSENT: i32 = -111;
    /// The server's certificate chain is not trusted (unknown issuer, bad
    /// signature, revoked, …). Not retried.
    pub const TLS_UNTRUSTED: i32 = -112;
    /// The server's certificate is expired or not yet valid. Not retried.
    pub const TLS_EXPIRED: i32 = -113;
    /// The server's certificate is not valid for the URL's host. Not retried.
    pub const TLS_HOSTNAME: i32 = -114;
    /// No certificate in the chain matches `tls.pin_sha256`. Not retried.
    pub const TLS_PIN: i32 = -115;
    /// The HTTP proxy refused the CONNECT or could not be reached.
    pub const PROXY: i32 = -116;
}
