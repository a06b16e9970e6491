//! The Engine.IO v4 server behind [`SocketIoTestServer`](super::SocketIoTestServer):
//! HTTP/1.1 by hand (keep-alive, `Content-Length`), long-polling (a held
//! GET for what the server sends, POSTs for what the client sends), the
//! WebSocket transport (from the start, or the upgrade of a polling
//! session: `2probe`/`3probe`/`5`), the server's pings, and the Socket.IO
//! packets each session carries.
//!
//! What the sessions share lives in [`Shared`]; each session's queue and
//! namespaces in [`Session`], under one lock. Transports wait on the
//! session's `changed` notification and its `ended` watch; every other
//! wait is bounded.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use super::packet::{self, EnginePacket, Kind, SioPacket};
use super::{
    AckAnswer, ClientDisconnect, ConnectReply, EngineSession, NamespaceConnect, ReceivedEvent,
    ServerSocket, SioTransport, SocketIoConfig,
};
use crate::link::{Out, Wiring};
use crate::record::{lock, Journal};
use crate::script::{Faults, Network};
use crate::wire::{self, Head, Parsed, FIN, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING};
use crate::wire::{OP_PONG, OP_TEXT};

/// A request head larger than this ends the connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A request body larger than this ends the connection.
const MAX_BODY_BYTES: usize = 64 << 20;
/// How long an idle keep-alive connection is kept.
const IDLE_LIMIT: Duration = Duration::from_secs(120);
/// The longest a poll is held with nothing to send (then a noop).
const POLL_HOLD: Duration = Duration::from_secs(60);
/// How long queued bytes may take to go out once a connection is done.
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// How a session ended: what its transports do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The server closed it: what is queued (the close packet last) goes
    /// out, then the transport closes.
    Closed,
    /// Gone (the client closed it, a pong timed out, a transport failed):
    /// the transports hang up.
    Lost,
    /// The transport is dropped: every TCP connection of the session is
    /// reset (RST).
    Reset,
}

/// What the server's connections and handles share.
pub(crate) struct Shared {
    pub(crate) config: SocketIoConfig,
    pub(crate) echo: AtomicBool,
    /// The conditions of every connection, current and new.
    pub(crate) network: watch::Sender<Network>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    next_session: AtomicU64,
    next_socket: AtomicU64,
    connect_replies: Mutex<VecDeque<(Option<String>, ConnectReply)>>,
    pub(crate) sessions_opened: Journal<EngineSession>,
    pub(crate) connects: Journal<NamespaceConnect>,
    pub(crate) events: Journal<ReceivedEvent>,
    pub(crate) sockets: Journal<ServerSocket>,
    pub(crate) disconnects: Journal<ClientDisconnect>,
}

/// One Engine.IO session.
pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) sid: String,
    pub(crate) state: Mutex<SessionState>,
    pub(crate) changed: Notify,
    pub(crate) ended: watch::Sender<Option<Ending>>,
}

pub(crate) struct SessionState {
    /// Packets for the client, oldest first.
    pub(crate) outbox: VecDeque<EnginePacket>,
    pub(crate) transport: SioTransport,
    /// A WebSocket probe was answered; `5` has not come yet.
    upgrading: bool,
    /// The server pings (and gives up on missing pongs).
    pub(crate) heartbeat: bool,
    ping_out: Option<Instant>,
    /// A binary packet waiting for its attachments.
    partial: Option<(SioPacket, Vec<Vec<u8>>)>,
    /// Connected namespaces and their socket ids.
    pub(crate) sockets: HashMap<String, String>,
    /// Server emits waiting for the client's ack, by namespace and id.
    pub(crate) acks: HashMap<(String, u64), std_mpsc::Sender<AckAnswer>>,
    pub(crate) next_ack: u64,
}

impl Session {
    pub(crate) fn is_alive(&self) -> bool {
        self.ended.borrow().is_none()
    }

    /// Queues a Socket.IO packet and its attachments, and wakes the
    /// transport.
    pub(crate) fn queue_sio(
        st: &mut SessionState,
        kind: Kind,
        nsp: &str,
        id: Option<u64>,
        data: Option<&Value>,
        attachments: &[Vec<u8>],
    ) {
        let text = packet::encode(kind, nsp, id, attachments.len(), data);
        st.outbox.push_back(EnginePacket::Text(format!("4{text}")));
        st.outbox
            .extend(attachments.iter().cloned().map(EnginePacket::Binary));
    }
}

