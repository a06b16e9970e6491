//! The Socket.IO v5 wire: namespaces, events and acknowledgements over an
//! Engine.IO connection.
//!
//! The wire lives across connections and keeps what Socket.IO needs from
//! one to the next ([`SioShared`]): the namespaces the app joined (with
//! their auth and recovery ids), emits waiting for their namespace's
//! CONNECT, and the acks the app waits for. On every open it joins each
//! namespace again; an emit goes out only once its namespace is connected
//! on this connection (the server drops packets of namespaces it has not
//! accepted yet), in order; until then the writer holds it.

pub(crate) mod packet;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use super::engineio::{EngineConfig, EngineReader, EngineWriter};
use super::{Ending, Incoming, Opened, Outbound, Violation, Wire, WireReader, WireWriter};
use crate::error::{error_code, ws_status};
use crate::event::{Event, EventSender, SioEvent};
use crate::queue::Message;
use packet::Kind;

/// Pending writes the writer holds before it makes the driver wait.
const WRITER_BACKLOG: usize = 64;

/// What the app side and the wire of one Socket.IO client share.
pub(crate) struct SioShared {
    state: Mutex<SioState>,
    acks: Mutex<BTreeMap<u64, AckWait>>,
    /// Wakes the ack timer when a deadline was set.
    ack_changed: Notify,
    ack_timeout: Duration,
    next_ack_id: AtomicU64,
    events: EventSender,
    /// The client terminated: the ack timer ends.
    closed: AtomicBool,
}

#[derive(Default)]
struct SioState {
    namespaces: BTreeMap<String, Namespace>,
    /// Held packets a CONNECT released, for the writer to send next.
    released: VecDeque<Message>,
}

#[derive(Default)]
struct Namespace {
    /// Joined by the app and neither left nor refused or ended by the
    /// server: joined again on every connection.
    wanted: bool,
    /// JSON object text sent with every CONNECT.
    auth: Option<String>,
    link: NamespaceLink,
    /// Emits waiting for this namespace's CONNECT, with their attachments.
    held: VecDeque<Message>,
    /// Connection state recovery: the server's private session id and the
    /// offset of the last event received.
    pid: Option<String>,
    offset: Option<String>,
}

/// A namespace on the current connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum NamespaceLink {
    #[default]
    NotJoined,
    /// CONNECT sent, no answer yet.
    Joining,
    Connected,
}

struct AckWait {
    nsp: String,
    /// Set once the emit went out (the timeout counts from the write).
    deadline: Option<Instant>,
}

impl SioShared {
    pub fn new(events: EventSender, ack_timeout: Duration) -> SioShared {
        SioShared {
            state: Mutex::new(SioState::default()),
            acks: Mutex::new(BTreeMap::new()),
            ack_changed: Notify::new(),
            ack_timeout,
            next_ack_id: AtomicU64::new(1),
            events,
            closed: AtomicBool::new(false),
        }
    }

    /// Marks `nsp` joined with `auth`. Returns the CONNECT packet to queue
    /// if a connection may be open now, or `None` if it was joined already.
    pub fn join(&self, nsp: &str, auth: Option<String>) -> Option<String> {
        let mut state = self.state.lock();
        let ns = state.namespaces.entry(nsp.to_string()).or_default();
        let changed = !ns.wanted || ns.auth != auth;
        ns.wanted = true;
        ns.auth = auth;
        if !changed && ns.link != NamespaceLink::NotJoined {
            return None;
        }
        Some(connect_packet(nsp, ns))
    }

    /// Whether the app has `nsp` joined (emits to it are accepted).
    pub fn is_joined(&self, nsp: &str) -> bool {
        self.state
            .lock()
            .namespaces
            .get(nsp)
            .is_some_and(|ns| ns.wanted)
    }

