//! A hostile Engine.IO server for the Socket.IO tests: raw HTTP/1.1 over
//! TCP on 127.0.0.1, parsed and written by hand (request line, headers,
//! `Content-Length`, keep-alive), speaking Engine.IO v4 long-polling:
//!
//! - a handshake GET (no `sid`) opens a session and is answered with the
//!   open packet `0{"sid":…,"upgrades":[],"pingInterval":…,…}`;
//! - a poll GET with a `sid` is answered with the packets queued for that
//!   session (joined by `\x1e`), or held until some are queued, the server
//!   pings (every `pingInterval`, if [`Config::pings`]), or the session
//!   ends; an unknown `sid` gets `400 {"code":1,"message":"Session ID
//!   unknown"}` (what a restarted server says);
//! - a POST with a `sid` is recorded and answered `ok`; a pong (`3`)
//!   clears the ping it answers, a close (`1`) ends the session, and a
//!   Socket.IO CONNECT (`40…`) is accepted (if [`Config::auto_connect`]).
//!
//! Every request is recorded (method, target, headers, body) for the
//! tests' assertions. A per-scenario [`Script`] sees each request first and
//! may answer it any other way ([`Reply`]): a raw answer, a request held
//! forever, a hang-up, or an endless body. Every wait here is bounded
//! ([`HOLD_LIMIT`]); dropping the server aborts every connection.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::ServerThread;

/// The longest a request is held or a connection kept waiting.
pub const HOLD_LIMIT: Duration = Duration::from_secs(30);
/// A request head larger than this ends the connection.
const MAX_HEAD: usize = 64 * 1024;
/// A request body larger than this ends the connection.
const MAX_BODY: usize = 16 << 20;
/// The record separator of polling payloads.
pub const SEP: char = '\x1e';

/// The server's Engine.IO settings and default behaviour.
#[derive(Debug, Clone)]
pub struct Config {
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload: u64,
    /// The server pings every `ping_interval_ms` (on a held poll).
    pub pings: bool,
    /// A ping not answered within `ping_timeout_ms` ends the session, as a
    /// real server does (counted in [`State::pong_timeouts`]).
    pub enforce_pongs: bool,
    /// Socket.IO CONNECT packets are accepted with `40<nsp>,{"sid":…}`.
    pub auto_connect: bool,
    /// How long a POST waits before its `ok`.
    pub post_delay: Duration,
    /// The open packet's `upgrades` (JSON array text).
    pub upgrades: &'static str,
    /// WebSocket: `2probe` is answered `3probe`.
    pub answer_probe: bool,
    /// WebSocket: the first frame in place of the open packet.
    pub ws_open: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 1_000_000,
            pings: true,
            enforce_pongs: false,
            auto_connect: true,
            post_delay: Duration::ZERO,
            upgrades: "[]",
            answer_probe: true,
            ws_open: None,
        }
    }
}

/// One request as the client sent it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Which TCP connection (in accept order) carried it.
    pub conn: usize,
}

impl Recorded {
    /// A query parameter, percent-decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == key).then(|| percent_decode(v))
        })
    }

    pub fn sid(&self) -> Option<String> {
        self.query("sid")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn is_handshake(&self) -> bool {
        self.method == "GET" && self.sid().is_none()
    }

    pub fn is_poll(&self) -> bool {
        self.method == "GET" && self.sid().is_some()
    }

    pub fn is_post(&self) -> bool {
        self.method == "POST"
    }

    /// The body's Engine.IO packets (a polling payload).
    pub fn packets(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.body)
            .split(SEP)
            .map(str::to_string)
            .collect()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            if let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the script makes of one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The server's default Engine.IO behaviour.
    Default,
    /// This raw answer (`Content-Length` is added from the body).
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Never answered: held until the client hangs up.
    Hold,
    /// The server hangs up without answering.
    HangUp,
    /// A 200 announcing `length` bytes, then `chunk` again and again until
    /// the client hangs up or `length` is written ([`State::streamed`]).
    Endless { length: u64, chunk: Vec<u8> },
}