impl Shared {
    pub(crate) fn new(config: SocketIoConfig) -> Shared {
        Shared {
            echo: AtomicBool::new(config.echo),
            network: watch::Sender::new(Network::default()),
            config,
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            next_socket: AtomicU64::new(1),
            connect_replies: Mutex::new(VecDeque::new()),
            sessions_opened: Journal::new(),
            connects: Journal::new(),
            events: Journal::new(),
            sockets: Journal::new(),
            disconnects: Journal::new(),
        }
    }

    pub(crate) fn push_connect_reply(&self, nsp: Option<String>, reply: ConnectReply) {
        lock(&self.connect_replies).push_back((nsp, reply));
    }

    /// The first queued reply for `nsp` (or for any namespace); accept
    /// once none is left.
    fn take_connect_reply(&self, nsp: &str) -> ConnectReply {
        let mut replies = lock(&self.connect_replies);
        let at = replies
            .iter()
            .position(|(n, _)| n.as_deref().is_none_or(|n| n == nsp));
        at.and_then(|i| replies.remove(i))
            .map_or(ConnectReply::Accept, |(_, r)| r)
    }

    pub(crate) fn session_count(&self) -> usize {
        lock(&self.sessions)
            .values()
            .filter(|s| s.is_alive())
            .count()
    }

    fn session(&self, sid: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(sid).cloned()
    }

    /// Opens a session on `transport` and starts its heartbeat.
    fn new_session(
        self: &Arc<Self>,
        transport: SioTransport,
        request: &HttpRequest,
    ) -> Arc<Session> {
        let id = self.next_session.fetch_add(1, Ordering::SeqCst);
        let sid = format!(
            "kit{id:04}{:08x}",
            std::process::id().wrapping_mul(2_654_435_761)
        );
        let session = Arc::new(Session {
            id,
            sid: sid.clone(),
            state: Mutex::new(SessionState {
                outbox: VecDeque::new(),
                transport,
                upgrading: false,
                heartbeat: true,
                ping_out: None,
                partial: None,
                sockets: HashMap::new(),
                acks: HashMap::new(),
                next_ack: 0,
            }),
            changed: Notify::new(),
            ended: watch::Sender::new(None),
        });
        lock(&self.sessions).insert(sid.clone(), session.clone());
        self.sessions_opened.push(EngineSession {
            id,
            sid,
            transport,
            target: request.target.clone(),
            headers: request.headers.clone(),
        });
        tokio::spawn(heartbeat(
            Arc::downgrade(self),
            session.clone(),
            self.config.ping_interval,
            self.config.ping_timeout,
        ));
        session
    }

    /// Ends `session` (once): forgotten, its acks fail, its transports act.
    pub(crate) fn end_session(&self, session: &Session, ending: Ending) {
        // A closed session stays reachable for the poll that takes its
        // close packet ([`poll`] forgets it then).
        if ending != Ending::Closed {
            self.forget(session);
        }
        session.ended.send_if_modified(|e| {
            let first = e.is_none();
            if first {
                *e = Some(ending);
            }
            first
        });
        lock(&session.state).acks.clear();
        session.changed.notify_waiters();
    }