    /// The app leaves `nsp`: it is not joined again, held emits are
    /// dropped (their acks fail). Returns whether it was joined, and
    /// whether the server must be told (a DISCONNECT packet).
    pub fn leave(&self, nsp: &str) -> (bool, bool) {
        let (was, tell, held) = {
            let mut state = self.state.lock();
            let Some(ns) = state.namespaces.get_mut(nsp) else {
                return (false, false);
            };
            let was = ns.wanted;
            ns.wanted = false;
            ns.pid = None;
            ns.offset = None;
            let tell = ns.link != NamespaceLink::NotJoined;
            (was, tell, std::mem::take(&mut ns.held))
        };
        self.fail_held(held, "the namespace was left");
        (was, tell)
    }

    /// A fresh ack id for an emit, waiting from now on.
    pub fn new_ack(&self, nsp: &str) -> u64 {
        let id = self.next_ack_id.fetch_add(1, Ordering::Relaxed);
        self.acks.lock().insert(
            id,
            AckWait {
                nsp: nsp.to_string(),
                deadline: None,
            },
        );
        id
    }

    /// Forgets an ack the app no longer waits for (its emit was refused).
    pub fn cancel_ack(&self, id: u64) {
        self.acks.lock().remove(&id);
    }

    /// The client terminated: acks still awaited fail now (before the
    /// app sees the end), and the ack timer stops.
    pub fn terminate(&self) -> Vec<SioEvent> {
        self.closed.store(true, Ordering::Release);
        self.ack_changed.notify_one();
        let acks = std::mem::take(&mut *self.acks.lock());
        acks.into_iter()
            .map(|(id, wait)| failed_ack(wait.nsp, id))
            .collect()
    }

    /// Fires ack timeouts until the client terminates. Runs on the runtime
    /// and sleeps only while some ack is awaited (battery).
    pub async fn run_ack_timer(self: Arc<SioShared>) {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let changed = self.ack_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next = self.expire_acks(Instant::now());
            match next {
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = &mut changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// Reports the acks past their deadline; returns the next deadline.
    fn expire_acks(&self, now: Instant) -> Option<Instant> {
        let mut expired = Vec::new();
        let next = {
            let mut acks = self.acks.lock();
            let late: Vec<u64> = acks
                .iter()
                .filter(|(_, w)| w.deadline.is_some_and(|d| d <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in late {
                if let Some(wait) = acks.remove(&id) {
                    expired.push(failed_ack(wait.nsp, id));
                }
            }
            acks.values().filter_map(|w| w.deadline).min()
        };
        if !self.closed.load(Ordering::Acquire) {
            for event in expired {
                self.events.send(Event::from(event));
            }
        }
        next
    }

    /// The emit with ack `id` went out: its timeout starts.
    fn ack_written(&self, id: u64) {
        let deadline = Instant::now().checked_add(self.ack_timeout);
        if let Some(wait) = self.acks.lock().get_mut(&id) {
            wait.deadline = deadline;
        }
        self.ack_changed.notify_one();
    }

    /// Emits that will never go out: their acks fail now.
    fn fail_held(&self, held: VecDeque<Message>, _why: &str) {
        for message in held {
            let Message::Text(text) = message else {
                continue;
            };
            if let Ok((header, _)) = packet::parse_header(&text) {
                if matches!(header.kind, Kind::Event | Kind::BinaryEvent) {
                    if let Some(id) = header.id {
                        if let Some(wait) = self.acks.lock().remove(&id) {
                            self.events.send(Event::from(failed_ack(wait.nsp, id)));
                        }
                    }
                }
            }
        }
    }
}

fn failed_ack(nsp: String, ack_id: u64) -> SioEvent {
    SioEvent::Ack {
        nsp,
        ack_id,
        args: String::new(),
        attachments: Vec::new(),
        error: ws_status::WS_TIMEOUT as i32,
    }
}

/// The CONNECT packet of `nsp`: its auth, plus the recovery ids if the
/// server gave some.
fn connect_packet(nsp: &str, ns: &Namespace) -> String {
    let mut data = match ns.auth.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(map))) => map,
        _ => serde_json::Map::new(),
    };
    if let Some(pid) = &ns.pid {
        data.insert("pid".into(), Value::String(pid.clone()));
        if let Some(offset) = &ns.offset {
            data.insert("offset".into(), Value::String(offset.clone()));
        }
    }
    let json = (!data.is_empty()).then(|| Value::Object(data).to_string());
    packet::encode(Kind::Connect, nsp, None, 0, json.as_deref())
}

/// Opens Socket.IO connections: an Engine.IO session, then every joined
/// namespace.
pub(crate) struct SocketIoWire {
    engine: EngineConfig,
    shared: Arc<SioShared>,
}

impl SocketIoWire {
    pub fn new(engine: EngineConfig, shared: Arc<SioShared>) -> SocketIoWire {
        SocketIoWire { engine, shared }
    }
}

impl Wire for SocketIoWire {
    type Reader = SioReader;
    type Writer = SioWriter;

