//! The per-client task on the runtime thread: connect, read, write,
//! heartbeat, close and reconnect. Thin glue: the state machine
//! (`state`), backoff, heartbeat and queue decide; this module does I/O.
//!
//! While a connection is open, a reader and a writer run concurrently in
//! the one task, so a large write never stops reading (which would deadlock
//! against a peer that echoes while we write).

use std::collections::{BTreeMap, VecDeque};
use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::backoff::Backoff;
use crate::client::{Command, Counters, Shared};
use crate::event::{error_code, Event, EventSender};
use crate::heartbeat::{self, Heartbeat, Liveness};
use crate::logging::log;
use crate::options::{Flush, Options};
use crate::queue::message_len;
use crate::state::{End, Machine, Next, State};
use crate::transport::{ConnectError, Endpoint, Proxy, Transport};

type Ws = WebSocketStream<Transport>;

/// Read buffer of a connection. Small, so idle connections stay cheap;
/// tungstenite grows it to the size of each incoming frame as needed.
const READ_BUFFER_BYTES: usize = 16 * 1024;

pub(crate) struct Connection {
    endpoint: Endpoint,
    proxy: Option<Proxy>,
    options: Options,
    tls: Option<Arc<rustls::ClientConfig>>,
    shared: Arc<Shared>,
    events: EventSender,
    commands: mpsc::UnboundedReceiver<Command>,
    machine: Machine,
    backoff: Backoff,
    /// The state last reported to the app.
    reported: State,
    /// Set once the app asked to close (or dropped the client).
    close_asked: bool,
    /// Paused by the app (`ws_pause`) until `ws_resume`.
    paused: bool,
    /// The OS's last network hint (`ws_network_changed`).
    network_available: bool,
}

/// How one connection (or attempt) ended, with what to report.
struct Ending {
    end: End,
    /// Close code and reason of the connection; `None`: no connection was
    /// established, so no `Closed` event.
    closed: Option<(u16, String)>,
    error: Option<(i32, String)>,
    /// A server's `Retry-After` (429/503): the next attempt waits at least
    /// this long.
    retry_after: Option<Duration>,
}

impl Ending {
    fn failed(end: End, code: i32, message: String) -> Ending {
        Ending {
            end,
            closed: None,
            error: Some((code, message)),
            retry_after: None,
        }
    }

    /// The connection ended without a close handshake: reported as 1006.
    fn abnormal(end: End, code: i32, message: String) -> Ending {
        Ending {
            end,
            closed: Some((1006, String::new())),
            error: Some((code, message)),
            retry_after: None,
        }
    }

    fn quiet(end: End) -> Ending {
        Ending {
            end,
            closed: None,
            error: None,
            retry_after: None,
        }
    }
}