    /// Removes `session` from the sessions: its sid is unknown from now on.
    fn forget(&self, session: &Session) {
        let mut sessions = lock(&self.sessions);
        if sessions
            .get(&session.sid)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), session))
        {
            sessions.remove(&session.sid);
        }
    }

    /// Ends every session (a restart, a crash).
    pub(crate) fn end_all(&self) {
        let all: Vec<Arc<Session>> = lock(&self.sessions).drain().map(|(_, s)| s).collect();
        for session in all {
            self.end_session(&session, Ending::Reset);
        }
    }

    fn open_packet(&self, sid: &str, transport: SioTransport) -> String {
        let upgrades = if transport == SioTransport::Polling && self.config.websocket {
            r#"["websocket"]"#
        } else {
            "[]"
        };
        format!(
            r#"0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.config.ping_interval.as_millis(),
            self.config.ping_timeout.as_millis(),
            self.config.max_payload
        )
    }

    /// One Engine.IO packet from the client (by POST or WebSocket).
    fn on_packet(self: &Arc<Self>, session: &Arc<Session>, packet: EnginePacket) {
        let mut st = lock(&session.state);
        match packet {
            EnginePacket::Binary(data) => {
                if let Some((p, mut attachments)) = st.partial.take() {
                    attachments.push(data);
                    if attachments.len() >= p.attachments {
                        self.on_sio(session, &mut st, p, attachments);
                    } else {
                        st.partial = Some((p, attachments));
                    }
                }
            }
            EnginePacket::Text(text) => match text.as_bytes().first() {
                Some(b'3') => st.ping_out = None,
                // A client's ping (Engine.IO v3 style): answered while the
                // heartbeat is on.
                Some(b'2') if st.heartbeat => st
                    .outbox
                    .push_back(EnginePacket::Text(format!("3{}", &text[1..]))),
                Some(b'1') => {
                    drop(st);
                    self.end_session(session, Ending::Lost);
                    return;
                }
                Some(b'4') => match packet::decode(&text[1..]) {
                    Ok(p) if p.kind.is_binary() && p.attachments > 0 => {
                        st.partial = Some((p, Vec::new()));
                    }
                    Ok(p) => self.on_sio(session, &mut st, p, Vec::new()),
                    // A client's broken packet: a real server closes; the
                    // kit ignores it (the recorder shows what did come).
                    Err(_) => {}
                },
                _ => {}
            },
        }
        drop(st);
        session.changed.notify_waiters();
    }

    /// One whole Socket.IO packet (attachments joined).
    fn on_sio(
        self: &Arc<Self>,
        session: &Arc<Session>,
        st: &mut SessionState,
        p: SioPacket,
        attachments: Vec<Vec<u8>>,
    ) {
        match p.kind {
            Kind::Connect => {
                let reply = self.take_connect_reply(&p.nsp);
                let accepted = reply == ConnectReply::Accept;
                let socket_id = accepted.then(|| {
                    let n = self.next_socket.fetch_add(1, Ordering::SeqCst);
                    format!("{}-s{n}", session.sid)
                });
                self.connects.push(NamespaceConnect {
                    session: session.id,
                    nsp: p.nsp.clone(),
                    auth: p.data.clone(),
                    accepted,
                });
                match (reply, socket_id) {
                    (ConnectReply::Refuse { data }, _) => {
                        Session::queue_sio(st, Kind::ConnectError, &p.nsp, None, Some(&data), &[])
                    }
                    (ConnectReply::Accept, Some(id)) => {
                        st.sockets.insert(p.nsp.clone(), id.clone());
                        let data = serde_json::json!({ "sid": id });
                        Session::queue_sio(st, Kind::Connect, &p.nsp, None, Some(&data), &[]);
                        self.sockets.push(ServerSocket {
                            shared: Arc::downgrade(self),
                            session: session.clone(),
                            nsp: p.nsp,
                            id,
                        });
                    }
                    (ConnectReply::Accept, None) => {}
                }
            }
            Kind::Disconnect if st.sockets.remove(&p.nsp).is_some() => {
                self.disconnects.push(ClientDisconnect {
                    session: session.id,
                    nsp: p.nsp,
                });
            }
            Kind::Event | Kind::BinaryEvent if st.sockets.contains_key(&p.nsp) => {
                let Some(Value::Array(mut items)) = p.data else {
                    return;
                };
                let Value::String(name) = items.remove(0) else {
                    return;
                };
                if self.echo.load(Ordering::SeqCst) {
                    let mut echoed = vec![Value::String(name.clone())];
                    echoed.extend(items.iter().cloned());
                    let kind = if attachments.is_empty() {
                        Kind::Event
                    } else {
                        Kind::BinaryEvent
                    };
                    let echoed = Value::Array(echoed);
                    Session::queue_sio(st, kind, &p.nsp, None, Some(&echoed), &attachments);
                    if let Some(id) = p.id {
                        let kind = if attachments.is_empty() {
                            Kind::Ack
                        } else {
                            Kind::BinaryAck
                        };
                        let args = Value::Array(items.clone());
                        Session::queue_sio(st, kind, &p.nsp, Some(id), Some(&args), &attachments);
                    }
                }
                self.events.push(ReceivedEvent {
                    session: session.id,
                    nsp: p.nsp,
                    name,
                    args: items,
                    ack_id: p.id,
                    attachments,
                });
            }
            Kind::Ack | Kind::BinaryAck => {
                let Some(id) = p.id else { return };
                if let Some(waiter) = st.acks.remove(&(p.nsp, id)) {
                    let args = match p.data {
                        Some(Value::Array(items)) => items,
                        _ => Vec::new(),
                    };
                    let _ = waiter.send(AckAnswer { args, attachments });
                }
            }
            // Events for a namespace not joined, and what only servers send.
            _ => {}
        }
    }
}

