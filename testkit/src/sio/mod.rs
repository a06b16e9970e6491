//! [`SocketIoTestServer`]: the kit's Socket.IO personality, an Engine.IO
//! v4 + Socket.IO v5 server on 127.0.0.1 for the tests of apps that use a
//! Socket.IO client: WebSocket and HTTP long-polling (with the upgrade),
//! the server's pings, namespaces with scripted CONNECT answers, a
//! recorder of what clients emit, echo, and a handle per client socket
//! to emit, kick and inject faults.

mod engine;
pub(crate) mod packet;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{mpsc as std_mpsc, Arc, Mutex, Weak};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::listener::Listener;
use crate::record::lock;
use crate::script::Network;
use engine::{Ending, Session, Shared};
use packet::Kind;

/// An Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioTransport {
    /// HTTP long-polling.
    Polling,
    WebSocket,
}

impl SioTransport {
    /// `"polling"` or `"websocket"`, as Engine.IO names them.
    pub fn name(self) -> &'static str {
        match self {
            SioTransport::Polling => "polling",
            SioTransport::WebSocket => "websocket",
        }
    }
}

/// The server's Engine.IO settings.
///
/// JSON (C and JNI): `{"transports": ["polling", "websocket"],
/// "ping_interval_ms": 300, "ping_timeout_ms": 200, "max_payload": 1000000,
/// "path": "/socket.io/", "echo": true}`; missing keys keep the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketIoConfig {
    /// Long-polling is offered (handshakes over it, and the upgrade).
    pub polling: bool,
    /// WebSocket is offered (from the start, or as the upgrade).
    pub websocket: bool,
    /// The server pings this often (Engine.IO's `pingInterval`).
    pub ping_interval: Duration,
    /// A ping without a pong this long ends the session (`pingTimeout`);
    /// the client counts `pingInterval + pingTimeout` of silence as dead.
    pub ping_timeout: Duration,
    /// The largest POST body or WebSocket message taken (`maxPayload`);
    /// a larger one ends the session.
    pub max_payload: u64,
    /// Where the server answers (`/socket.io/`).
    pub path: String,
    /// Events are echoed, acks answered with the arguments (on by default).
    pub echo: bool,
}

impl Default for SocketIoConfig {
    /// Both transports; short timers for tests (pings every 1 s, 1 s
    /// timeout); 1 MB `maxPayload`; `/socket.io/`; echo on.
    fn default() -> SocketIoConfig {
        SocketIoConfig {
            polling: true,
            websocket: true,
            ping_interval: Duration::from_millis(1000),
            ping_timeout: Duration::from_millis(1000),
            max_payload: 1_000_000,
            path: "/socket.io/".into(),
            echo: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    transports: Option<Vec<String>>,
    ping_interval_ms: Option<u64>,
    ping_timeout_ms: Option<u64>,
    max_payload: Option<u64>,
    path: Option<String>,
    echo: Option<bool>,
}

impl SocketIoConfig {
    /// Parses the JSON form (see the type); the error says what is wrong.
    pub fn from_json(json: &str) -> Result<SocketIoConfig, String> {
        let parsed: ConfigJson =
            serde_json::from_str(json).map_err(|e| format!("bad Socket.IO config JSON: {e}"))?;
        let mut config = SocketIoConfig::default();
        if let Some(names) = parsed.transports {
            config.polling = false;
            config.websocket = false;
            for name in &names {
                match name.as_str() {
                    "polling" => config.polling = true,
                    "websocket" => config.websocket = true,
                    other => return Err(format!("unknown transport {other:?}")),
                }
            }
        }
        let ms = |v: Option<u64>, d: Duration| {
            v.map_or(d, |ms| Duration::from_millis(ms).min(crate::MAX_DELAY))
        };
        config.ping_interval = ms(parsed.ping_interval_ms, config.ping_interval);
        config.ping_timeout = ms(parsed.ping_timeout_ms, config.ping_timeout);
        config.max_payload = parsed.max_payload.unwrap_or(config.max_payload);
        config.path = parsed.path.unwrap_or(config.path);
        config.echo = parsed.echo.unwrap_or(config.echo);
        config.check()?;
        Ok(config)
    }

    /// Refuses settings a server cannot run with.
    pub fn check(&self) -> Result<(), String> {
        if !self.polling && !self.websocket {
            return Err("transports: offer at least one of \"polling\", \"websocket\"".into());
        }
        if self.ping_interval.is_zero() || self.ping_timeout.is_zero() {
            return Err("ping_interval_ms and ping_timeout_ms must be above 0".into());
        }
        if self.max_payload == 0 {
            return Err("max_payload must be above 0".into());
        }
        if !self.path.starts_with('/') || self.path.contains(['?', '#', ' ', '\r', '\n']) {
            return Err(format!(
                "path {:?} must start with '/' (no query)",
                self.path
            ));
        }
        Ok(())
    }
}

/// The answer to a client's namespace CONNECT: queued with
/// [`SocketIoTestServer::push_connect_reply`]; once none is queued (for
/// that namespace), CONNECTs are accepted.
///
/// JSON: `"accept"`, `{"refuse": {"message": "not authorized"}}` (the
/// CONNECT_ERROR data, any JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectReply {
    Accept,
    /// CONNECT_ERROR with this data (usually `{"message": …}`).
    Refuse {
        data: Value,
    },
}

impl ConnectReply {
    /// A refusal with `{"message": message}`.
    pub fn refuse(message: &str) -> ConnectReply {
        ConnectReply::Refuse {
            data: serde_json::json!({ "message": message }),
        }
    }

