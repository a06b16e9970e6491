//! Events from the runtime thread to the app, and the channel that carries
//! them with incoming backpressure.
//!
//! The channel is unbounded on purpose: nothing is ever dropped. What keeps
//! memory bounded is that the session stops reading its socket once the
//! unpolled messages cost `max_unpolled_bytes` (payloads and bookkeeping,
//! so that a flood of empty messages is bounded too).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::state::State;

pub use crate::error::error_code;

/// One thing that happened to a client, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The state changed.
    State(State),
    /// A handshake completed; the negotiated subprotocol, if any.
    Open { protocol: Option<String> },
    /// A complete text message.
    Text(Utf8Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// A connection ended: the close code (1006 when there was no close
    /// handshake) and reason.
    Closed { code: u16, reason: String },
    /// A reconnection attempt is scheduled after `delay`.
    Reconnecting { attempt: u32, delay: Duration },
    /// Tracked outbox messages with these ids went out again (after a
    /// reconnect or a restart): the server may see them twice.
    Resent { ids: Vec<u64> },
    /// Something failed; `code` is an [`error_code`] or an HTTP status.
    Error { code: i32, message: String },
    /// The last event: no more will come.
    Terminated,
    /// Something a Socket.IO server did (Socket.IO clients only). Boxed,
    /// as the next variant: every slot of the event channel and every
    /// queued event is as large as the largest variant, and WebSocket
    /// messages must not pay for Socket.IO's fields.
    SocketIo(Box<SioEvent>),
    /// A Server-Sent Event (SSE clients only).
    ServerSent(Box<ServerSentEvent>),
}

impl Event {
    /// The Socket.IO event, if this is one.
    pub fn socket_io(&self) -> Option<&SioEvent> {
        match self {
            Event::SocketIo(event) => Some(event),
            _ => None,
        }
    }

    /// The Socket.IO event, if this is one, taken out of its box.
    pub fn into_socket_io(self) -> Option<SioEvent> {
        match self {
            Event::SocketIo(event) => Some(*event),
            _ => None,
        }
    }

    /// The Server-Sent Event, if this is one.
    pub fn server_sent(&self) -> Option<&ServerSentEvent> {
        match self {
            Event::ServerSent(event) => Some(event),
            _ => None,
        }
    }
}

impl From<SioEvent> for Event {
    fn from(event: SioEvent) -> Event {
        Event::SocketIo(Box::new(event))
    }
}

impl From<ServerSentEvent> for Event {
    fn from(event: ServerSentEvent) -> Event {
        Event::ServerSent(Box::new(event))
    }
}

/// What a Socket.IO server did, per namespace. JSON travels as text.
#[derive(Debug, Clone, PartialEq)]
pub enum SioEvent {
    /// The namespace was joined; `recovered`: the server restored its
    /// state (Socket.IO connection state recovery), missed events follow.
    Connect { nsp: String, recovered: bool },
    /// The server refused the namespace: its JSON data (`{"message": …}`).
    ConnectError { nsp: String, data: String },
    /// The namespace was left: `io server disconnect`, `io client
    /// disconnect`, or `transport close` (rejoined after the reconnect).
    Disconnect { nsp: String, reason: String },
    /// An event: its JSON arguments (an array, binary arguments as
    /// `{"_placeholder":true,"num":i}` for `attachments[i]`); `ack_id` > 0:
    /// the server waits for an answer with that id.
    Event {
        nsp: String,
        name: String,
        args: String,
        ack_id: u64,
        attachments: Vec<Bytes>,
    },
    /// The answer to an emit that asked for one, or its failure (`error`:
    /// `WS_TIMEOUT` when none came within `ack_timeout_ms`, or the
    /// connection was lost first: then `args` is empty).
    Ack {
        nsp: String,
        ack_id: u64,
        args: String,
        attachments: Vec<Bytes>,
        error: i32,
    },
}