impl Connection {
    pub fn new(
        endpoint: Endpoint,
        options: Options,
        tls: Option<Arc<rustls::ClientConfig>>,
        shared: Arc<Shared>,
        events: EventSender,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Connection {
        Connection {
            // Validated with the options.
            proxy: options.proxy.as_deref().and_then(|p| Proxy::parse(p).ok()),
            machine: Machine::new(&options.reconnect),
            backoff: Backoff::new(&options.reconnect),
            endpoint,
            options,
            tls,
            shared,
            events,
            commands,
            reported: State::Connecting,
            close_asked: false,
            paused: false,
            network_available: true,
        }
    }

    /// Runs the client to its end. Always finishes with `Terminated`, even
    /// if the task panicked (reported as an internal error).
    pub async fn run(self) {
        let events = self.events.clone();
        let shared = self.shared.clone();
        if AssertUnwindSafe(self.drive()).catch_unwind().await.is_err() {
            let (unsent, _) = shared.queue.close();
            events.send(Event::Error {
                code: crate::error::Error::Internal(String::new()).status(),
                message: format!(
                    "internal error: the connection task panicked ({unsent} queued messages never sent)"
                ),
            });
            events.send(Event::State(State::Closed));
            events.send(Event::Terminated);
        }
    }

    async fn drive(mut self) {
        self.events.send(Event::State(State::Connecting));
        loop {
            let ending = match self.attempt().await {
                Ok((ws, protocol)) => self.session(ws, protocol).await,
                Err(ending) => ending,
            };
            if let Some((code, message)) = ending.error {
                log!(Warn, "{}: {message} (error {code})", self.endpoint.host);
                self.events.send(Event::Error { code, message });
            }
            if let Some((code, reason)) = ending.closed {
                log!(
                    Info,
                    "{}: connection closed, code {code}",
                    self.endpoint.host
                );
                self.events.send(Event::Closed { code, reason });
            }
            let wait = match self.machine.ended(&ending.end) {
                Next::Stop => break,
                Next::ReconnectNow => {
                    self.report_state();
                    Some(Duration::ZERO)
                }
                Next::Suspend => {
                    self.paused = true;
                    self.report_state();
                    None
                }
                Next::Reconnect { attempt } => {
                    let backoff = self.backoff.delay(attempt - 1);
                    let delay = backoff.max(ending.retry_after.unwrap_or_default());
                    self.shared
                        .counters
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                    self.report_state();
                    log!(
                        Info,
                        "{}: reconnecting, attempt {attempt} in {} ms",
                        self.endpoint.host,
                        delay.as_millis()
                    );
                    self.events.send(Event::Reconnecting { attempt, delay });
                    Some(delay)
                }
            };
            if !self.wait_before_retry(wait).await {
                self.machine.close_while_down();
                break;
            }
        }
        self.report_unsent();
        self.report_state();
        log!(Info, "{}: terminated", self.endpoint.host);
        self.events.send(Event::Terminated);
    }

    /// Emits a `State` event if the machine moved since the last one.
    fn report_state(&mut self) {
        let state = self.machine.state();
        if state != self.reported {
            self.reported = state;
            self.events.send(Event::State(state));
        }
    }

    fn report_unsent(&self) {
        let (messages, bytes) = self.shared.queue.close();
        if messages > 0 {
            self.events.send(Event::Error {
                code: error_code::UNSENT,
                message: format!(
                    "closed with {messages} queued messages ({bytes} bytes) never sent"
                ),
            });
        }
    }

    /// Waits out `delay` (`None`: until resumed) while paused or offline
    /// waits are extended and app hints cut them short. False if the app
    /// closed meanwhile.
    async fn wait_before_retry(&mut self, delay: Option<Duration>) -> bool {
        let deadline = delay.map(|d| Instant::now() + d);
        let mut suspensions = crate::runtime::suspensions();
        loop {
            let may_try = !self.paused && self.network_available;
            let timer = deadline.filter(|_| may_try);
            tokio::select! {
                _ = sleep_until(timer.unwrap_or_else(far_future)), if timer.is_some() => return true,
                // The process slept through part of the wait: the timer
                // could not run, so try now rather than wait more.
                Ok(()) = suspensions.changed(), if may_try => return true,
                command = self.commands.recv() => match command {
                    Some(Command::Close { .. }) | None => {
                        self.close_asked = true;
                        return false;
                    }
                    Some(Command::Pause) => self.paused = true,
                    Some(Command::Resume) | Some(Command::Reconnect) => {
                        self.paused = false;
                        if self.network_available {
                            return true;
                        }
                    }
                    Some(Command::NetworkChanged(available)) => {
                        self.network_available = available;
                        if available && !self.paused {
                            return true;
                        }
                    }
                },
            }
        }
    }

    /// One connection attempt, bounded by `connect_timeout_ms`, abandoned
    /// if the app closes, pauses or asks for a fresh attempt meanwhile.
    async fn attempt(&mut self) -> Result<(Ws, Option<String>), Ending> {
        log!(
            Info,
            "connecting to {}:{}{}",
            self.endpoint.host,
            self.endpoint.port,
            if self.proxy.is_some() {
                " through the proxy"
            } else {
                ""
            }
        );
        let headers = self.shared.headers.lock().clone();
        let handshake = tokio::time::timeout(
            self.options.connect_timeout(),
            handshake(
                &self.endpoint,
                &self.options,
                &headers,
                self.proxy.as_ref(),
                self.tls.as_ref(),
            ),
        );
        tokio::pin!(handshake);
        loop {
            tokio::select! {
                result = &mut handshake => return match result {
                    Ok(result) => result,
                    Err(_) => Err(Ending::failed(
                        End::ConnectFailed,
                        error_code::CONNECT_TIMEOUT,
                        format!(
                            "connect timed out after {} ms (DNS, TCP, TLS and upgrade)",
                            self.options.connect_timeout_ms
                        ),
                    )),
                },
                command = self.commands.recv() => match command {
                    Some(Command::Close { .. }) | None => {
                        self.close_asked = true;
                        return Err(Ending::quiet(End::UserClose));
                    }
                    Some(Command::Pause) => return Err(Ending::quiet(End::Paused)),
                    Some(Command::Reconnect) => return Err(Ending::quiet(End::Restart)),
                    Some(Command::NetworkChanged(available)) => self.network_available = available,
                    Some(Command::Resume) => {}
                },
            }
        }
    }

    /// Runs one open connection until it ends.
    async fn session(&mut self, ws: Ws, protocol: Option<String>) -> Ending {
        self.machine.opened();
        self.report_state();
        log!(
            Info,
            "{}: open (subprotocol {:?})",
            self.endpoint.host,
            protocol.as_deref().unwrap_or("none")
        );
        self.events.send(Event::Open { protocol });
        if self.options.queue.flush == Flush::Manual {
            self.shared.queue.hold_backlog();
        }

        let opened_at = Instant::now();
        let link = Link {
            base: opened_at,
            frames: AtomicU64::new(0),
            reading_paused: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            events: &self.events,
            counters: &self.shared.counters,
        };
        let (mut sink, mut stream) = ws.split();
        let mut pending = VecDeque::new();
        let mut writer = Writer {
            link: &link,
            shared: &self.shared,
            commands: &mut self.commands,
            options: &self.options,
            pending: &mut pending,
            network_available: &mut self.network_available,
            requested: None,
        };
        let mut ending = tokio::select! {
            ending = read_loop(&mut stream, &link) => ending,
            ending = writer.run(&mut sink) => ending,
        };
        let requested = writer.requested.take();

        // A protocol violation by the peer: first let the app answer what
        // it received before (briefly), then tell the peer why, hang up.
        if let Some(code) = violation_close_code(&ending) {
            let mark = self.events.idle_polls();
            let linger = self.options.close_timeout().min(Duration::from_secs(1));
            let _ = tokio::time::timeout(linger, async {
                self.events.app_caught_up(mark).await;
                pending.extend(self.shared.queue.take_all());
                drain(&mut sink, &mut pending, &link, false).await
            })
            .await;
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            };
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                sink.send(Message::Close(Some(frame))),
            )
            .await;
            ending.closed = Some((code, String::new()));
        }
        // Whatever was taken from the queue but not written goes back, in
        // front, for the next connection.
        self.shared.queue.requeue_front(pending);