    /// `"accept"` or `{"refuse": <data>}`.
    pub fn from_json(json: &str) -> Result<ConnectReply, String> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| format!("bad connect reply JSON: {e}"))?;
        match value {
            Value::String(s) if s == "accept" => Ok(ConnectReply::Accept),
            Value::Object(mut map) if map.len() == 1 && map.contains_key("refuse") => {
                let data = map.remove("refuse").unwrap_or(Value::Null);
                Ok(ConnectReply::Refuse { data })
            }
            other => Err(format!(
                "connect reply {other} is neither \"accept\" nor {{\"refuse\": <data>}}"
            )),
        }
    }
}

/// One Engine.IO session opened by a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSession {
    /// Sessions count from 1, per server.
    pub id: u64,
    /// The Engine.IO session id.
    pub sid: String,
    /// The transport of the handshake (a polling one may upgrade later).
    pub transport: SioTransport,
    /// The handshake's request target (path and query).
    pub target: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl EngineSession {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A namespace CONNECT a client sent, and how it was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceConnect {
    /// The [`EngineSession::id`] it came on.
    pub session: u64,
    pub nsp: String,
    /// The CONNECT's `auth` payload (`None`: it carried none).
    pub auth: Option<Value>,
    pub accepted: bool,
}

/// An event a client emitted (on a joined namespace).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    pub session: u64,
    pub nsp: String,
    pub name: String,
    /// The arguments after the name; binary ones as
    /// `{"_placeholder": true, "num": i}` for `attachments[i]`.
    pub args: Vec<Value>,
    /// The client waits for an ack with this id.
    pub ack_id: Option<u64>,
    pub attachments: Vec<Vec<u8>>,
}

/// A client left a namespace (its DISCONNECT packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientDisconnect {
    pub session: u64,
    pub nsp: String,
}

/// A client's answer to [`ServerSocket::emit_with_ack`].
#[derive(Debug, Clone, PartialEq)]
pub struct AckAnswer {
    pub args: Vec<Value>,
    pub attachments: Vec<Vec<u8>>,
}

/// An emit waiting for the client's ack.
#[derive(Debug)]
pub struct PendingAck {
    answer: Mutex<std_mpsc::Receiver<AckAnswer>>,
}

impl PendingAck {
    /// The client's answer, waiting at most `timeout`; `None` if none
    /// came, or the session ended first. Once an answer was taken, later
    /// waits give `None`.
    pub fn wait(&self, timeout: Duration) -> Option<AckAnswer> {
        lock(&self.answer).recv_timeout(timeout).ok()
    }
}

/// The server side of one client socket: a namespace the client joined on
/// one Engine.IO session. Cheap to clone; every method returns at once
/// (the transport sends in order); those returning `bool` give false once
/// the socket is gone (nothing was done).
#[derive(Clone)]
pub struct ServerSocket {
    shared: Weak<Shared>,
    session: Arc<Session>,
    nsp: String,
    id: String,
}