impl SioEvent {
    /// Bytes this event holds (arguments and attachments).
    fn payload_bytes(&self) -> usize {
        match self {
            SioEvent::Event {
                name,
                args,
                attachments,
                ..
            } => name.len() + args.len() + attachments.iter().map(Bytes::len).sum::<usize>(),
            SioEvent::Ack {
                args, attachments, ..
            } => args.len() + attachments.iter().map(Bytes::len).sum::<usize>(),
            SioEvent::ConnectError { data, .. } => data.len(),
            SioEvent::Connect { .. } | SioEvent::Disconnect { .. } => 0,
        }
    }
}

/// One event of a `text/event-stream` (WHATWG EventSource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSentEvent {
    /// The `event:` field, `"message"` when there was none.
    pub event_type: String,
    /// The last event id in force (`None` until an `id:` field set one,
    /// `""` after an empty one).
    pub id: Option<String>,
    /// The `data:` lines joined by `"\n"`.
    pub data: String,
}

/// What an unpolled message costs besides its payload: its slot in the
/// channel and its allocation's bookkeeping (a little more than measured,
/// so the limit errs on the safe side).
pub(crate) const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Event>() + 64;

impl Event {
    /// Payload bytes of a message (the `bytes_in` counter).
    pub(crate) fn message_bytes(&self) -> usize {
        match self {
            Event::Text(text) => text.len(),
            Event::Binary(bytes) => bytes.len(),
            Event::SocketIo(event) => event.payload_bytes(),
            Event::ServerSent(event) => event.data.len(),
            _ => 0,
        }
    }

    /// What this event costs while unpolled (counted against
    /// `max_unpolled_bytes`). Other events than messages are few per
    /// connection and count nothing.
    pub(crate) fn unpolled_cost(&self) -> usize {
        match self {
            Event::Text(_) | Event::Binary(_) | Event::SocketIo(_) => {
                MESSAGE_OVERHEAD + self.message_bytes()
            }
            Event::ServerSent(event) => {
                MESSAGE_OVERHEAD
                    + event.data.len()
                    + event.event_type.len()
                    + event.id.as_ref().map_or(0, String::len)
            }
            _ => 0,
        }
    }
}

/// Accounting of received, not yet polled message bytes, and the optional
/// readiness descriptor.
#[derive(Debug)]
struct Unpolled {
    bytes: AtomicUsize,
    limit: usize,
    /// Signalled when `bytes` falls back to or under `limit`.
    drained: Notify,
    /// Polls that found nothing pending: the app had handled every event.
    idle_polls: AtomicU64,
    /// The app is inside such a poll right now.
    app_waiting: AtomicBool,
    /// Signalled at each idle poll.
    app_idle: Notify,
    /// Created on the first `ws_event_fd`.
    #[cfg(unix)]
    readiness: std::sync::OnceLock<Readiness>,
}

/// A descriptor that is readable while events are pending, for apps that
/// wait in their own run loop (epoll, kqueue, ALooper, DispatchSource).
///
/// A socket pair: one byte in it means "events pending". `signalled` keeps
/// it to one byte and one write per batch, not per event. Both ends are
/// closed when the app drops its receiver (`ws_free`), even if the runtime
/// side lives on for a moment: the write end goes first, under its lock, so
/// nothing is ever written to a closed pair (no SIGPIPE in the host app).
#[cfg(unix)]
#[derive(Debug)]
struct Readiness {
    read: parking_lot::Mutex<Option<std::os::unix::net::UnixStream>>,
    write: parking_lot::Mutex<Option<std::os::unix::net::UnixStream>>,
    fd: std::os::unix::io::RawFd,
    signalled: std::sync::atomic::AtomicBool,
}

impl Unpolled {
    /// Whether `bytes` of unpolled messages leave no room for one more (an
    /// empty channel always has room, whatever the limit).
    fn over_limit(&self, bytes: usize) -> bool {
        bytes > 0 && bytes + MESSAGE_OVERHEAD > self.limit
    }
}

