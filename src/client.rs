//! The Rust API of one client: what the C ABI (and any Rust app) calls.
//!
//! A `Client` is `Send + Sync`: any thread may send or close while another
//! polls. The work happens on the runtime thread, in the client's session.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data};
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::error::{error_code, Error};
use crate::event::{self, Event, EventReceiver, EventSender, RecvError};
use crate::frame::FrameBuffers;
use crate::http::HttpClient;
use crate::options::{Options, Resolved};
use crate::outbox::Outbox;
use crate::queue::{self, MaskedFrame, Pushed};
use crate::session::{
    command_channel, Command, CommandSender, Session, Shared, SystemSuspendClock,
};
use crate::transport::{Endpoint, NetDialer};
use crate::wire::sse::{SseOptions, SseWire};
use crate::wire::websocket::WebSocketWire;
use crate::wire::Wire;

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
    /// What received messages the app has not polled yet cost in memory:
    /// their payloads plus a fixed overhead each (see `max_unpolled_bytes`).
    pub unpolled_bytes: u64,
}

/// Clients alive in this process (created and not yet dropped).
static LIVE_CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// One WebSocket client: a connection kept up across failures.
#[derive(Debug)]
pub struct Client {
    shared: Arc<Shared>,
    commands: CommandSender,
    events: EventReceiver,
    /// For events raised on the app's thread (drop-oldest reports).
    event_tx: EventSender,
    close_requested: AtomicBool,
    terminated: AtomicBool,
    /// A plain ws:// client without the outbox: large messages are framed
    /// and masked by the sender (`MaskedFrame`), off the runtime thread.
    masks_large_sends: bool,
    /// Where those frames are built, reused.
    frame_buffers: FrameBuffers,
}

impl Client {
    /// Validates `url` and `options`, then starts connecting on the runtime
    /// thread. Returns at once; progress arrives as events.
    pub fn connect(url: &str, options: Options) -> Result<Client, Error> {
        let endpoint = Endpoint::parse(url)?;
        let resolved = options.resolve()?;
        if !endpoint.tls && !options.allow_insecure {
            return Err(Error::InvalidArgument(
                "URL: cleartext ws:// is not allowed (option allow_insecure is false); use wss://"
                    .into(),
            ));
        }
        let dialer = net_dialer(&endpoint, &resolved)?;
        let plain = !endpoint.tls;
        let mut client = Client::start(&options, |_| {
            WebSocketWire::new(endpoint, &options, Box::new(dialer))
        })?;
        client.masks_large_sends = plain && client.shared.outbox.is_none();
        Ok(client)
    }

    /// Starts a session of the wire `make_wire` builds (it may keep the
    /// event sender, for events of its own) on the runtime thread.
    pub(crate) fn start<W: Wire>(
        options: &Options,
        make_wire: impl FnOnce(&EventSender) -> W,
    ) -> Result<Client, Error> {
        let shared = Arc::new(Shared::open(options)?);
        if let Some(outbox) = &shared.outbox {
            crate::runtime::spawn(outbox.clone().run_batch_sync())?;
        }
        let (event_tx, events) = event::channel(options.max_unpolled_bytes);
        let (commands, command_rx) = command_channel();
        let session = Session::new(
            make_wire(&event_tx),
            options,
            shared.clone(),
            event_tx.clone(),
            command_rx,
            Arc::new(SystemSuspendClock),
        );
        crate::runtime::spawn(session.run())?;
        LIVE_CLIENTS.fetch_add(1, Ordering::Relaxed);
        Ok(Client {
            shared,
            commands,
            events,
            event_tx,
            close_requested: AtomicBool::new(false),
            terminated: AtomicBool::new(false),
            masks_large_sends: false,
            frame_buffers: Default::default(),
        })
    }

    /// For events raised on the app's thread, in order with the session's.
    pub(crate) fn event_sender(&self) -> &EventSender {
        &self.event_tx
    }

    /// Queues messages that must go out together, in order (a Socket.IO
    /// packet and its attachments): all are queued, or none.
    pub(crate) fn send_group(&self, messages: Vec<queue::Message>) -> Result<(), Error> {
        self.check_not_closed()?;
        if let Pushed::DroppedOldest(n) = self.shared.queue.push_group(messages)? {
            self.report_dropped(n);
        }
        Ok(())
    }