        let by_user = requested == Some(End::UserClose);
        if by_user {
            self.close_asked = true;
        }
        if link.closing.load(Ordering::Acquire) {
            self.machine.closing(by_user);
            self.reported = State::Closing;
        }
        let stayed =
            opened_at.elapsed() >= Duration::from_millis(self.options.reconnect.reset_after_ms);
        if stayed {
            self.machine.stayed_open();
        }
        // The connection ended after the app asked it to (close, pause,
        // reconnect): that request, not the peer's echo, says what is next.
        if let Some(end) = requested {
            if ending.error.is_none() || end != End::UserClose {
                ending.end = end;
            }
        }
        ending
    }
}

/// What the reader and writer of one open connection share.
struct Link<'a> {
    /// Origin of Ping payload timestamps.
    base: Instant,
    /// Messages (data and control) received: proof of life for heartbeat.
    frames: AtomicU64,
    /// The reader waits for the app to poll (incoming backpressure).
    reading_paused: AtomicBool,
    /// A close handshake has started (either side); State(Closing) sent.
    closing: AtomicBool,
    events: &'a EventSender,
    counters: &'a Counters,
}

impl Link<'_> {
    /// Counts a received message and hands it to the app.
    fn deliver(&self, message: Event) {
        let len = message.message_bytes() as u64;
        self.counters.messages_in.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_in.fetch_add(len, Ordering::Relaxed);
        self.events.send(message);
    }

    /// Reports `Closing` once per connection.
    fn start_closing(&self) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            self.events.send(Event::State(State::Closing));
        }
    }
}