impl Reply {
    /// A `200` with this polling payload.
    pub fn payload(body: impl Into<Vec<u8>>) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Respond {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// What a script knows of a request besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// The request's number, from 0, over the server's life.
    pub index: usize,
    /// Handshakes answered before this request.
    pub handshakes: usize,
    /// The number of the request's session (by handshake order), if known.
    pub session: Option<usize>,
    /// Poll GETs of this session before this one.
    pub polls: usize,
}

pub type Script = dyn Fn(&Recorded, &Ctx) -> Reply + Send + Sync;

/// One Engine.IO session.
#[derive(Debug)]
pub struct Session {
    pub index: usize,
    /// Packets for the next poll, oldest first.
    pub queued: VecDeque<String>,
    pub polls: usize,
    next_ping: Instant,
    /// The ping awaiting its pong, sent then.
    ping_out: Option<Instant>,
    pub pings: usize,
    pub pongs: usize,
    pub closed: bool,
    /// Upgraded to WebSocket (`5` came): polls get a noop.
    pub upgraded: bool,
    /// A WebSocket carries this session (from the start or upgraded).
    pub websocket: bool,
}

/// Everything the server saw and did, for the tests.
#[derive(Debug, Default)]
pub struct State {
    pub requests: Vec<Recorded>,
    pub sessions: BTreeMap<String, Session>,
    pub handshakes: usize,
    /// Pings left unanswered past `ping_timeout_ms`, and pongs that came
    /// late.
    pub pong_timeouts: usize,
    /// Bytes of [`Reply::Endless`] bodies written, and whether the client
    /// hung up before the end.
    pub streamed: u64,
    pub stream_cut: bool,
    /// Connections accepted.
    pub accepts: usize,
    /// Session ids handed out, in order.
    pub sids: Vec<String>,
    /// Overrides the next handshakes' sids (popped in order).
    pub sid_overrides: VecDeque<String>,
    /// WebSocket messages received (text, or `b` + base64 for binary).
    pub ws_messages: Vec<String>,
}

struct Inner {
    config: Config,
    script: Box<Script>,
    state: Mutex<State>,
    changed: Notify,
}

/// The server; see the module documentation.
pub struct HostileEio {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _server: ServerThread,
}

impl HostileEio {
    /// The default behaviour only.
    pub fn start(config: Config) -> HostileEio {
        Self::scripted(config, |_, _| Reply::Default)
    }

    pub fn scripted(
        config: Config,
        script: impl Fn(&Recorded, &Ctx) -> Reply + Send + Sync + 'static,
    ) -> HostileEio {
        let inner = Arc::new(Inner {
            config,
            script: Box::new(script),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        });
        let shared = inner.clone();
        let server = ServerThread::start("127.0.0.1:0".parse().unwrap(), move |tcp| {
            let inner = shared.clone();
            async move {
                let conn = {
                    let mut state = inner.state.lock().unwrap();
                    state.accepts += 1;
                    state.accepts - 1
                };
                let _ = tokio::time::timeout(HOLD_LIMIT, serve(tcp, conn, inner)).await;
            }
        });
        HostileEio {
            addr: server.addr,
            inner,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `f` on the server's state.
    pub fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.inner.state.lock().unwrap());
        self.inner.changed.notify_waiters();
        out
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.with(|s| s.requests.clone())
    }

    pub fn handshakes(&self) -> usize {
        self.with(|s| s.handshakes)
    }

    /// Queues `packet` (an Engine.IO packet, e.g. `42["hi"]`) for the last
    /// session opened; a held poll answers with it at once.
    pub fn push(&self, packet: &str) {
        self.with(|s| {
            if let Some(session) = s.sessions.values_mut().max_by_key(|s| s.index) {
                session.queued.push_back(packet.to_string());
            }
        })
    }

    /// The server restarts: every session is forgotten (held polls get 400).
    pub fn forget_sessions(&self) {
        self.with(|s| s.sessions.clear())
    }