    async fn open(
        &mut self,
        headers: &BTreeMap<String, String>,
    ) -> Result<Opened<SioReader, SioWriter>, Ending> {
        let (opened, _handshake) = self.engine.open(headers).await?;
        let mut out = VecDeque::new();
        {
            let mut state = self.shared.state.lock();
            // Emits released on the last connection but not written go
            // first again once their namespace is back.
            let released: Vec<Message> = state.released.drain(..).collect();
            requeue_released(&mut state, released);
            for (nsp, ns) in &mut state.namespaces {
                ns.link = NamespaceLink::NotJoined;
                if ns.wanted {
                    out.push_back(Message::Text(Utf8Bytes::from(connect_packet(nsp, ns))));
                    ns.link = NamespaceLink::Joining;
                }
            }
        }
        Ok(Opened {
            reader: SioReader {
                engine: opened.reader,
                shared: self.shared.clone(),
                // The CONNECTs go out at once, before anything is queued.
                ready: VecDeque::from([Incoming::Flush]),
                collecting: None,
                limit: self.engine.options.max_message_bytes,
            },
            writer: SioWriter {
                engine: opened.writer,
                shared: self.shared.clone(),
                out,
                following: None,
                close: None,
            },
            protocol: None,
            heartbeat: opened.heartbeat,
        })
    }