    fn report_dropped(&self, n: usize) {
        self.shared
            .counters
            .dropped
            .fetch_add(n as u64, Ordering::Relaxed);
        self.event_tx.send(Event::Error {
            code: error_code::MESSAGE_DROPPED,
            message: format!("outgoing queue full: dropped the {n} oldest queued message(s)"),
        });
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
        // Straight to the queue's own message: `send` would take it apart
        // and ask `masked` again (in the JNI send's profile, per message).
        let message = self
            .masked(Data::Text, text.as_bytes())
            .unwrap_or_else(|| queue::Message::Text(Utf8Bytes::from(text)));
        self.send_queued(message)
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: &[u8]) -> Result<(), Error> {
        let message = self
            .masked(Data::Binary, data)
            .unwrap_or_else(|| queue::Message::Binary(Bytes::copy_from_slice(data)));
        self.send_queued(message)
    }

    /// `payload` framed on the sender's thread, if it is large and this
    /// client's wire takes such frames: one copy of it, straight into the
    /// frame, where the queue's copy and tungstenite's on the runtime
    /// thread would be two.
    fn masked(&self, kind: Data, payload: &[u8]) -> Option<queue::Message> {
        (self.masks_large_sends && payload.len() > queue::DIRECT_MAX_BYTES).then(|| {
            queue::Message::Masked(MaskedFrame::in_buffers(kind, payload, &self.frame_buffers))
        })
    }

    /// Queues a message; it goes out in order, now if open, else after the
    /// next open. Fails with [`Error::QueueFull`] taking nothing.
    pub fn send(&self, message: Message) -> Result<(), Error> {
        let message = outgoing(message)?;
        let masked = match &message {
            queue::Message::Text(text) => self.masked(Data::Text, text.as_bytes()),
            queue::Message::Binary(data) => self.masked(Data::Binary, data),
            queue::Message::Masked(_) => None,
        };
        self.send_queued(masked.unwrap_or(message))
    }

    fn send_queued(&self, message: queue::Message) -> Result<(), Error> {
        self.check_not_closed()?;
        if let Some(outbox) = &self.shared.outbox {
            outbox.push(message, false, &self.shared.queue)?;
            return Ok(());
        }
        let len = queue::message_len(&message) as u64;
        match self.shared.queue.push(message)? {
            Pushed::Queued => {}
            Pushed::Written => {
                let counters = &self.shared.counters;
                counters.messages_out.fetch_add(1, Ordering::Relaxed);
                counters.bytes_out.fetch_add(len, Ordering::Relaxed);
            }
            Pushed::DroppedOldest(n) => self.report_dropped(n),
        }
        Ok(())
    }

    /// Stores a message in the outbox that stays there until [`Client::ack`]
    /// (at-least-once: it is sent again after every reconnect and restart
    /// until then). Returns its id; ids grow across restarts, so a server
    /// can drop duplicates. Needs the `outbox` option.
    pub fn send_tracked(&self, message: Message) -> Result<u64, Error> {
        let message = outgoing(message)?;
        self.check_not_closed()?;
        let outbox = self.outbox("send_tracked")?;
        outbox.push(message, true, &self.shared.queue)
    }