    /// Waits up to `timeout` for `pred` to hold; false if it never did.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.inner.state.lock().unwrap()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The Socket.IO packets (Engine.IO messages, `4` stripped) the client
    /// posted in session `session`, in order.
    pub fn posted_messages(&self, session: usize) -> Vec<String> {
        let sid = self.with(|s| s.sids.get(session).cloned());
        self.requests()
            .iter()
            .filter(|r| r.is_post() && r.sid() == sid)
            .flat_map(|r| r.packets())
            .filter_map(|p| p.strip_prefix('4').map(str::to_string))
            .collect()
    }
}

/// One keep-alive connection: requests one after the other.
async fn serve(mut tcp: TcpStream, conn: usize, inner: Arc<Inner>) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut tcp, &mut buffer, conn).await else {
            return;
        };
        let (index, ctx) = {
            let mut state = inner.state.lock().unwrap();
            let session = request
                .sid()
                .and_then(|sid| state.sessions.get(&sid).map(|s| (s.index, s.polls)));
            let ctx = Ctx {
                index: state.requests.len(),
                handshakes: state.handshakes,
                session: session.map(|s| s.0),
                polls: session.map_or(0, |s| s.1),
            };
            state.requests.push(request.clone());
            (ctx.index, ctx)
        };
        let _ = index;
        inner.changed.notify_waiters();
        let reply = (inner.script)(&request, &ctx);
        let answered = match reply {
            Reply::Default if request.query("transport").as_deref() == Some("websocket") => {
                websocket(tcp, &request, &inner).await;
                return;
            }
            Reply::Default => default_reply(&mut tcp, &request, &inner).await,
            Reply::Respond {
                status,
                headers,
                body,
            } => write_response(&mut tcp, status, &headers, &body).await,
            Reply::Hold => {
                hold(&mut tcp).await;
                false
            }
            Reply::HangUp => false,
            Reply::Endless { length, chunk } => {
                endless(&mut tcp, length, &chunk, &inner).await;
                false
            }
        };
        if !answered {
            return;
        }
    }
}

