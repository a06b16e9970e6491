//! The Rust API of one client: what the C ABI (and any Rust app) calls.
//!
//! A `Client` is `Send + Sync`: any thread may send or close while another
//! polls. The work happens on the runtime thread, in the connection task.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::connection::Connection;
use crate::error::Error;
use crate::event::{self, Event, EventReceiver, RecvError};
use crate::options::Options;
use crate::queue::{OutgoingQueue, Pushed};
use crate::transport::Endpoint;

/// Requests from the app to its connection task.
#[derive(Debug)]
pub(crate) enum Command {
    Close { code: u16, reason: String },
}

/// Counters of one client, updated by the connection task.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub reconnects: AtomicU64,
    /// Last Ping round trip in microseconds; 0 = none measured yet.
    pub rtt_micros: AtomicU64,
    /// Messages dropped by `queue.overflow = "drop_oldest"`.
    pub dropped: AtomicU64,
}

/// A snapshot of a client's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued_messages: u64,
    pub queued_bytes: u64,
    pub reconnects: u64,
    pub last_rtt: Option<Duration>,
    /// Payload bytes received / handed to the socket. Bytes handed to a
    /// socket that then died are counted: whether they arrived is unknown.
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub dropped_messages: u64,
    /// Received message bytes the app has not polled yet.
    pub unpolled_bytes: u64,
}

/// What the app side and the connection task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub queue: OutgoingQueue,
    pub counters: Counters,
}

/// Clients alive in this process (created and not yet dropped).
static LIVE_CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// One WebSocket client: a connection kept up across failures.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    events: EventReceiver,
    close_requested: AtomicBool,
    terminated: AtomicBool,
}

impl Client {
    /// Validates `url` and `options`, then starts connecting on the runtime
    /// thread. Returns at once; progress arrives as events.
    pub fn connect(url: &str, options: Options) -> Result<Client, Error> {
        let endpoint = Endpoint::parse(url)?;
        options.validate()?;
        let tls = if endpoint.tls {
            Some(crate::tls::client_config(&options.tls)?)
        } else {
            None
        };
        let shared = Arc::new(Shared {
            queue: OutgoingQueue::new(&options.queue),
            counters: Counters::default(),
        });
        let (event_tx, events) = event::channel(options.max_unpolled_bytes);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let connection =
            Connection::new(endpoint, options, tls, shared.clone(), event_tx, command_rx);
        crate::runtime::spawn(connection.run())?;
        LIVE_CLIENTS.fetch_add(1, Ordering::Relaxed);
        Ok(Client {
            shared,
            commands,
            events,
            close_requested: AtomicBool::new(false),
            terminated: AtomicBool::new(false),
        })
    }

    /// Waits up to `timeout` (`None`: forever) for the next event.
    /// `Ok(None)` means nothing came in time. After [`Event::Terminated`]
    /// has been returned, fails with [`Error::Closed`].
    pub fn poll_event(&self, timeout: Option<Duration>) -> Result<Option<Event>, Error> {
        if self.terminated.load(Ordering::Acquire) {
            return Err(Error::Closed(
                "the client has terminated: no more events will come".into(),
            ));
        }
        match self.events.recv(timeout) {
            Ok(event) => {
                if event == Event::Terminated {
                    self.terminated.store(true, Ordering::Release);
                }
                Ok(Some(event))
            }
            Err(RecvError::Timeout) => Ok(None),
            // The task always sends Terminated before it ends; reaching this
            // means the runtime thread died.
            Err(RecvError::Disconnected) => {
                self.terminated.store(true, Ordering::Release);
                Err(Error::Internal(
                    "the connection task ended without terminating".into(),
                ))
            }
        }
    }

    /// Queues a text message.
    pub fn send_text(&self, text: &str) -> Result<(), Error> {
        self.send(Message::Text(Utf8Bytes::from(text)))
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: &[u8]) -> Result<(), Error> {
        self.send(Message::Binary(Bytes::copy_from_slice(data)))
    }

    /// Queues a message; it goes out in order, now if open, else after the
    /// next open. Fails with [`Error::QueueFull`] taking nothing.
    pub fn send(&self, message: Message) -> Result<(), Error> {
        if !matches!(message, Message::Text(_) | Message::Binary(_)) {
            return Err(Error::InvalidArgument(
                "only text and binary messages can be sent".into(),
            ));
        }
        self.check_not_closed()?;
        if let Pushed::DroppedOldest(n) = self.shared.queue.push(message)? {
            self.shared
                .counters
                .dropped
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Starts the close handshake with `code` and `reason`. Messages queued
    /// before go out first. Events then drain to [`Event::Terminated`].
    pub fn close(&self, code: u16, reason: &str) -> Result<(), Error> {
        validate_close(code, reason)?;
        if self.close_requested.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed("the client is already closed".into()));
        }
        self.commands
            .send(Command::Close {
                code,
                reason: reason.to_string(),
            })
            .map_err(|_| Error::Closed("the client has already terminated".into()))
    }

    /// A snapshot of the client's counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let (queued_messages, queued_bytes) = self.shared.queue.len();
        let rtt = c.rtt_micros.load(Ordering::Relaxed);
        Stats {
            queued_messages: queued_messages as u64,
            queued_bytes: queued_bytes as u64,
            reconnects: c.reconnects.load(Ordering::Relaxed),
            last_rtt: (rtt > 0).then(|| Duration::from_micros(rtt)),
            bytes_in: c.bytes_in.load(Ordering::Relaxed),
            bytes_out: c.bytes_out.load(Ordering::Relaxed),
            messages_in: c.messages_in.load(Ordering::Relaxed),
            messages_out: c.messages_out.load(Ordering::Relaxed),
            dropped_messages: c.dropped.load(Ordering::Relaxed),
            unpolled_bytes: self.events.unpolled_bytes() as u64,
        }
    }

    /// Clients created and not yet dropped, in this process.
    pub fn live_count() -> usize {
        LIVE_CLIENTS.load(Ordering::Relaxed)
    }

    fn check_not_closed(&self) -> Result<(), Error> {
        if self.close_requested.load(Ordering::Acquire) {
            Err(Error::Closed("the client is closed".into()))
        } else if self.terminated.load(Ordering::Acquire) {
            Err(Error::Closed("the client has terminated".into()))
        } else {
            Ok(())
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Dropping `commands` tells the task to close politely and end.
        LIVE_CLIENTS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Close codes an endpoint may send (RFC 6455 §7.4, IANA registry), and a
/// reason that fits a control frame.
pub(crate) fn validate_close(code: u16, reason: &str) -> Result<(), Error> {
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed {
        let why = match CloseCode::from(code) {
            CloseCode::Status | CloseCode::Abnormal | CloseCode::Tls => {
                "is reserved for reporting and must not be sent"
            }
            _ => "is not a code an endpoint may send (use 1000-1003, 1007-1014 or 3000-4999)",
        };
        return Err(Error::InvalidArgument(format!("close code {code} {why}")));
    }
    if reason.len() > 123 {
        return Err(Error::InvalidArgument(format!(
            "close reason is {} bytes; at most 123 fit in a Close frame",
            reason.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_rfc_6455() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert!(validate_close(ok, "").is_ok(), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(validate_close(bad, "").is_err(), "{bad}");
        }
        assert!(validate_close(1000, &"x".repeat(123)).is_ok());
        assert!(validate_close(1000, &"x".repeat(124)).is_err());
    }
}