impl std::fmt::Debug for ServerSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSocket")
            .field("session", &self.session.id)
            .field("nsp", &self.nsp)
            .field("id", &self.id)
            .finish()
    }
}

impl ServerSocket {
    /// The [`EngineSession::id`] this socket is on.
    pub fn session(&self) -> u64 {
        self.session.id
    }

    /// The Engine.IO session id.
    pub fn engine_sid(&self) -> &str {
        &self.session.sid
    }

    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The Socket.IO socket id the CONNECT was answered with.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The session's transport now (`WebSocket` once upgraded).
    pub fn transport(&self) -> SioTransport {
        lock(&self.session.state).transport
    }

    /// Whether the session lives and the namespace is still joined.
    pub fn is_connected(&self) -> bool {
        self.session.is_alive()
            && lock(&self.session.state).sockets.get(&self.nsp) == Some(&self.id)
    }

    /// Runs `act` on the session's state if this socket is connected, then
    /// wakes the transport.
    fn act<T>(&self, act: impl FnOnce(&mut engine::SessionState) -> T) -> Option<T> {
        if !self.session.is_alive() {
            return None;
        }
        let out = {
            let mut st = lock(&self.session.state);
            if st.sockets.get(&self.nsp) != Some(&self.id) {
                return None;
            }
            act(&mut st)
        };
        self.session.changed.notify_waiters();
        Some(out)
    }

    /// Emits `event` with these arguments.
    pub fn emit(&self, event: &str, args: &[Value]) -> bool {
        self.emit_binary(event, args, &[])
    }

    /// Emits with binary attachments: `args` may place them with
    /// `{"_placeholder": true, "num": i}`; if it places none, they are
    /// appended as the last arguments.
    pub fn emit_binary(&self, event: &str, args: &[Value], attachments: &[Vec<u8>]) -> bool {
        let data = event_data(event, args, attachments.len());
        self.act(|st| {
            let kind = binary_kind(Kind::Event, attachments);
            Session::queue_sio(st, kind, &self.nsp, None, Some(&data), attachments);
        })
        .is_some()
    }

    /// Emits asking for an ack; `None` if the socket is gone.
    pub fn emit_with_ack(&self, event: &str, args: &[Value]) -> Option<PendingAck> {
        self.emit_binary_with_ack(event, args, &[])
    }

    /// [`ServerSocket::emit_binary`] asking for an ack.
    pub fn emit_binary_with_ack(
        &self,
        event: &str,
        args: &[Value],
        attachments: &[Vec<u8>],
    ) -> Option<PendingAck> {
        let data = event_data(event, args, attachments.len());
        let (tx, rx) = std_mpsc::channel();
        self.act(|st| {
            let id = st.next_ack;
            st.next_ack += 1;
            st.acks.insert((self.nsp.clone(), id), tx);
            let kind = binary_kind(Kind::Event, attachments);
            Session::queue_sio(st, kind, &self.nsp, Some(id), Some(&data), attachments);
        })?;
        Some(PendingAck {
            answer: Mutex::new(rx),
        })
    }

    /// Kicks the client out of the namespace (a server DISCONNECT: the
    /// client does not rejoin by itself).
    pub fn disconnect(&self) -> bool {
        self.act(|st| {
            st.sockets.remove(&self.nsp);
            Session::queue_sio(st, Kind::Disconnect, &self.nsp, None, None, &[]);
        })
        .is_some()
    }

    /// Closes the whole Engine.IO session: the close packet, then the
    /// transport closes (the client reconnects with a new session).
    pub fn close_session(&self) -> bool {
        self.end(
            |st| st.outbox.push_back(packet::EnginePacket::Text("1".into())),
            Ending::Closed,
        )
    }

    /// Drops the transport: every TCP connection of the session is reset
    /// (RST) and the session is forgotten.
    pub fn drop_transport(&self) -> bool {
        self.end(|_| {}, Ending::Reset)
    }