/// Reads one request (head and `Content-Length` body); `None` once the
/// client hung up or sent something that is not HTTP/1.1.
async fn read_request(tcp: &mut TcpStream, buffer: &mut Vec<u8>, conn: usize) -> Option<Recorded> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target, version) = (first.next()?, first.next()?, first.next()?);
    if version != "HTTP/1.1" {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map_or(Some(0), |(_, v)| v.parse().ok())?;
    if length > MAX_BODY {
        return None;
    }
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Recorded {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        conn,
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Writes one answer; false if the client is gone.
async fn write_response(
    tcp: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> bool {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    out.push_str("Content-Type: text/plain; charset=UTF-8\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    tcp.write_all(&bytes).await.is_ok()
}

/// Holds the request until the client hangs up (or [`HOLD_LIMIT`]).
async fn hold(tcp: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    while let Ok(n) = tcp.read(&mut sink).await {
        if n == 0 {
            return;
        }
    }
}

async fn endless(tcp: &mut TcpStream, length: u64, chunk: &[u8], inner: &Inner) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Length: {length}\r\n\r\n"
    );
    if tcp.write_all(head.as_bytes()).await.is_err() || chunk.is_empty() {
        return;
    }
    let mut written = 0u64;
    while written < length {
        let n = chunk.len().min((length - written) as usize);
        if tcp.write_all(&chunk[..n]).await.is_err() {
            inner.state.lock().unwrap().stream_cut = true;
            break;
        }
        written += n as u64;
        inner.state.lock().unwrap().streamed = written;
    }
}

fn open_packet(config: &Config, sid: &str) -> String {
    let sid = serde_json::to_string(sid).unwrap();
    format!(
        r#"0{{"sid":{sid},"upgrades":{},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
        config.upgrades, config.ping_interval_ms, config.ping_timeout_ms, config.max_payload
    )
}

/// Opens a session; returns its sid.
fn new_session(inner: &Inner) -> String {
    let mut state = inner.state.lock().unwrap();
    let index = state.handshakes;
    state.handshakes += 1;
    let sid = state
        .sid_overrides
        .pop_front()
        .unwrap_or_else(|| format!("sid{index}"));
    state.sids.push(sid.clone());
    state.sessions.insert(
        sid.clone(),
        Session {
            index,
            queued: VecDeque::new(),
            polls: 0,
            next_ping: Instant::now() + Duration::from_millis(inner.config.ping_interval_ms),
            ping_out: None,
            pings: 0,
            pongs: 0,
            closed: false,
            upgraded: false,
            websocket: false,
        },
    );
    sid
}

fn unknown_sid() -> Vec<u8> {
    br#"{"code":1,"message":"Session ID unknown"}"#.to_vec()
}

/// Engine.IO as a (naive but correct) server does it.
async fn default_reply(tcp: &mut TcpStream, request: &Recorded, inner: &Inner) -> bool {
    let config = &inner.config;
    let Some(sid) = request.sid() else {
        if request.method != "GET" {
            return write_response(tcp, 400, &[], &unknown_sid()).await;
        }
        let body = open_packet(config, &new_session(inner));
        inner.changed.notify_waiters();
        return write_response(tcp, 200, &[], body.as_bytes()).await;
    };
    match request.method.as_str() {
        "GET" => poll(tcp, &sid, inner).await,
        "POST" => {
            let known = on_post(&sid, &request.body, inner);
            inner.changed.notify_waiters();
            if !known {
                return write_response(tcp, 400, &[], &unknown_sid()).await;
            }
            if !config.post_delay.is_zero() {
                tokio::time::sleep(config.post_delay).await;
            }
            write_response(tcp, 200, &[], b"ok").await
        }
        _ => write_response(tcp, 400, &[], b"bad method").await,
    }
}

/// A POST's packets; false if the session is unknown.
fn on_post(sid: &str, body: &[u8], inner: &Inner) -> bool {
    let config = &inner.config;
    let mut state = inner.state.lock().unwrap();
    let state = &mut *state;
    let Some(session) = state.sessions.get_mut(sid) else {
        return false;
    };
    for packet in String::from_utf8_lossy(body).split(SEP) {
        on_packet(config, session, &mut state.pong_timeouts, packet);
    }
    true
}

/// One packet from the client (by POST or over WebSocket).
fn on_packet(config: &Config, session: &mut Session, pong_timeouts: &mut usize, packet: &str) {
    if packet.starts_with('3') {
        session.pongs += 1;
        if let Some(sent) = session.ping_out.take() {
            if sent.elapsed() > Duration::from_millis(config.ping_timeout_ms) {
                *pong_timeouts += 1;
            }
        }
    } else if packet == "1" {
        session.closed = true;
    } else if packet == "5" {
        session.upgraded = true;
    } else if let Some(connect) = packet.strip_prefix("40") {
        if config.auto_connect {
            let nsp = match connect.strip_prefix('/') {
                Some(rest) => format!("/{},", rest.split(',').next().unwrap_or("")),
                None => String::new(),
            };
            let sio_sid = format!("sio-{}-{}", session.index, session.queued.len());
            session
                .queued
                .push_back(format!(r#"40{nsp}{{"sid":"{sio_sid}"}}"#));
        }
    }
}

/// A poll GET: answered with what is queued, a ping when due, or `400`
/// once the session is gone; held meanwhile.
async fn poll(tcp: &mut TcpStream, sid: &str, inner: &Inner) -> bool {
    let config = &inner.config;
    let ping_timeout = Duration::from_millis(config.ping_timeout_ms);
    let interval = Duration::from_millis(config.ping_interval_ms);
    if let Some(session) = inner.state.lock().unwrap().sessions.get_mut(sid) {
        session.polls += 1;
    }
    let mut sink = [0u8; 1024];
    loop {
        let changed = inner.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let next = poll_step(sid, inner, Instant::now(), ping_timeout, interval);
        let wake = match next {
            PollStep::Answer(status, body) => {
                return write_response(tcp, status, &[], &body).await;
            }
            PollStep::Again => continue,
            PollStep::Wait(wake) => wake,
        };
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
            read = tcp.read(&mut sink) => match read {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            },
        }
    }
}

enum PollStep {
    Answer(u16, Vec<u8>),
    Again,
    Wait(Instant),
}

fn poll_step(
    sid: &str,
    inner: &Inner,
    now: Instant,
    ping_timeout: Duration,
    interval: Duration,
) -> PollStep {
    let config = &inner.config;
    let mut state = inner.state.lock().unwrap();
    let state = &mut *state;
    let Some(session) = state.sessions.get_mut(sid) else {
        return PollStep::Answer(400, unknown_sid());
    };
    if config.enforce_pongs && session.ping_out.is_some_and(|t| now > t + ping_timeout) {
        // No pong in time: the server gives the session up.
        state.pong_timeouts += 1;
        state.sessions.remove(sid);
        return PollStep::Again;
    }
    if session.upgraded {
        return PollStep::Answer(200, b"6".to_vec());
    }
    if session.closed {
        session.queued.push_back("1".into());
    } else if config.pings && now >= session.next_ping {
        session.queued.push_back("2".into());
        session.pings += 1;
        session.ping_out.get_or_insert(now);
        session.next_ping = now + interval;
    }
    if !session.queued.is_empty() {
        let body: Vec<String> = session.queued.drain(..).collect();
        return PollStep::Answer(200, body.join(&SEP.to_string()).into_bytes());
    }
    let mut wake = now + HOLD_LIMIT;
    if config.pings {
        wake = wake.min(session.next_ping);
    }
    if let Some(sent) = session.ping_out.filter(|_| config.enforce_pongs) {
        wake = wake.min(sent + ping_timeout + Duration::from_millis(1));
    }
    PollStep::Wait(wake)
}

/// The WebSocket transport: the 101 by hand, then Engine.IO packets as
/// frames (a new session, or the upgrade of a polling one with its sid).
async fn websocket(mut tcp: TcpStream, request: &Recorded, inner: &Inner) {
    let config = &inner.config;
    let Some(key) = request.header("sec-websocket-key") else {
        let _ = write_response(&mut tcp, 400, &[], b"not a WebSocket upgrade").await;
        return;
    };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = WebSocketStream::from_raw_socket(tcp, Role::Server, None).await;
    let sid = match request.sid() {
        Some(sid) => sid,
        None => {
            let sid = new_session(inner);
            if let Some(session) = inner.state.lock().unwrap().sessions.get_mut(&sid) {
                session.websocket = true;
                session.upgraded = true;
            }
            let open = config
                .ws_open
                .clone()
                .unwrap_or_else(|| open_packet(config, &sid));
            if ws.send(Message::text(open)).await.is_err() {
                return;
            }
            sid
        }
    };
    let interval = Duration::from_millis(config.ping_interval_ms);
    loop {
        let changed = inner.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let (out, wake) = {
            let mut state = inner.state.lock().unwrap();
            let Some(session) = state.sessions.get_mut(&sid) else {
                return;
            };
            session.websocket = true;
            let now = Instant::now();
            let mut out = Vec::new();
            if session.upgraded {
                if config.pings && now >= session.next_ping {
                    session.queued.push_back("2".into());
                    session.pings += 1;
                    session.ping_out.get_or_insert(now);
                    session.next_ping = now + interval;
                }
                out.extend(session.queued.drain(..));
            }
            let wake = if config.pings && session.upgraded {
                session.next_ping
            } else {
                now + HOLD_LIMIT
            };
            (out, wake)
        };
        for packet in out {
            let message = match packet.strip_prefix('b') {
                Some(data) => Message::binary(
                    base64::engine::general_purpose::STANDARD
                        .decode(data)
                        .unwrap_or_default(),
                ),
                None => Message::text(packet),
            };
            if ws.send(message).await.is_err() {
                return;
            }
        }
        tokio::select! {
            _ = &mut changed => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
            message = ws.next() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) => text.as_str().to_string(),
                    Some(Ok(Message::Binary(data))) => {
                        format!("b{}", base64::engine::general_purpose::STANDARD.encode(&data))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return,
                };
                let probe = text == "2probe" && config.answer_probe;
                {
                    let mut state = inner.state.lock().unwrap();
                    let state = &mut *state;
                    state.ws_messages.push(text.clone());
                    if let Some(session) = state.sessions.get_mut(&sid) {
                        on_packet(config, session, &mut state.pong_timeouts, &text);
                    }
                }
                inner.changed.notify_waiters();
                if probe && ws.send(Message::text("3probe")).await.is_err() {
                    return;
                }
            }
        }
    }
}