/// Pings every `interval` while the session lives and its heartbeat is
/// on; a ping without a pong within `timeout` ends the session.
async fn heartbeat(
    shared: Weak<Shared>,
    session: Arc<Session>,
    interval: Duration,
    timeout: Duration,
) {
    let mut ended = session.ended.subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = ended.changed() => return,
        }
        if !session.is_alive() {
            return;
        }
        {
            let mut st = lock(&session.state);
            if !st.heartbeat {
                continue;
            }
            st.outbox.push_back(EnginePacket::Text("2".into()));
            st.ping_out = Some(Instant::now());
        }
        session.changed.notify_waiters();
        // The next ping comes `interval` after the pong, as in Engine.IO.
        let deadline = Instant::now() + timeout;
        loop {
            let changed = session.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let (answered, on) = {
                let st = lock(&session.state);
                (st.ping_out.is_none(), st.heartbeat)
            };
            if answered || !on {
                break;
            }
            tokio::select! {
                () = &mut changed => {}
                _ = ended.changed() => return,
                () = tokio::time::sleep_until(deadline) => {
                    if let Some(shared) = shared.upgrade() {
                        shared.end_session(&session, Ending::Lost);
                    }
                    return;
                }
            }
        }
    }
}

/// One request, as read.
pub(crate) struct HttpRequest {
    method: String,
    /// Path and query, as sent.
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn query(&self, key: &str) -> Option<&str> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then_some(v)
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One TCP connection: requests one after the other (keep-alive), over
/// the network's conditions.
struct Http {
    /// The server's end of the shaped connection.
    io: DuplexStream,
    buf: Vec<u8>,
    /// The session of the last request: its reset resets this connection.
    bound: Option<Arc<Session>>,
    /// The writer's queue, for the reset.
    out: mpsc::UnboundedSender<(Instant, Out)>,
}

/// Serves one accepted connection to its end. The bytes go through the
/// WebSocket server's reader and writer ([`crate::connection`]), so the
/// network's latency, bandwidth and cut apply here too; the Engine.IO
/// server reads and writes the other end of an in-memory pipe.
pub(crate) async fn serve(tcp: TcpStream, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    // Another descriptor of the same socket, to reset it.
    let resetter = std::os::fd::AsFd::as_fd(&tcp)
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from);
    // No per-connection faults on Socket.IO connections: the sender stays
    // here, at its default.
    let (_faults, faults) = watch::channel(Faults::default());
    let wiring = Wiring {
        net: shared.network.subscribe(),
        faults,
    };
    let (rd, wr) = tcp.into_split();
    let (io, pipe) = tokio::io::duplex(64 * 1024);
    let (mut pipe_rd, mut pipe_wr) = tokio::io::split(pipe);
    let mut parts = tokio::task::JoinSet::new();
    let (chunks_tx, mut chunks) = mpsc::channel::<Option<Vec<u8>>>(4);
    parts.spawn(crate::link::read(rd, chunks_tx, wiring.clone()));
    parts.spawn(async move {
        while let Some(Some(chunk)) = chunks.recv().await {
            if pipe_wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = pipe_wr.shutdown().await;
    });
    let (out, out_rx) = mpsc::unbounded_channel();
    let to_writer = out.clone();
    parts.spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let item = match pipe_rd.read(&mut buf).await {
                Ok(0) | Err(_) => Out::Shutdown,
                Ok(n) => Out::Bytes(buf[..n].to_vec()),
            };
            let last = matches!(item, Out::Shutdown);
            if to_writer.send((Instant::now(), item)).is_err() || last {
                return;
            }
        }
    });
    // Its own set: aborting this task (a kill, a restart) aborts it too.
    let mut writer = tokio::task::JoinSet::new();
    writer.spawn(crate::link::write(wr, resetter, out_rx, wiring));
    let mut http = Http {
        io,
        buf: Vec::new(),
        bound: None,
        out,
    };
    while let Some(request) = http.read_request().await {
        if !route(&mut http, &shared, request).await {
            break;
        }
    }
    // Closing our end lets queued bytes (and a FIN or RST) go out, bounded.
    drop(http);
    let _ = tokio::time::timeout(FLUSH_WAIT, writer.join_next()).await;
    writer.abort_all();
    parts.abort_all();
}