    /// The server confirmed the tracked message `id`: it leaves the outbox
    /// and is not sent again.
    pub fn ack(&self, id: u64) -> Result<(), Error> {
        self.check_not_closed()?;
        let outbox = self.outbox("ack")?;
        if self.shared.ack(outbox, id)? {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "no message with id {id} is pending in the outbox"
            )))
        }
    }

    /// Messages in the outbox: not yet proven read by the server, or
    /// tracked and not acked.
    pub fn outbox_pending(&self) -> Result<u64, Error> {
        Ok(self.outbox("outbox_pending")?.pending())
    }

    fn outbox(&self, call: &str) -> Result<&Outbox, Error> {
        self.shared
            .outbox
            .as_deref()
            .ok_or_else(|| Error::InvalidArgument(format!("{call} needs the outbox option")))
    }

    /// The app went to the background: the connection is closed politely
    /// (1001) and not reopened until [`Client::resume`]. The queue is kept;
    /// `send` still queues. The state stays `Reconnecting` meanwhile.
    pub fn pause(&self) -> Result<(), Error> {
        self.command(Command::Pause)
    }

    /// Ends a pause, or cuts a backoff wait short: connects now.
    pub fn resume(&self) -> Result<(), Error> {
        self.command(Command::Resume)
    }

    /// Network hint from the OS. `true`: the network is back, skip the rest
    /// of the backoff and try at once (an open connection is checked with a
    /// Ping). `false`: it is gone, make no attempts until it returns.
    pub fn network_changed(&self, available: bool) -> Result<(), Error> {
        self.command(Command::NetworkChanged(available))
    }

    /// Closes the current connection (1001) if any and connects again now,
    /// e.g. after `set_header` refreshed a token.
    pub fn reconnect(&self) -> Result<(), Error> {
        self.command(Command::Reconnect)
    }

    /// With `"queue": {"flush": "manual"}`: lets the backlog held since
    /// the last open go out (after what was sent since the open).
    pub fn flush(&self) -> Result<(), Error> {
        self.check_not_closed()?;
        self.shared.queue.release_backlog();
        Ok(())
    }

    /// Sets (or with `None` removes) a header of the next handshakes.
    /// The value never appears in errors, events or logs.
    pub fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        self.check_not_closed()?;
        crate::options::validate_header(name, value).map_err(Error::InvalidArgument)?;
        let mut headers = self.shared.headers.lock();
        // Header names are case-insensitive: replace any spelling of it.
        headers.retain(|k, _| !k.eq_ignore_ascii_case(name));
        if let Some(value) = value {
            headers.insert(name.to_string(), value.to_string());
        }
        Ok(())
    }

    /// Sets (or with `None` removes) what [`Client::want_queue_room`] calls:
    /// the hook runs once, briefly, on the runtime thread, after messages
    /// left the outgoing queue or the client ended.
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android", target_vendor = "apple")),
        allow(dead_code)
    )]
    pub(crate) fn set_queue_room_hook(&self, hook: Option<Arc<dyn Fn() + Send + Sync>>) {
        self.shared.queue.set_room_hook(hook.map(queue::RoomHook));
    }

    /// A send found the queue full: ask for one call of the room hook when
    /// it has room again (then try the send again before waiting for it).
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "android", target_vendor = "apple")),
        allow(dead_code)
    )]
    pub(crate) fn want_queue_room(&self) {
        self.shared.queue.want_room();
    }

    /// A file descriptor that is readable whenever events are pending, for
    /// waiting in the app's own run loop. Owned by the client.
    #[cfg(unix)]
    pub fn event_fd(&self) -> Result<std::os::unix::io::RawFd, Error> {
        self.events
            .readiness_fd()
            .map_err(|e| Error::Internal(format!("cannot create the event descriptor: {e}")))
    }

    fn command(&self, command: Command) -> Result<(), Error> {
        self.check_not_closed()?;
        self.commands
            .send(command)
            .map_err(|_| Error::Closed("the client has terminated".into()))
    }

    /// Starts the close handshake with `code` and `reason`. Messages queued
    /// before go out first. Events then drain to [`Event::Terminated`].
    pub fn close(&self, code: u16, reason: &str) -> Result<(), Error> {
        validate_close(code, reason)?;
        if self.terminated.load(Ordering::Acquire) {
            return Err(Error::Closed("the client has terminated".into()));
        }
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

/// The dialer of a validated endpoint: its proxy, and TLS when it asks.
pub(crate) fn net_dialer(endpoint: &Endpoint, resolved: &Resolved) -> Result<NetDialer, Error> {
    let tls = if endpoint.tls {
        Some(crate::tls::client_config(&resolved.tls)?)
    } else {
        None
    };
    Ok(NetDialer {
        proxy: resolved.proxy.clone(),
        tls,
    })
}

/// One Server-Sent Events client: an event stream kept up across
/// failures, resumed with `Last-Event-ID`. Receive-only. `Send + Sync`
/// like [`Client`]: any thread may close while another polls.
#[derive(Debug)]
pub struct SseClient {
    client: Client,
}

impl SseClient {
    /// Validates `url` (`http://` or `https://`) and `options`, then
    /// starts connecting on the runtime thread. Returns at once; progress
    /// arrives as events ([`Event::ServerSent`] for each event).
    pub fn connect(url: &str, options: SseOptions) -> Result<SseClient, Error> {
        let endpoint = Endpoint::parse_http(url)?;
        options.validate_own()?;
        let common = &options.common;
        let resolved = common.resolve()?;
        if !endpoint.tls && !common.allow_insecure {
            return Err(Error::InvalidArgument(
                "URL: cleartext http:// is not allowed (option allow_insecure is false); use https://"
                    .into(),
            ));
        }
        let dialer = net_dialer(&endpoint, &resolved)?;
        let http = HttpClient::new(endpoint, Arc::new(dialer));
        let wire = SseWire::new(http, &options);
        Ok(SseClient {
            client: Client::start(common, |_| wire)?,
        })
    }

    /// The session underneath (its readiness descriptor, for poll sets).
    pub(crate) fn session(&self) -> &Client {
        &self.client
    }

    /// As [`Client::poll_event`].
    pub fn poll_event(&self, timeout: Option<Duration>) -> Result<Option<Event>, Error> {
        self.client.poll_event(timeout)
    }

    /// Stops for good: the stream is dropped, no reconnect. Events then
    /// drain to [`Event::Terminated`].
    pub fn close(&self) -> Result<(), Error> {
        self.client.close(1000, "")
    }

    /// Sets (or with `None` removes) a header of the next requests, e.g.
    /// a refreshed token; [`SseClient::reconnect`] uses it at once.
    pub fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        if value.is_some() {
            crate::wire::sse::check_header(name).map_err(Error::InvalidArgument)?;
        }
        self.client.set_header(name, value)
    }

    /// As [`Client::pause`]: the stream is dropped until `resume`.
    pub fn pause(&self) -> Result<(), Error> {
        self.client.pause()
    }

    /// As [`Client::resume`].
    pub fn resume(&self) -> Result<(), Error> {
        self.client.resume()
    }

    /// As [`Client::network_changed`].
    pub fn network_changed(&self, available: bool) -> Result<(), Error> {
        self.client.network_changed(available)
    }

    /// Drops the stream and opens a fresh one now (with `Last-Event-ID`).
    pub fn reconnect(&self) -> Result<(), Error> {
        self.client.reconnect()
    }

    /// As [`Client::event_fd`].
    #[cfg(unix)]
    pub fn event_fd(&self) -> Result<std::os::unix::io::RawFd, Error> {
        self.client.event_fd()
    }

    /// As [`Client::stats`] (nothing is ever sent or queued).
    pub fn stats(&self) -> Stats {
        self.client.stats()
    }
}