    fn describe(&self) -> String {
        self.engine.describe()
    }
}

/// Released packets that never reached the wire go back to the front of
/// their namespace's held list (they are older than anything held).
fn requeue_released(state: &mut SioState, released: Vec<Message>) {
    let mut nsp: Option<String> = None;
    let mut groups: Vec<(String, Message)> = Vec::new();
    for message in released {
        if let Message::Text(text) = &message {
            if let Ok((header, _)) = packet::parse_header(text) {
                nsp = Some(header.nsp.to_string());
            }
        }
        if let Some(nsp) = &nsp {
            groups.push((nsp.clone(), message));
        }
    }
    for (nsp, message) in groups.into_iter().rev() {
        if let Some(ns) = state.namespaces.get_mut(&nsp) {
            ns.held.push_front(message);
        }
    }
}

/// An event or ack waiting for its binary attachments.
struct Collecting {
    packet: packet::Packet,
    attachments: Vec<Bytes>,
    /// Their bytes so far.
    bytes: usize,
}

pub(crate) struct SioReader {
    engine: EngineReader,
    shared: Arc<SioShared>,
    /// Decoded, not yet handed to the driver.
    ready: VecDeque<Incoming>,
    collecting: Option<Collecting>,
    /// `max_message_bytes`: an event with all its attachments stays under
    /// it (they come one by one, each under it, and are held until the
    /// last: together they must not grow without bound).
    limit: usize,
}

fn violation(why: String) -> Incoming {
    Incoming::End(super::engineio::broken(
        Violation::Protocol,
        error_code::PROTOCOL,
        format!("Socket.IO: {why}"),
    ))
}

impl WireReader for SioReader {
    async fn next(&mut self) -> Incoming {
        loop {
            if let Some(incoming) = self.ready.pop_front() {
                return incoming;
            }
            match self.engine.next().await {
                Incoming::Text(text) => {
                    if let Err(why) = self.on_packet(&text) {
                        return violation(why);
                    }
                }
                Incoming::Binary(data) => {
                    let Some(collecting) = &mut self.collecting else {
                        return violation("a binary message no packet announced".into());
                    };
                    collecting.bytes = collecting.bytes.saturating_add(data.len());
                    if collecting.bytes > self.limit {
                        return Incoming::End(super::engineio::broken(
                            Violation::TooBig,
                            error_code::MESSAGE_TOO_BIG,
                            format!(
                                "Socket.IO: the attachments of an event exceed max_message_bytes ({} bytes)",
                                self.limit
                            ),
                        ));
                    }
                    collecting.attachments.push(data);
                    if collecting.attachments.len() == collecting.packet.attachments {
                        if let Some(Collecting {
                            packet,
                            attachments,
                            ..
                        }) = self.collecting.take()
                        {
                            self.deliver(packet, attachments);
                        }
                    }
                }
                other => return other,
            }
        }
    }
}

impl SioReader {
    fn on_packet(&mut self, text: &str) -> Result<(), String> {
        if self.collecting.is_some() {
            return Err("a packet while attachments were still due".into());
        }
        let packet = packet::decode(text)?;
        match packet.kind {
            Kind::Connect => self.on_connect(packet),
            Kind::ConnectError => {
                {
                    let mut state = self.shared.state.lock();
                    if let Some(ns) = state.namespaces.get_mut(&packet.nsp) {
                        ns.wanted = false;
                        ns.link = NamespaceLink::NotJoined;
                    }
                }
                let data = packet.data.unwrap_or(Value::Object(Default::default()));
                self.push_event(SioEvent::ConnectError {
                    nsp: packet.nsp,
                    data: data.to_string(),
                });
            }
            Kind::Disconnect => {
                let held = {
                    let mut state = self.shared.state.lock();
                    match state.namespaces.get_mut(&packet.nsp) {
                        Some(ns) if ns.link != NamespaceLink::NotJoined => {
                            ns.wanted = false;
                            ns.link = NamespaceLink::NotJoined;
                            ns.pid = None;
                            ns.offset = None;
                            Some(std::mem::take(&mut ns.held))
                        }
                        _ => None,
                    }
                };
                if let Some(held) = held {
                    self.shared
                        .fail_held(held, "the server disconnected the namespace");
                    self.push_event(SioEvent::Disconnect {
                        nsp: packet.nsp,
                        reason: "io server disconnect".into(),
                    });
                }
            }
            Kind::Event | Kind::BinaryEvent | Kind::Ack | Kind::BinaryAck => {
                if packet.attachments > 0 {
                    self.collecting = Some(Collecting {
                        packet,
                        attachments: Vec::new(),
                        bytes: 0,
                    });
                } else {
                    self.deliver(packet, Vec::new());
                }
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, packet: packet::Packet) {
        let pid = packet
            .data
            .as_ref()
            .and_then(|d| d.get("pid"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut tell_left = false;
        let recovered;
        let released;
        {
            let mut state = self.shared.state.lock();
            let state = &mut *state;
            let Some(ns) = state.namespaces.get_mut(&packet.nsp) else {
                return;
            };
            if !ns.wanted && ns.link == NamespaceLink::NotJoined {
                // Nobody asked (the app left it, the server ended or
                // refused it): not reported, nothing to tell.
                return;
            }
            if !ns.wanted {
                // Left while the CONNECT was on its way.
                tell_left = ns.link != NamespaceLink::NotJoined;
                ns.link = NamespaceLink::NotJoined;
                recovered = false;
                released = false;
            } else {
                recovered = pid.is_some() && ns.pid == pid;
                if ns.pid != pid {
                    ns.offset = None;
                }
                ns.pid = pid;
                ns.link = NamespaceLink::Connected;
                released = !ns.held.is_empty();
                state.released.extend(ns.held.drain(..));
            }
        }
        if tell_left {
            let bye = packet::encode(Kind::Disconnect, &packet.nsp, None, 0, None);
            self.shared
                .state
                .lock()
                .released
                .push_back(Message::Text(Utf8Bytes::from(bye)));
            self.ready.push_back(Incoming::Flush);
            return;
        }
        self.push_event(SioEvent::Connect {
            nsp: packet.nsp,
            recovered,
        });
        if released {
            self.ready.push_back(Incoming::Flush);
        }
    }

    /// An event or ack, complete with its attachments.
    fn deliver(&mut self, packet: packet::Packet, attachments: Vec<Bytes>) {
        let Some(Value::Array(mut items)) = packet.data else {
            return;
        };
        match packet.kind {
            Kind::Event | Kind::BinaryEvent => {
                let name = match items.remove(0) {
                    Value::String(name) => name,
                    _ => return,
                };
                {
                    let mut state = self.shared.state.lock();
                    let Some(ns) = state.namespaces.get_mut(&packet.nsp) else {
                        return;
                    };
                    if ns.link != NamespaceLink::Connected {
                        return;
                    }
                    // Recovery: the server appends each event's offset.
                    if ns.pid.is_some() {
                        if let Some(Value::String(offset)) = items.last() {
                            ns.offset = Some(offset.clone());
                        }
                    }
                }
                self.push_event(SioEvent::Event {
                    nsp: packet.nsp,
                    name,
                    args: Value::Array(items).to_string(),
                    // The server's ids start at 0; 0 means "none" to the app.
                    ack_id: packet.id.map_or(0, |id| id.saturating_add(1)),
                    attachments,
                });
            }
            _ => {
                let Some(id) = packet.id else { return };
                let wait = {
                    let mut acks = self.shared.acks.lock();
                    // Ids are per client, acks per namespace: only the
                    // namespace of the emit answers it.
                    if acks.get(&id).is_none_or(|w| w.nsp != packet.nsp) {
                        // Timed out already, never asked for, or not here.
                        return;
                    }
                    acks.remove(&id)
                };
                let Some(wait) = wait else { return };
                self.push_event(SioEvent::Ack {
                    nsp: wait.nsp,
                    ack_id: id,
                    args: Value::Array(items).to_string(),
                    attachments,
                    error: 0,
                });
            }
        }
    }

    fn push_event(&mut self, event: SioEvent) {
        self.ready.push_back(Incoming::Event(Event::from(event)));
    }
}

/// Where a packet (and the attachments after it) goes.
#[derive(Debug, Clone, PartialEq)]
enum Route {
    Send,
    Hold(String),
    Drop,
}

pub(crate) struct SioWriter {
    engine: EngineWriter,
    shared: Arc<SioShared>,
    /// Taken, to be handed to the engine, in order.
    out: VecDeque<Message>,
    /// The route of the packet whose attachments follow, and how many.
    following: Option<(Route, usize)>,
    close: Option<Outbound>,
}

impl SioWriter {
    /// Decides what happens to one message from the queue.
    fn route(&mut self, message: Message) {
        let message = message.unmasked();
        let route = match &message {
            Message::Binary(_) => match self.following.take() {
                Some((route, left)) => {
                    if left > 1 {
                        self.following = Some((route.clone(), left - 1));
                    }
                    route
                }
                // An attachment whose packet was dropped (drop_oldest).
                None => Route::Drop,
            },
            Message::Text(text) => self.route_packet(text),
            Message::Masked(_) => Route::Drop, // unmasked above
        };
        match route {
            Route::Send => {
                self.take_released();
                self.out.push_back(message);
            }
            Route::Hold(nsp) => {
                let mut state = self.shared.state.lock();
                if let Some(ns) = state.namespaces.get_mut(&nsp) {
                    ns.held.push_back(message);
                }
            }
            Route::Drop => {
                let mut held = VecDeque::new();
                held.push_back(message);
                self.shared.fail_held(held, "its namespace is not joined");
            }
        }
    }

    fn route_packet(&mut self, text: &str) -> Route {
        let Ok((header, _)) = packet::parse_header(text) else {
            return Route::Drop;
        };
        let route = {
            let mut state = self.shared.state.lock();
            let ns = state.namespaces.get_mut(header.nsp);
            match (header.kind, ns) {
                (Kind::Connect, Some(ns)) if ns.wanted && ns.link == NamespaceLink::NotJoined => {
                    ns.link = NamespaceLink::Joining;
                    Route::Send
                }
                (Kind::Connect, _) => Route::Drop,
                (Kind::Disconnect, Some(ns)) if ns.link != NamespaceLink::NotJoined => {
                    ns.link = NamespaceLink::NotJoined;
                    Route::Send
                }
                (Kind::Disconnect, _) => Route::Drop,
                (_, Some(ns)) if ns.link == NamespaceLink::Connected => Route::Send,
                (_, Some(ns)) if ns.wanted => Route::Hold(header.nsp.to_string()),
                _ => Route::Drop,
            }
        };
        if route == Route::Send && matches!(header.kind, Kind::Event | Kind::BinaryEvent) {
            if let Some(id) = header.id {
                self.shared.ack_written(id);
            }
        }
        if header.attachments > 0 {
            self.following = Some((route.clone(), header.attachments));
        }
        route
    }

    /// Packets a CONNECT released go before anything taken after it.
    fn take_released(&mut self) {
        let released: Vec<Message> = self.shared.state.lock().released.drain(..).collect();
        for message in released {
            if let Message::Text(text) = &message {
                if let Ok((header, _)) = packet::parse_header(text) {
                    if header.id.is_some() && matches!(header.kind, Kind::Event | Kind::BinaryEvent)
                    {
                        self.shared.ack_written(header.id.unwrap_or_default());
                    }
                }
            }
            self.out.push_back(message);
        }
    }

    /// Hands what is taken to the engine.
    async fn hand_over(&mut self, keep: usize) -> Result<(), Ending> {
        while self.out.len() > keep {
            self.engine.ready().await?;
            let Some(message) = self.out.pop_front() else {
                break;
            };
            self.engine.start(Outbound::Message(message))?;
        }
        Ok(())
    }
}

impl WireWriter for SioWriter {
    async fn ready(&mut self) -> Result<(), Ending> {
        self.hand_over(WRITER_BACKLOG - 1).await
    }

    fn start(&mut self, frame: Outbound) -> Result<(), Ending> {
        match frame {
            Outbound::Message(message) => self.route(message),
            // Engine.IO v4 clients do not ping; nothing asks them to.
            Outbound::Ping(_) => {}
            Outbound::Close { code, reason } => {
                // The app closes for good (1000): the server is told each
                // namespace is left, so it keeps no recovery state. A
                // pause or restart (1001) keeps it.
                if code == 1000 {
                    self.take_released();
                    let state = self.shared.state.lock();
                    for (nsp, ns) in &state.namespaces {
                        if ns.link == NamespaceLink::Connected {
                            let bye = packet::encode(Kind::Disconnect, nsp, None, 0, None);
                            self.out.push_back(Message::Text(Utf8Bytes::from(bye)));
                        }
                    }
                }
                self.close = Some(Outbound::Close { code, reason });
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        self.take_released();
        self.hand_over(0).await?;
        if self.close.is_some() {
            self.engine.ready().await?;
            if let Some(close) = self.close.take() {
                self.engine.start(close)?;
            }
        }
        self.engine.flush().await
    }
}