/// Reads until the connection ends; turns messages into events.
async fn read_loop(stream: &mut SplitStream<Ws>, link: &Link<'_>) -> Ending {
    let mut peer_close: Option<(u16, String)> = None;
    loop {
        if link.events.over_limit() {
            link.reading_paused.store(true, Ordering::Release);
            link.events.wait_until_drained().await;
            link.reading_paused.store(false, Ordering::Release);
        }
        let message = match stream.next().await {
            Some(Ok(message)) => message,
            Some(Err(e)) => return read_error_ending(e, peer_close),
            // The close handshake completed and the server closed TCP.
            None => {
                let (code, reason) = peer_close.unwrap_or((1005, String::new()));
                return Ending {
                    end: End::PeerClose(code),
                    closed: Some((code, reason)),
                    retry_after: None,
                    error: None,
                };
            }
        };
        link.frames.fetch_add(1, Ordering::Relaxed);
        match message {
            Message::Text(text) => link.deliver(Event::Text(text)),
            Message::Binary(data) => link.deliver(Event::Binary(data)),
            Message::Pong(payload) => {
                if let Some(rtt) = heartbeat::round_trip(link.base, Instant::now(), &payload) {
                    let micros = (rtt.as_micros() as u64).max(1);
                    link.counters.rtt_micros.store(micros, Ordering::Relaxed);
                }
            }
            // tungstenite answers Pings itself.
            Message::Ping(_) | Message::Frame(_) => {}
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (u16::from(f.code), f.reason.to_string()),
                    None => (1005, String::new()),
                };
                peer_close = Some((code, reason));
                link.start_closing();
            }
        }
    }
}

/// The close code to send the peer after it broke the protocol.
fn violation_close_code(ending: &Ending) -> Option<u16> {
    match ending.error {
        Some((error_code::MESSAGE_TOO_BIG, _)) => Some(1009),
        Some((error_code::PROTOCOL, ref msg)) if msg.contains("UTF-8") => Some(1007),
        Some((error_code::PROTOCOL, _)) => Some(1002),
        _ => None,
    }
}

