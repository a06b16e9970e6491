//! The wire seam: what the session driver asks of a wire protocol.
//!
//! A wire only knows its protocol: open one attempt (transport, TLS,
//! proxy and its handshake), read the next thing the peer sent, take
//! frames to write and flush them, and say how it ended. Everything users
//! count on across connections (reconnect, backoff, heartbeat timing,
//! queue, close deadlines) lives once, in `session`.
//!
//! The shapes are chosen for the wires still to come: Engine.IO over HTTP
//! long-polling has its own heartbeat direction (the server pings:
//! [`HeartbeatPolicy::PeerPings`]), and SSE is receive-only (its writer
//! refuses data; its reconnect state such as Last-Event-ID stays inside
//! the wire, which lives across attempts).

pub(crate) mod engineio;
pub(crate) mod socketio;
pub(crate) mod sse;
pub(crate) mod websocket;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::event::Event;
use crate::queue::{DirectWrite, Message};
use crate::state::End;

/// One attempt of a wire protocol, kept across attempts (so a wire can
/// carry state from one connection to the next).
pub(crate) trait Wire: Send + 'static {
    type Reader: WireReader;
    type Writer: WireWriter;

    /// Opens one connection with the headers in force now. The driver
    /// bounds it with `connect_timeout_ms` and may drop it at any point.
    fn open(
        &mut self,
        headers: &BTreeMap<String, String>,
    ) -> impl Future<Output = Result<Opened<Self::Reader, Self::Writer>, Ending>> + Send;

    /// Where attempts go, for logs (never with secrets).
    fn describe(&self) -> String;

    /// The delay the backoff grows from, when the peer set one (SSE's
    /// `retry:` field); `None` keeps `reconnect.initial_delay_ms`.
    fn reconnect_delay(&self) -> Option<Duration> {
        None
    }
}

/// An open connection, split so that reading and writing run at once (a
/// large write must never stop reading).
pub(crate) struct Opened<R, W> {
    pub reader: R,
    pub writer: W,
    /// The negotiated subprotocol, if any (`Event::Open`).
    pub protocol: Option<String>,
    pub heartbeat: HeartbeatPolicy,
}

/// Who proves the link alive, and how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeartbeatPolicy {
    /// We ping every `interval`; no frame within `timeout` of a Ping is a
    /// dead link (WebSocket).
    ClientPings {
        interval: Duration,
        timeout: Duration,
    },
    /// The peer pings (or streams); no frame within `silence` is a dead
    /// link (Engine.IO's pingInterval + pingTimeout, SSE's read timeout).
    #[cfg_attr(not(test), allow(dead_code))] // for the Engine.IO and SSE wires
    PeerPings { silence: Duration },
    /// Nobody checks.
    Off,
}

/// What the peer sent.
#[derive(Debug)]
pub(crate) enum Incoming {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// An answer to one of our Pings, with its payload.
    Pong(Bytes),
    /// Any other frame: proof of life, nothing to deliver.
    Control,
    /// The peer started, or answered, the close handshake.
    Close {
        code: u16,
        reason: String,
    },
    /// Something the wire decoded itself (a Socket.IO packet, a
    /// Server-Sent Event), delivered to the app as it is.
    Event(Event),
    /// The wire has frames of its own to write (an Engine.IO pong, packets
    /// a namespace's CONNECT released): the driver flushes the writer.
    Flush,
    /// The connection ended; nothing more will be read.
    End(Ending),
}

/// What the driver hands a wire to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outbound {
    Message(Message),
    /// A Ping: a heartbeat's (its send time, see `heartbeat`) or an outbox
    /// confirmation's.
    Ping(Bytes),
    /// Starts our side of the close handshake; nothing may follow it.
    Close {
        code: u16,
        reason: String,
    },
}

/// The reading half of an open connection.
pub(crate) trait WireReader: Send + 'static {
    /// The next thing the peer sent. Cancel-safe: dropping the future
    /// loses nothing.
    fn next(&mut self) -> impl Future<Output = Incoming> + Send;
}