impl Http {
    /// Resets the connection (RST) once what is queued went out.
    fn reset(&self) {
        let _ = self.out.send((Instant::now(), Out::Reset));
    }

    /// The next request; `None` once the client hung up, sent junk, stayed
    /// idle too long, or the bound session was reset (then the connection
    /// is reset).
    async fn read_request(&mut self) -> Option<HttpRequest> {
        let deadline = Instant::now() + IDLE_LIMIT;
        let mut ended = self.bound.as_ref().map(|s| s.ended.subscribe());
        let head_end = loop {
            if let Some(end) = Head::end(&self.buf) {
                break end;
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return None;
            }
            if self.read_more(deadline, ended.as_mut()).await? == 0 {
                return None;
            }
        };
        let head = Head::parse(String::from_utf8_lossy(&self.buf[..head_end]).into_owned());
        let length: usize = match head.header("content-length") {
            None => 0,
            Some(v) => v.parse().ok()?,
        };
        // A body over maxPayload is still read, to be answered 413.
        if length > MAX_BODY_BYTES {
            return None;
        }
        while self.buf.len() < head_end + length {
            if self.read_more(deadline, ended.as_mut()).await? == 0 {
                return None;
            }
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Some(HttpRequest {
            method: head.method,
            target: head.path,
            headers: head.headers,
            body,
        })
    }

    /// Reads into the buffer; `None` on a timeout, an error or a reset of
    /// the bound session; `Some(0)` at EOF.
    async fn read_more(
        &mut self,
        deadline: Instant,
        ended: Option<&mut watch::Receiver<Option<Ending>>>,
    ) -> Option<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let reset_wait = async {
            match ended {
                Some(rx) => loop {
                    if *rx.borrow_and_update() == Some(Ending::Reset) {
                        return;
                    }
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = self.io.read(&mut chunk) => {
                let n = read.ok()?;
                self.buf.extend_from_slice(&chunk[..n]);
                Some(n)
            }
            () = tokio::time::sleep_until(deadline) => None,
            () = reset_wait => {
                self.reset();
                None
            }
        }
    }

    async fn respond(&mut self, status: u16, content_type: &str, body: &[u8]) -> bool {
        let head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\n\r\n",
            reason(status),
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.io.write_all(&bytes).await.is_ok()
    }

    async fn error(&mut self, status: u16, code: u8, message: &str) -> bool {
        let body = format!(r#"{{"code":{code},"message":"{message}"}}"#);
        self.respond(status, "application/json", body.as_bytes())
            .await
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Status",
    }
}

/// Answers one request; false when the connection is done.
async fn route(http: &mut Http, shared: &Arc<Shared>, request: HttpRequest) -> bool {
    let path = shared.config.path.trim_end_matches('/');
    if request.path().trim_end_matches('/') != path {
        return http.respond(404, "text/plain", b"not found").await;
    }
    if request.query("EIO") != Some("4") {
        return http.error(400, 5, "Unsupported protocol version").await;
    }
    let transport = match request.query("transport") {
        Some("polling") if shared.config.polling => SioTransport::Polling,
        Some("websocket") if shared.config.websocket => SioTransport::WebSocket,
        _ => return http.error(400, 0, "Transport unknown").await,
    };
    let sid = request.query("sid").map(str::to_string);
    if transport == SioTransport::WebSocket {
        websocket(http, shared, &request, sid.as_deref()).await;
        return false;
    }
    let Some(sid) = sid else {
        if request.method != "GET" {
            return http.error(400, 3, "Bad request").await;
        }
        let session = shared.new_session(SioTransport::Polling, &request);
        let open = shared.open_packet(&session.sid, SioTransport::Polling);
        http.bound = Some(session);
        return http
            .respond(200, "text/plain; charset=UTF-8", open.as_bytes())
            .await;
    };
    // An ended session is unknown, but for the poll that takes the close
    // packet of one the server closed.
    let closing =
        |s: &Session| *s.ended.borrow() == Some(Ending::Closed) && request.method == "GET";
    let Some(session) = shared.session(&sid).filter(|s| s.is_alive() || closing(s)) else {
        return http.error(400, 1, "Session ID unknown").await;
    };
    http.bound = Some(session.clone());
    match request.method.as_str() {
        "GET" => poll(http, shared, &session).await,
        "POST" => {
            if request.body.len() as u64 > shared.config.max_payload {
                shared.end_session(&session, Ending::Lost);
                let _ = http.respond(413, "text/plain", b"payload too large").await;
                return false;
            }
            let Ok(packets) = packet::decode_payload(&request.body) else {
                shared.end_session(&session, Ending::Lost);
                let _ = http.error(400, 3, "Bad request").await;
                return false;
            };
            for p in packets {
                shared.on_packet(&session, p);
            }
            http.respond(200, "text/plain; charset=UTF-8", b"ok").await
        }
        _ => http.error(400, 2, "Bad handshake method").await,
    }
}

/// A held GET: answered with what is queued, a noop once the session
/// upgrades (or after [`POLL_HOLD`]), or not at all when the session ends.
async fn poll(http: &mut Http, shared: &Shared, session: &Arc<Session>) -> bool {
    let mut ended = session.ended.subscribe();
    let deadline = Instant::now() + POLL_HOLD;
    loop {
        let changed = session.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let ending = *ended.borrow_and_update();
        let answer = {
            let mut st = lock(&session.state);
            if !st.outbox.is_empty() && matches!(ending, None | Some(Ending::Closed)) {
                let packets: Vec<EnginePacket> = st.outbox.drain(..).collect();
                Some(packet::encode_payload(&packets))
            } else if ending.is_none() && (st.upgrading || st.transport == SioTransport::WebSocket)
            {
                Some("6".to_string())
            } else {
                None
            }
        };
        if ending == Some(Ending::Closed) {
            // Its close packet goes out now (or went out before).
            shared.forget(session);
        }
        match (answer, ending) {
            (Some(body), _) => {
                return http
                    .respond(200, "text/plain; charset=UTF-8", body.as_bytes())
                    .await
            }
            (None, Some(Ending::Closed)) => {
                return http.error(400, 1, "Session ID unknown").await;
            }
            (None, Some(Ending::Reset)) => {
                http.reset();
                return false;
            }
            (None, Some(Ending::Lost)) => return false,
            (None, None) => {}
        }
        let mut chunk = [0u8; 4096];
        tokio::select! {
            () = &mut changed => {}
            _ = ended.changed() => {}
            () = tokio::time::sleep_until(deadline) => {
                return http.respond(200, "text/plain; charset=UTF-8", b"6").await;
            }
            read = http.io.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return false,
                Ok(n) => http.buf.extend_from_slice(&chunk[..n]),
            },
        }
    }
}

/// The WebSocket transport: a new session (the open packet first), or the
/// upgrade of polling session `sid`; then packets as frames until one
/// side ends.
async fn websocket(
    http: &mut Http,
    shared: &Arc<Shared>,
    request: &HttpRequest,
    sid: Option<&str>,
) {
    let Some(key) = request.header("sec-websocket-key") else {
        let _ = http.error(400, 3, "Bad request").await;
        return;
    };
    let existing = match sid {
        None => None,
        Some(sid) => match shared.session(sid) {
            Some(s) if s.is_alive() && lock(&s.state).transport == SioTransport::Polling => Some(s),
            _ => {
                let _ = http.error(400, 1, "Session ID unknown").await;
                return;
            }
        },
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        wire::accept_key(key)
    );
    if http.io.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (session, mut upgraded) = match existing {
        Some(s) => (s, false),
        None => {
            let session = shared.new_session(SioTransport::WebSocket, request);
            let open = shared.open_packet(&session.sid, SioTransport::WebSocket);
            if http.io.write_all(&wire::text(&open)).await.is_err() {
                shared.end_session(&session, Ending::Lost);
                return;
            }
            (session, true)
        }
    };
    let mut ended = session.ended.subscribe();
    let mut message: Option<(u8, Vec<u8>)> = None;
    let max = shared.config.max_payload;
    loop {
        let changed = session.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let ending = *ended.borrow_and_update();
        if upgraded || ending.is_some() {
            let out: Vec<EnginePacket> = match ending {
                None | Some(Ending::Closed) if upgraded => {
                    lock(&session.state).outbox.drain(..).collect()
                }
                _ => Vec::new(),
            };
            let mut bytes = Vec::new();
            for p in out {
                bytes.extend(match p {
                    EnginePacket::Text(t) => wire::text(&t),
                    EnginePacket::Binary(b) => wire::binary(&b),
                });
            }
            match ending {
                Some(Ending::Reset) => {
                    http.reset();
                    return;
                }
                Some(_) => {
                    shared.forget(&session);
                    bytes.extend(wire::close(1000, b""));
                    let _ = http.io.write_all(&bytes).await;
                    let _ = http.io.shutdown().await;
                    return;
                }
                None => {
                    if !bytes.is_empty() && http.io.write_all(&bytes).await.is_err() {
                        shared.end_session(&session, Ending::Lost);
                        return;
                    }
                }
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        tokio::select! {
            () = &mut changed => {}
            _ = ended.changed() => {}
            read = http.io.read(&mut chunk) => {
                let n = match read {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    if upgraded {
                        shared.end_session(&session, Ending::Lost);
                    } else {
                        // The probe's WebSocket went away: polling goes on.
                        lock(&session.state).upgrading = false;
                    }
                    return;
                }
                http.buf.extend_from_slice(&chunk[..n]);
                loop {
                    let frame = match wire::parse_frame(&http.buf, max.saturating_add(16), usize::MAX) {
                        Parsed::Frame(frame, used) => {
                            http.buf.drain(..used);
                            frame
                        }
                        Parsed::Incomplete => break,
                        Parsed::Junk => {
                            let _ = http.io.write_all(&wire::close(1009, b"")).await;
                            shared.end_session(&session, Ending::Lost);
                            return;
                        }
                    };
                    let whole = match (frame.opcode, message.take()) {
                        (OP_TEXT | OP_BINARY, _) if frame.fin => Some((frame.opcode, frame.payload)),
                        (OP_TEXT | OP_BINARY, _) => {
                            message = Some((frame.opcode, frame.payload));
                            None
                        }
                        (OP_CONTINUATION, Some((op, mut data))) => {
                            data.extend_from_slice(&frame.payload);
                            if frame.fin {
                                Some((op, data))
                            } else {
                                message = Some((op, data));
                                None
                            }
                        }
                        (OP_PING, started) => {
                            message = started;
                            let pong = wire::frame(FIN | OP_PONG, &frame.payload);
                            if http.io.write_all(&pong).await.is_err() {
                                return;
                            }
                            None
                        }
                        (OP_CLOSE, _) => {
                            let _ = http.io.write_all(&wire::frame(FIN | OP_CLOSE, &frame.payload)).await;
                            let _ = http.io.shutdown().await;
                            if upgraded {
                                shared.end_session(&session, Ending::Lost);
                            } else {
                                lock(&session.state).upgrading = false;
                            }
                            return;
                        }
                        (_, started) => {
                            message = started;
                            None
                        }
                    };
                    let Some((op, data)) = whole else { continue };
                    let packet = if op == OP_TEXT {
                        EnginePacket::Text(String::from_utf8_lossy(&data).into_owned())
                    } else {
                        EnginePacket::Binary(data)
                    };
                    if upgraded {
                        shared.on_packet(&session, packet);
                        continue;
                    }
                    // The upgrade of a polling session.
                    match packet {
                        EnginePacket::Text(t) if t == "2probe" => {
                            lock(&session.state).upgrading = true;
                            session.changed.notify_waiters();
                            if http.io.write_all(&wire::text("3probe")).await.is_err() {
                                return;
                            }
                        }
                        EnginePacket::Text(t) if t == "5" => {
                            {
                                let mut st = lock(&session.state);
                                st.upgrading = false;
                                st.transport = SioTransport::WebSocket;
                            }
                            upgraded = true;
                            session.changed.notify_waiters();
                        }
                        _ => {}
                    }
                }
            }
        }
    }
}