#[cfg(unix)]
impl Readiness {
    fn new() -> std::io::Result<Readiness> {
        use std::os::unix::io::AsRawFd;
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        Ok(Readiness {
            fd: read.as_raw_fd(),
            read: parking_lot::Mutex::new(Some(read)),
            write: parking_lot::Mutex::new(Some(write)),
            signalled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Runtime side, after queueing an event.
    fn signal(&self) {
        use std::io::Write;
        if !self.signalled.swap(true, Ordering::AcqRel) {
            if let Some(write) = self.write.lock().as_ref() {
                // WouldBlock means a byte is already there: readable anyway.
                let _ = (&*write).write(&[1]);
            }
        }
    }

    /// App side, after a poll left the channel empty: clear, then re-arm if
    /// an event slipped in meanwhile.
    fn rearm(&self, pending: impl Fn() -> bool) {
        use std::io::Read;
        if let Some(read) = self.read.lock().as_ref() {
            let mut sink = [0u8; 64];
            while matches!((&*read).read(&mut sink), Ok(n) if n > 0) {}
        }
        self.signalled.store(false, Ordering::Release);
        if pending() {
            self.signal();
        }
    }

    /// Closes both ends: the write end first (see the type's comment).
    fn close(&self) {
        drop(self.write.lock().take());
        drop(self.read.lock().take());
    }
}

/// The runtime side of an event channel.
#[derive(Debug, Clone)]
pub(crate) struct EventSender {
    tx: crossbeam_channel::Sender<Event>,
    unpolled: Arc<Unpolled>,
}

/// The app side of an event channel.
#[derive(Debug)]
pub(crate) struct EventReceiver {
    rx: crossbeam_channel::Receiver<Event>,
    unpolled: Arc<Unpolled>,
}

pub(crate) fn channel(max_unpolled_bytes: usize) -> (EventSender, EventReceiver) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let unpolled = Arc::new(Unpolled {
        bytes: AtomicUsize::new(0),
        limit: max_unpolled_bytes,
        drained: Notify::new(),
        idle_polls: AtomicU64::new(0),
        app_waiting: AtomicBool::new(false),
        app_idle: Notify::new(),
        #[cfg(unix)]
        readiness: std::sync::OnceLock::new(),
    });
    (
        EventSender {
            tx,
            unpolled: unpolled.clone(),
        },
        EventReceiver { rx, unpolled },
    )
}

impl EventSender {
    /// Queues an event. If the app is blocked in a poll this wakes it;
    /// otherwise it costs no system call.
    pub fn send(&self, event: Event) {
        let n = event.unpolled_cost();
        if n > 0 {
            self.unpolled.bytes.fetch_add(n, Ordering::AcqRel);
        }
        // Fails only when the receiver is gone (client freed): nobody to tell.
        let _ = self.tx.send(event);
        #[cfg(unix)]
        if let Some(readiness) = self.unpolled.readiness.get() {
            readiness.signal();
        }
    }

    /// Whether the reader must wait: one more message would pass the
    /// limit by more than its payload.
    pub fn over_limit(&self) -> bool {
        self.unpolled
            .over_limit(self.unpolled.bytes.load(Ordering::Acquire))
    }

    /// A mark for [`EventSender::app_caught_up`].
    pub fn idle_polls(&self) -> u64 {
        self.unpolled.idle_polls.load(Ordering::Acquire)
    }

    /// Resolves once the app has handled every event sent so far: it is
    /// waiting in a poll with nothing pending, or has polled and found
    /// nothing since `mark`. (An app answers what it received before it
    /// polls again, so its answers are queued by then.)
    pub async fn app_caught_up(&self, mark: u64) {
        loop {
            let notified = self.unpolled.app_idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let u = &self.unpolled;
            let idle_since = u.idle_polls.load(Ordering::Acquire) > mark;
            if self.tx.is_empty() && (u.app_waiting.load(Ordering::Acquire) || idle_since) {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once the unpolled bytes are back within the limit.
    pub async fn wait_until_drained(&self) {
        loop {
            let notified = self.unpolled.drained.notified();
            tokio::pin!(notified);
            // Register before checking, so a release in between is not missed.
            notified.as_mut().enable();
            if !self.over_limit() {
                return;
            }
            notified.await;
        }
    }
}

impl EventReceiver {
    /// Waits up to `timeout` (`None`: forever) for the next event.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Event, RecvError> {
        let idle = self.rx.is_empty();
        if idle {
            self.unpolled.app_waiting.store(true, Ordering::Release);
            self.unpolled.idle_polls.fetch_add(1, Ordering::AcqRel);
            self.unpolled.app_idle.notify_one();
        }
        let result = self.recv_inner(timeout);
        if idle {
            self.unpolled.app_waiting.store(false, Ordering::Release);
        }
        #[cfg(unix)]
        if let Some(readiness) = self.unpolled.readiness.get() {
            if self.rx.is_empty() {
                readiness.rearm(|| !self.rx.is_empty());
            }
        }
        result
    }

    /// The readiness descriptor (created on first use): readable while
    /// events are pending.
    #[cfg(unix)]
    pub fn readiness_fd(&self) -> std::io::Result<std::os::unix::io::RawFd> {
        if self.unpolled.readiness.get().is_none() {
            let readiness = Readiness::new()?;
            // A racing first call may have set it: then ours is dropped.
            let _ = self.unpolled.readiness.set(readiness);
        }
        let readiness = self.unpolled.readiness.get().expect("set just above");
        if !self.rx.is_empty() {
            readiness.signal();
        }
        Ok(readiness.fd)
    }

    fn recv_inner(&self, timeout: Option<Duration>) -> Result<Event, RecvError> {
        let event = match timeout {
            Some(t) if t.is_zero() => self.rx.try_recv().map_err(|e| match e {
                crossbeam_channel::TryRecvError::Empty => RecvError::Timeout,
                crossbeam_channel::TryRecvError::Disconnected => RecvError::Disconnected,
            })?,
            Some(t) => self.rx.recv_timeout(t).map_err(|e| match e {
                crossbeam_channel::RecvTimeoutError::Timeout => RecvError::Timeout,
                crossbeam_channel::RecvTimeoutError::Disconnected => RecvError::Disconnected,
            })?,
            None => self.rx.recv().map_err(|_| RecvError::Disconnected)?,
        };
        self.release(event.unpolled_cost());
        Ok(event)
    }

    fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let before = self.unpolled.bytes.fetch_sub(n, Ordering::AcqRel);
        if self.unpolled.over_limit(before) && !self.unpolled.over_limit(before - n) {
            self.unpolled.drained.notify_one();
        }
    }

    /// What the unpolled messages cost right now (payloads and overhead).
    pub fn unpolled_bytes(&self) -> usize {
        self.unpolled.bytes.load(Ordering::Acquire)
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(readiness) = self.unpolled.readiness.get() {
            readiness.close();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecvError {
    Timeout,
    Disconnected,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every slot of the event channel is as large as an `Event`: WebSocket
    /// messages (a `Bytes`, 32 bytes, and a tag) must not grow it.
    #[test]
    fn an_event_is_as_small_as_a_websocket_message() {
        let size = std::mem::size_of::<Event>();
        assert!(size <= 40, "an Event is {size} bytes");
    }

    #[test]
    fn events_arrive_in_order_and_release_their_bytes() {
        let (tx, rx) = channel(2 * MESSAGE_OVERHEAD + 10);
        tx.send(Event::State(State::Open));
        tx.send(Event::Binary(Bytes::from_static(b"12345678")));
        tx.send(Event::Text(Utf8Bytes::from_static("abc")));
        assert!(tx.over_limit());
        assert_eq!(rx.recv(Some(Duration::ZERO)), Ok(Event::State(State::Open)));
        assert_eq!(rx.unpolled_bytes(), 2 * MESSAGE_OVERHEAD + 11);
        assert!(matches!(rx.recv(None), Ok(Event::Binary(_))));
        assert!(!tx.over_limit());
        assert!(matches!(rx.recv(None), Ok(Event::Text(_))));
        assert_eq!(rx.unpolled_bytes(), 0);
        assert_eq!(rx.recv(Some(Duration::ZERO)), Err(RecvError::Timeout));
        drop(tx);
        assert_eq!(rx.recv(None), Err(RecvError::Disconnected));
    }

    #[cfg(unix)]
    #[test]
    fn the_readiness_fd_is_readable_exactly_while_events_are_pending() {
        use std::io::{Read, Write};
        let (tx, rx) = channel(1 << 20);
        tx.send(Event::State(State::Connecting));
        rx.readiness_fd().unwrap();
        let r = rx.unpolled.readiness.get().unwrap();
        // Reads what is there and puts it back: a non-destructive probe.
        let readable = || {
            let mut b = [0u8; 8];
            let n = match r.read.lock().as_ref().map(|mut read| read.read(&mut b)) {
                Some(Ok(n)) if n > 0 => n,
                _ => return false,
            };
            let write = r.write.lock();
            let mut write = write.as_ref().unwrap();
            write.write_all(&b[..n]).unwrap();
            true
        };
        assert!(readable(), "pending event before the fd existed");
        rx.recv(Some(Duration::ZERO)).unwrap();
        assert!(!readable(), "drained channel must clear readiness");
        tx.send(Event::State(State::Open));
        tx.send(Event::State(State::Closing));
        assert!(readable());
        rx.recv(None).unwrap();
        assert!(readable(), "one event still pending");
        rx.recv(None).unwrap();
        assert!(!readable());
        assert_eq!(rx.recv(Some(Duration::ZERO)), Err(RecvError::Timeout));
        assert!(!readable());
        // Dropping the receiver closes both ends; the sender stays harmless.
        let unpolled = rx.unpolled.clone();
        drop(rx);
        assert!(unpolled.readiness.get().unwrap().read.lock().is_none());
        tx.send(Event::Terminated);
    }

    #[tokio::test]
    async fn the_app_catches_up_when_it_polls_with_nothing_pending() {
        let (tx, rx) = channel(1 << 20);
        tx.send(Event::State(State::Open));
        let mark = tx.idle_polls();
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.app_caught_up(mark).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "an event is still pending");
        let poller = std::thread::spawn(move || {
            rx.recv(None).unwrap();
            // Nothing pending now: this poll tells the runtime so.
            assert_eq!(rx.recv(Some(Duration::ZERO)), Err(RecvError::Timeout));
        });
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("never caught up")
            .unwrap();
        poller.join().unwrap();
    }

    #[test]
    fn empty_messages_are_bounded_too() {
        let limit = 64 * 1024;
        let (tx, rx) = channel(limit);
        let mut sent = 0;
        while !tx.over_limit() {
            tx.send(Event::Text(Utf8Bytes::from_static("")));
            sent += 1;
            assert!(sent <= limit, "the limit never bit");
        }
        assert!(rx.unpolled_bytes() <= limit);
        assert!(sent >= limit / (2 * MESSAGE_OVERHEAD), "{sent} messages");
    }

    #[tokio::test]
    async fn a_reader_over_the_limit_resumes_when_the_app_polls() {
        let (tx, rx) = channel(4);
        tx.send(Event::Binary(Bytes::from_static(b"0123456789")));
        let waiter = {
            let tx = tx.clone();
            tokio::spawn(async move { tx.wait_until_drained().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let poller = std::thread::spawn(move || rx.recv(None).map(|_| ()));
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("reader was not woken")
            .unwrap();
        poller.join().unwrap().unwrap();
    }
}