    fn end(&self, before: impl FnOnce(&mut engine::SessionState), ending: Ending) -> bool {
        let Some(shared) = self.shared.upgrade() else {
            return false;
        };
        if !self.session.is_alive() {
            return false;
        }
        before(&mut lock(&self.session.state));
        shared.end_session(&self.session, ending);
        true
    }

    /// Stops (false) or restarts (true) the server's heartbeat on this
    /// session: stopped, the server neither pings nor answers a client's
    /// ping, so the link looks dead to the client after `pingInterval +
    /// pingTimeout`, and missing pongs are not held against it. False if
    /// the session is gone.
    pub fn set_heartbeat(&self, on: bool) -> bool {
        if !self.session.is_alive() {
            return false;
        }
        lock(&self.session.state).heartbeat = on;
        true
    }
}

fn binary_kind(kind: Kind, attachments: &[Vec<u8>]) -> Kind {
    match (kind, attachments.is_empty()) {
        (Kind::Event, false) => Kind::BinaryEvent,
        (Kind::Ack, false) => Kind::BinaryAck,
        (kind, _) => kind,
    }
}

/// `[event, args…]`, with placeholders appended for attachments that
/// `args` does not place.
fn event_data(event: &str, args: &[Value], attachments: usize) -> Value {
    let mut items = vec![Value::String(event.to_string())];
    items.extend(args.iter().cloned());
    let placed = args.iter().any(has_placeholder);
    if !placed {
        items.extend((0..attachments).map(packet::placeholder));
    }
    Value::Array(items)
}

fn has_placeholder(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.get("_placeholder") == Some(&Value::Bool(true)) || map.values().any(has_placeholder)
        }
        Value::Array(items) => items.iter().any(has_placeholder),
        _ => false,
    }
}

/// An Engine.IO v4 + Socket.IO v5 server on 127.0.0.1 for tests, on its
/// own thread (see the module docs). Every method is a plain blocking call
/// from any thread, in effect when it returns. Dropping it stops the
/// thread and kills every connection.
///
/// ```no_run
/// use std::time::Duration;
/// use tether_testkit::{ConnectReply, SocketIoTestServer};
///
/// let server = SocketIoTestServer::start().unwrap();
/// server.push_connect_reply(Some("/admin"), ConnectReply::refuse("not allowed")).unwrap();
/// // … connect the Socket.IO client under test to server.url() …
/// let event = server.await_event(Duration::from_secs(5)).unwrap();
/// assert_eq!(event.name, "hello");
/// ```
pub struct SocketIoTestServer {
    shared: Arc<Shared>,
    listener: Listener,
}

impl SocketIoTestServer {
    /// Starts with [`SocketIoConfig::default`].
    pub fn start() -> std::io::Result<SocketIoTestServer> {
        Self::start_with(SocketIoConfig::default())
    }

    /// Starts on a free port of 127.0.0.1 with `config`.
    pub fn start_with(config: SocketIoConfig) -> std::io::Result<SocketIoTestServer> {
        config.check().map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared::new(config));
        let for_connections = shared.clone();
        let listener = Listener::start("tether-testkit-sio", move |tcp| {
            engine::serve(tcp, for_connections.clone())
        })?;
        Ok(SocketIoTestServer { shared, listener })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `http://127.0.0.1:PORT`: what a Socket.IO client takes (it adds the
    /// path, [`SocketIoConfig::path`]).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn config(&self) -> &SocketIoConfig {
        &self.shared.config
    }

    /// Whether events are echoed and acks answered with their arguments.
    pub fn set_echo(&self, echo: bool) {
        self.shared.echo.store(echo, Ordering::SeqCst);
    }

    /// Replaces the network conditions of every connection, current and
    /// new (latency, bandwidth, cut: as on [`TestServer`](crate::TestServer)).
    /// Mind the heartbeat: the client sees the server's pings
    /// `pingInterval` + a round trip apart, so a round trip longer than
    /// `pingTimeout` looks like a dead link.
    pub fn set_network(&self, network: Network) {
        self.shared.network.send_replace(network);
    }

    pub fn network(&self) -> Network {
        *self.shared.network.borrow()
    }