/// A message the app may send, as the queue keeps it.
fn outgoing(message: Message) -> Result<queue::Message, Error> {
    match message {
        Message::Text(text) => Ok(queue::Message::Text(text)),
        Message::Binary(data) => Ok(queue::Message::Binary(data)),
        _ => Err(Error::InvalidArgument(
            "only text and binary messages can be sent".into(),
        )),
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

    /// A tokio-tungstenite echo server on 127.0.0.1 in a thread of its own,
    /// which pings every 2 ms from its first echo on; ends with its first
    /// client.
    fn pinging_echo_server() -> (String, std::thread::JoinHandle<()>) {
        use futures_util::{SinkExt, StreamExt};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let (tcp, _) = listener.accept().await.unwrap();
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                let mut pings = tokio::time::interval(Duration::from_millis(2));
                let mut echoed = false;
                let deadline = tokio::time::sleep(Duration::from_secs(60));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        message = ws.next() => match message {
                            Some(Ok(m)) if m.is_text() || m.is_binary() => {
                                if ws.send(m).await.is_err() {
                                    return;
                                }
                                echoed = true;
                            }
                            // No Pings after the close (they would fail and
                            // cut the close handshake short).
                            Some(Ok(Message::Close(_))) => echoed = false,
                            Some(Ok(_)) => {}
                            _ => return,
                        },
                        _ = pings.tick(), if echoed => {
                            if ws.send(Message::Ping(Bytes::from_static(b"p"))).await.is_err() {
                                return;
                            }
                        }
                        _ = &mut deadline => return,
                    }
                }
            });
        });
        (url, server)
    }

    fn next_event(client: &Client) -> Event {
        match client.poll_event(Some(Duration::from_secs(10))) {
            Ok(Some(event)) => event,
            other => panic!("no event within 10 s: {other:?}"),
        }
    }

    /// A ws:// client (pings off), open, to `pinging_echo_server`; and the
    /// server's thread.
    fn open_to_pinging_echo_server() -> (Client, std::thread::JoinHandle<()>) {
        let (url, server) = pinging_echo_server();
        let options =
            Options::from_json(Some(r#"{"allow_insecure": true, "ping_interval_ms": 0}"#)).unwrap();
        let client = Client::connect(&url, options).unwrap();
        while !matches!(next_event(&client), Event::Open { .. }) {}
        (client, server)
    }

    #[test]
    fn sends_on_an_idle_plain_connection_are_written_at_once_and_stay_in_order() {
        let (client, server) = open_to_pinging_echo_server();
        let parked = |client: &Client| {
            (0..5_000).any(|_| {
                std::thread::sleep(Duration::from_millis(1));
                client.shared.queue.writer_parked()
            })
        };
        assert!(parked(&client), "an idle open connection parks its writer");
        // Written by this thread (nothing else writes yet: the server pings
        // only from its first echo on): counted before send returns.
        client.send_text("first").unwrap();
        assert_eq!(client.stats().messages_out, 1);
        // Sends paced like replies and bursts, among the server's Pings:
        // some written here, some queued for the task, all in order.
        let mut expected = vec!["first".to_string()];
        for i in 0..400 {
            if i % 3 == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
            let text = format!("m{i}:{}", "x".repeat(i % 97));
            client.send_text(&text).unwrap();
            expected.push(text);
        }
        let mut echoed = Vec::new();
        while echoed.len() < expected.len() {
            match next_event(&client) {
                Event::Text(t) => echoed.push(t.to_string()),
                Event::Closed { .. } | Event::Error { .. } => {
                    panic!("lost after {} echoes", echoed.len())
                }
                _ => {}
            }
        }
        assert_eq!(echoed, expected);
        assert!(parked(&client), "parked again once idle");
        client.close(1000, "done").unwrap();
        let mut closed = None;
        loop {
            match next_event(&client) {
                Event::Closed { code, .. } => closed = Some(code),
                Event::Terminated => break,
                _ => {}
            }
        }
        assert_eq!(closed, Some(1000));
        server.join().unwrap();
    }

    #[test]
    fn large_sends_framed_by_the_sender_arrive_whole_and_in_order() {
        let (client, server) = open_to_pinging_echo_server();
        assert!(client.masks_large_sends, "plain ws:// without the outbox");
        let body = |i: usize, len: usize| -> Vec<u8> {
            (0..len).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect()
        };
        let mut expected = Vec::new();
        for i in 0..60 {
            let event = match i % 4 {
                0 => {
                    let text = format!("small {i}");
                    client.send_text(&text).unwrap();
                    Event::Text(text.into())
                }
                1 => {
                    let data = body(i, 16 * 1024 + 1 + i * 1000);
                    client.send_binary(&data).unwrap();
                    Event::Binary(data.into())
                }
                2 => {
                    let text = String::from_utf8(body(i, 150_000)).unwrap();
                    client.send_text(&text).unwrap();
                    Event::Text(text.into())
                }
                _ => {
                    let data = Bytes::from(body(i, 40_000));
                    client.send(Message::Binary(data.clone())).unwrap();
                    Event::Binary(data)
                }
            };
            expected.push(event);
        }
        let mut echoed = Vec::new();
        while echoed.len() < expected.len() {
            match next_event(&client) {
                event @ (Event::Text(_) | Event::Binary(_)) => echoed.push(event),
                Event::Closed { .. } | Event::Error { .. } => {
                    panic!("lost after {} echoes", echoed.len())
                }
                _ => {}
            }
        }
        for (i, (got, expected)) in echoed.iter().zip(&expected).enumerate() {
            assert!(got == expected, "echo {i} differs");
        }
        let payload_bytes: usize = expected
            .iter()
            .map(|e| match e {
                Event::Text(t) => t.len(),
                Event::Binary(b) => b.len(),
                _ => 0,
            })
            .sum();
        let stats = client.stats();
        assert_eq!(
            (stats.messages_out, stats.bytes_out),
            (60, payload_bytes as u64)
        );
        client.close(1000, "done").unwrap();
        while !matches!(next_event(&client), Event::Terminated) {}
        server.join().unwrap();
    }
}