/// The writing half of an open connection, shaped like a sink so that the
/// driver knows exactly which frames the wire took.
pub(crate) trait WireWriter: Send + 'static {
    /// Resolves once the wire can take a frame. Cancel-safe.
    fn ready(&mut self) -> impl Future<Output = Result<(), Ending>> + Send;
    /// Takes one frame (after `ready`).
    fn start(&mut self, frame: Outbound) -> Result<(), Ending>;
    /// Writes out what was taken. Cancel-safe: call again to finish.
    fn flush(&mut self) -> impl Future<Output = Result<(), Ending>> + Send;
    /// This writer as the queue holds it while idle, if the wire lets the
    /// app's thread write through it (see `queue::DirectWrite`).
    fn into_direct(self) -> Result<Box<dyn DirectWrite>, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

/// How one connection (or attempt) ended, with what to report.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ending {
    pub end: End,
    /// Close code and reason of the connection; `None`: no connection was
    /// established, so no `Closed` event.
    pub closed: Option<(u16, String)>,
    pub error: Option<(i32, String)>,
    /// A server's `Retry-After` (429/503): the next attempt waits at least
    /// this long.
    pub retry_after: Option<Duration>,
    /// The peer broke the protocol: what to tell it before hanging up.
    pub violation: Option<Violation>,
}

/// How the peer broke the protocol, which decides the close code we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    /// A malformed frame or sequence (1002).
    Protocol,
    /// Text that is not UTF-8 (1007).
    InvalidUtf8,
    /// A message or frame over our limits (1009).
    TooBig,
}

impl Violation {
    /// The RFC 6455 close code that tells the peer why.
    pub fn close_code(self) -> u16 {
        match self {
            Violation::Protocol => 1002,
            Violation::InvalidUtf8 => 1007,
            Violation::TooBig => 1009,
        }
    }
}

impl Ending {
    /// No connection was established (or it does not count as one).
    pub fn failed(end: End, code: i32, message: String) -> Ending {
        Ending {
            end,
            closed: None,
            error: Some((code, message)),
            retry_after: None,
            violation: None,
        }
    }

    /// The connection ended without a close handshake: reported as 1006.
    pub fn abnormal(end: End, code: i32, message: String) -> Ending {
        Ending {
            closed: Some((1006, String::new())),
            ..Ending::failed(end, code, message)
        }
    }

    /// The close handshake completed with the peer's `code` and `reason`.
    pub fn peer_closed(code: u16, reason: String) -> Ending {
        Ending {
            end: End::PeerClose(code),
            closed: Some((code, reason)),
            error: None,
            retry_after: None,
            violation: None,
        }
    }

    /// The peer broke the protocol.
    pub fn violated(violation: Violation, code: i32, message: String) -> Ending {
        Ending {
            violation: Some(violation),
            ..Ending::failed(End::ProtocolViolation, code, message)
        }
    }

    /// Ended on the app's request, nothing to report.
    pub fn quiet(end: End) -> Ending {
        Ending {
            end,
            closed: None,
            error: None,
            retry_after: None,
            violation: None,
        }
    }
}

impl From<crate::http::HttpError> for Ending {
    /// A failed HTTP request or response of an HTTP wire: no connection
    /// counts as established (no `Closed` event), the error is reported.
    fn from(error: crate::http::HttpError) -> Ending {
        Ending {
            retry_after: error.retry_after,
            ..Ending::failed(error.end, error.code, error.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_violation_has_its_close_code() {
        assert_eq!(Violation::Protocol.close_code(), 1002);
        assert_eq!(Violation::InvalidUtf8.close_code(), 1007);
        assert_eq!(Violation::TooBig.close_code(), 1009);
    }

    #[test]
    fn endings_carry_what_is_reported() {
        let e = Ending::abnormal(End::Lost, -107, "gone".into());
        assert_eq!(e.closed, Some((1006, String::new())));
        assert_eq!(e.error, Some((-107, "gone".into())));
        let e = Ending::peer_closed(1012, "restart".into());
        assert_eq!(e.end, End::PeerClose(1012));
        assert_eq!(e.error, None);
        let e = Ending::violated(Violation::TooBig, -106, "big".into());
        assert_eq!(e.end, End::ProtocolViolation);
        assert_eq!(e.violation, Some(Violation::TooBig));
        assert_eq!(e.closed, None);
    }
}