    /// Queues the answer to a coming CONNECT of `nsp` (`None`: of any
    /// namespace); first queued, first used. `Err` for a namespace that
    /// is not one (`/…`, no `,`).
    pub fn push_connect_reply(&self, nsp: Option<&str>, reply: ConnectReply) -> Result<(), String> {
        if let Some(nsp) = nsp {
            packet::check_namespace(nsp)?;
        }
        self.shared
            .push_connect_reply(nsp.map(str::to_string), reply);
        Ok(())
    }

    /// The next Engine.IO session opened, not taken yet, waiting at most
    /// `timeout`.
    pub fn await_session(&self, timeout: Duration) -> Option<EngineSession> {
        self.shared.sessions_opened.next(timeout)
    }

    /// The next namespace CONNECT (accepted or not), not taken yet.
    pub fn await_connect(&self, timeout: Duration) -> Option<NamespaceConnect> {
        self.shared.connects.next(timeout)
    }

    /// The next event a client emitted, not taken yet.
    pub fn await_event(&self, timeout: Duration) -> Option<ReceivedEvent> {
        self.shared.events.next(timeout)
    }

    /// The next socket (an accepted CONNECT), not taken yet.
    pub fn await_socket(&self, timeout: Duration) -> Option<ServerSocket> {
        self.shared.sockets.next(timeout)
    }

    /// The next DISCONNECT a client sent, not taken yet.
    pub fn await_disconnect(&self, timeout: Duration) -> Option<ClientDisconnect> {
        self.shared.disconnects.next(timeout)
    }

    /// Every event so far, taken or not.
    pub fn events(&self) -> Vec<ReceivedEvent> {
        self.shared.events.all()
    }

    /// Every CONNECT so far, taken or not.
    pub fn connects(&self) -> Vec<NamespaceConnect> {
        self.shared.connects.all()
    }

    /// Sessions opened so far.
    pub fn session_count(&self) -> usize {
        self.shared.sessions_opened.len()
    }

    /// Sessions alive now.
    pub fn live_sessions(&self) -> usize {
        self.shared.session_count()
    }

    /// Kills every connection and forgets every session (like a crash
    /// and an instant restart); keeps listening.
    pub fn kill_connections(&self) -> Result<(), String> {
        self.control(false)
    }

    /// Like a server restart: kills every connection, forgets every
    /// session, closes the listener and binds the same port again.
    pub fn restart(&self) -> Result<(), String> {
        self.control(true)
    }

    fn control(&self, rebind: bool) -> Result<(), String> {
        // Sessions end first, so that no poll finds one alive after its
        // connection was killed.
        self.shared.end_all();
        self.listener.kill(rebind)
    }
}

impl Drop for SocketIoTestServer {
    fn drop(&mut self) {
        self.shared.end_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_and_connect_replies_parse_from_json() {
        let c = SocketIoConfig::from_json(
            r#"{"transports":["websocket"],"ping_interval_ms":50,"ping_timeout_ms":40}"#,
        )
        .unwrap();
        assert!(c.websocket && !c.polling);
        assert_eq!(c.ping_interval, Duration::from_millis(50));
        for bad in [
            r#"{"transports":[]}"#,
            r#"{"transports":["carrier-pigeon"]}"#,
            r#"{"ping_interval_ms":0}"#,
            r#"{"path":"nope"}"#,
            r#"{"pingInterval":5}"#,
        ] {
            assert!(SocketIoConfig::from_json(bad).is_err(), "{bad} was taken");
        }
        assert_eq!(
            ConnectReply::from_json("\"accept\""),
            Ok(ConnectReply::Accept)
        );
        assert_eq!(
            ConnectReply::from_json(r#"{"refuse":{"message":"no"}}"#),
            Ok(ConnectReply::refuse("no"))
        );
        assert!(ConnectReply::from_json(r#"{"refuse":1,"x":2}"#).is_err());
    }

    #[test]
    fn event_data_appends_placeholders_only_when_args_place_none() {
        let data = event_data("e", &[Value::from(1)], 2);
        assert_eq!(
            data,
            serde_json::json!(["e", 1, {"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 1}])
        );
        let placed = [serde_json::json!({"file": {"_placeholder": true, "num": 0}})];
        assert_eq!(event_data("e", &placed, 1).as_array().unwrap().len(), 2);
    }
}