fn read_error_ending(error: WsError, peer_close: Option<(u16, String)>) -> Ending {
    let lost = |detail: String| {
        Ending::abnormal(
            End::Lost,
            error_code::CONNECTION_LOST,
            format!("connection lost: {detail}"),
        )
    };
    match error {
        // A peer that sent its Close frame may hang up without waiting.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) | WsError::Io(_)
            if peer_close.is_some() =>
        {
            let (code, reason) = peer_close.unwrap_or((1005, String::new()));
            Ending {
                end: End::PeerClose(code),
                closed: Some((code, reason)),
                retry_after: None,
                error: None,
            }
        }
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            lost("the server closed TCP without a close handshake".into())
        }
        WsError::Io(e) => lost(e.to_string()),
        WsError::Tls(e) => lost(format!("TLS: {e}")),
        WsError::Capacity(e) => {
            let detail = match e {
                CapacityError::MessageTooLong { size, max_size } => {
                    format!("incoming message of {size} bytes exceeds the limit of {max_size}")
                }
                other => other.to_string(),
            };
            Ending {
                end: End::ProtocolViolation,
                closed: None,
                retry_after: None,
                error: Some((error_code::MESSAGE_TOO_BIG, detail)),
            }
        }
        WsError::Utf8(detail) => Ending {
            end: End::ProtocolViolation,
            closed: None,
            retry_after: None,
            error: Some((
                error_code::PROTOCOL,
                format!("peer sent text that is not UTF-8: {detail}"),
            )),
        },
        other => Ending {
            end: End::ProtocolViolation,
            closed: None,
            retry_after: None,
            error: Some((
                error_code::PROTOCOL,
                format!("peer broke the WebSocket protocol: {other}"),
            )),
        },
    }
}

/// The writing half of an open connection: drains the queue, sends Pings,
/// carries out the app's requests (close, pause, reconnect, hints).
struct Writer<'a, 'l> {
    link: &'a Link<'l>,
    shared: &'a Shared,
    commands: &'a mut mpsc::UnboundedReceiver<Command>,
    options: &'a Options,
    /// Taken from the queue, not yet handed to the socket.
    pending: &'a mut VecDeque<Message>,
    network_available: &'a mut bool,
    /// What the app asked this connection to end for, once asked.
    requested: Option<End>,
}

impl Writer<'_, '_> {
    async fn run(&mut self, sink: &mut SplitSink<Ws, Message>) -> Ending {
        let ping_every = Duration::from_millis(self.options.ping_interval_ms.max(1));
        let mut ticker = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heartbeat = Heartbeat::new(Duration::from_millis(self.options.pong_timeout_ms));
        let mut suspensions = crate::runtime::suspensions();
        let mut close_deadline: Option<Instant> = None;
        loop {
            let asked = self.requested.is_some();
            let peer_closing = self.link.closing.load(Ordering::Acquire) && !asked;
            if self.pending.is_empty() && !peer_closing && !asked {
                *self.pending = self.shared.queue.take_all();
            }
            let may_write = !self.pending.is_empty() && !peer_closing;
            let heartbeat_deadline = heartbeat.deadline();
            tokio::select! {
                biased;
                result = drain(sink, self.pending, self.link, asked), if may_write => {
                    if let Err(e) = result {
                        return write_error_ending(e);
                    }
                }
                command = self.commands.recv(), if !asked => {
                    let (end, code, reason) = match command {
                        Some(Command::Close { code, reason }) => (End::UserClose, code, reason),
                        // The app dropped the client without closing.
                        None => (End::UserClose, 1001, String::new()),
                        Some(Command::Pause) => (End::Paused, 1001, "paused".to_string()),
                        Some(Command::Reconnect) => (End::Restart, 1001, "reconnecting".to_string()),
                        Some(Command::Resume) => continue,
                        Some(Command::NetworkChanged(available)) => {
                            *self.network_available = available;
                            // The route may have changed: check the link now.
                            if !heartbeat.awaiting() && !peer_closing {
                                self.ping_now(&mut heartbeat);
                            }
                            continue;
                        }
                    };
                    self.link.start_closing();
                    if !peer_closing {
                        // Everything queued before the close goes out first
                        // (on pause or reconnect it stays queued instead).
                        if end == End::UserClose {
                            self.pending.extend(self.shared.queue.take_all());
                        } else {
                            self.shared.queue.requeue_front(std::mem::take(self.pending));
                        }
                        self.pending.push_back(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(code),
                            reason: reason.as_str().into(),
                        })));
                    }
                    self.requested = Some(end);
                    close_deadline = Some(Instant::now() + self.options.close_timeout());
                }
                _ = self.shared.queue.notified(), if !may_write && !peer_closing && !asked => {}
                _ = ticker.tick(), if self.options.ping_interval_ms > 0 && !heartbeat.awaiting() && !peer_closing => {
                    self.ping_now(&mut heartbeat);
                }
                Ok(()) = suspensions.changed(), if !peer_closing && !asked => {
                    let slept = *suspensions.borrow_and_update();
                    let limit = Duration::from_millis(self.options.ping_interval_ms + self.options.pong_timeout_ms);
                    if slept >= limit {
                        let why = format!(
                            "the process was suspended for {} s: the link is stale",
                            slept.as_secs()
                        );
                        return Ending::abnormal(End::HeartbeatTimeout, error_code::HEARTBEAT_TIMEOUT, why);
                    }
                    if !heartbeat.awaiting() {
                        self.ping_now(&mut heartbeat);
                    }
                }
                _ = sleep_until(heartbeat_deadline.unwrap_or_else(far_future)), if heartbeat_deadline.is_some() => {
                    let frames = self.link.frames.load(Ordering::Relaxed);
                    let paused = self.link.reading_paused.load(Ordering::Acquire);
                    if heartbeat.check(Instant::now(), frames, paused) == Liveness::Dead {
                        let why = format!(
                            "no answer to a Ping within {} ms: the link is dead",
                            self.options.pong_timeout_ms
                        );
                        return Ending::abnormal(End::HeartbeatTimeout, error_code::HEARTBEAT_TIMEOUT, why);
                    }
                }
                _ = sleep_until(close_deadline.unwrap_or_else(far_future)), if close_deadline.is_some() => {
                    let why = format!(
                        "the peer did not finish the close handshake within {} ms",
                        self.options.close_timeout_ms
                    );
                    let end = self.requested.clone().unwrap_or(End::UserClose);
                    return Ending::abnormal(end, error_code::CLOSE_TIMEOUT, why);
                }
            }
        }
    }

    /// Queues a Ping ahead of data and starts its deadline.
    fn ping_now(&mut self, heartbeat: &mut Heartbeat) {
        let now = Instant::now();
        let payload = heartbeat::ping_payload(self.link.base, now);
        self.pending
            .push_front(Message::Ping(payload.to_vec().into()));
        heartbeat.ping_sent(now, self.link.frames.load(Ordering::Relaxed));
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Hands pending messages to the socket in order, then flushes.
/// Cancel-safe: a message leaves `pending` only when the sink takes it.
async fn drain(
    sink: &mut SplitSink<Ws, Message>,
    pending: &mut VecDeque<Message>,
    link: &Link<'_>,
    user_closing: bool,
) -> Result<(), WsError> {
    while !pending.is_empty() {
        poll_fn(|cx| sink.poll_ready_unpin(cx)).await?;
        // The peer's Close frame arrived: data may no longer be sent.
        if link.closing.load(Ordering::Acquire) && !user_closing {
            break;
        }
        let Some(message) = pending.pop_front() else {
            break;
        };
        if matches!(message, Message::Text(_) | Message::Binary(_)) {
            link.counters.messages_out.fetch_add(1, Ordering::Relaxed);
            link.counters
                .bytes_out
                .fetch_add(message_len(&message) as u64, Ordering::Relaxed);
        }
        sink.start_send_unpin(message)?;
    }
    sink.flush().await
}

fn write_error_ending(error: WsError) -> Ending {
    Ending::abnormal(
        End::Lost,
        error_code::CONNECTION_LOST,
        format!("connection lost while writing: {error}"),
    )
}

/// TCP, TLS and the HTTP upgrade. Errors never include header values.
async fn handshake(
    endpoint: &Endpoint,
    options: &Options,
    headers: &BTreeMap<String, String>,
    proxy: Option<&Proxy>,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<(Ws, Option<String>), Ending> {
    let transport = Transport::connect(endpoint, proxy, tls)
        .await
        .map_err(|e| match e {
            // Bad proxy credentials are configuration; anything else from
            // the proxy may pass.
            ConnectError::Proxy(message, Some(407)) => {
                Ending::failed(End::Configuration, error_code::PROXY, message)
            }
            ConnectError::Proxy(message, _) => {
                Ending::failed(End::ConnectFailed, error_code::PROXY, message)
            }
            ConnectError::Tcp(e) => Ending::failed(
                End::ConnectFailed,
                error_code::CONNECT,
                format!("cannot connect to {}:{}: {e}", endpoint.host, endpoint.port),
            ),
            ConnectError::Tls(e) => tls_ending(e),
        })?;
    let request = upgrade_request(endpoint, options, headers)
        .map_err(|message| Ending::failed(End::Configuration, error_code::HANDSHAKE, message))?;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(Some(options.max_message_bytes))
        .max_frame_size(Some(options.max_frame_bytes));
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, transport, Some(config))
            .await
            .map_err(handshake_ending)?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((ws, protocol))
}

fn upgrade_request(
    endpoint: &Endpoint,
    options: &Options,
    headers: &BTreeMap<String, String>,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, String> {
    let mut request = endpoint
        .uri
        .clone()
        .into_client_request()
        .map_err(|e| format!("cannot build the upgrade request: {e}"))?;
    let request_headers = request.headers_mut();
    for (name, value) in headers {
        // Validated with the options; checked again rather than unwrapped.
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        value.set_sensitive(true);
        request_headers.insert(name, value);
    }
    if !options.subprotocols.is_empty() {
        let offered = options.subprotocols.join(", ");
        let value =
            HeaderValue::from_str(&offered).map_err(|_| "invalid subprotocols".to_string())?;
        request_headers.insert("sec-websocket-protocol", value);
    }
    Ok(request)
}

fn tls_ending(error: std::io::Error) -> Ending {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        // Trust failures are configuration: retrying cannot fix them.
        Some(rustls::Error::InvalidCertificate(e)) => {
            let (code, what) = crate::tls::classify_certificate_error(e);
            Ending::failed(End::Configuration, code, format!("TLS: {what} ({e:?})"))
        }
        Some(e) => Ending::failed(
            End::Lost,
            error_code::TLS,
            format!("TLS handshake failed: {e}"),
        ),
        None => Ending::failed(
            End::Lost,
            error_code::TLS,
            format!("TLS handshake failed: {error}"),
        ),
    }
}

fn handshake_ending(error: WsError) -> Ending {
    match error {
        WsError::Http(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let mut ending = Ending::failed(
                End::HandshakeStatus(status.as_u16()),
                i32::from(status.as_u16()),
                format!(
                    "the server refused the WebSocket upgrade: HTTP {} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                )
                .trim_end()
                .to_string(),
            );
            ending.retry_after = retry_after;
            ending
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => Ending::failed(
            End::Configuration,
            error_code::SUBPROTOCOL,
            format!("subprotocol negotiation failed: {e}"),
        ),
        WsError::Io(e) => Ending::failed(
            End::Lost,
            error_code::CONNECTION_LOST,
            format!("connection lost during the upgrade: {e}"),
        ),
        WsError::Protocol(ProtocolError::HandshakeIncomplete) => Ending::failed(
            End::Lost,
            error_code::CONNECTION_LOST,
            "the server closed the connection during the upgrade".into(),
        ),
        other => Ending::failed(
            End::ProtocolViolation,
            error_code::HANDSHAKE,
            format!("the WebSocket upgrade failed: {other}"),
        ),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let in_a_minute = std::time::SystemTime::now() + Duration::from_secs(61);
        let d = parse_retry_after(&httpdate::fmt_http_date(in_a_minute)).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(61),
            "{d:?}"
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
