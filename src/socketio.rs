//! The Rust API of a Socket.IO client: what the `sio_*` C functions wrap.
//!
//! A [`SocketIoClient`] is a session of the Socket.IO wire: reconnect,
//! backoff, pause/resume, network hints, the queue and TLS are the
//! WebSocket client's. What Socket.IO adds is per namespace: joins (with
//! auth, again after every reconnect), emits that wait for their
//! namespace, acks with a timeout, and events that say which namespace
//! connected, failed or left.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::client::{net_dialer, Client, Stats};
use crate::error::Error;
use crate::event::{Event, SioEvent};
use crate::options::Options;
use crate::queue::Message;
use crate::transport::Endpoint;
use crate::wire::engineio::{EngineConfig, Transports};
use crate::wire::socketio::packet::{self, Kind};
use crate::wire::socketio::{SioShared, SocketIoWire};

/// Event names Socket.IO keeps for itself: an emit of one is refused.
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The Socket.IO-only options, split off before the common ones parse.
struct SioOptions {
    transports: Transports,
    path: String,
    auth: Option<String>,
    ack_timeout: Duration,
}

/// Splits `json` into the Socket.IO keys and the common [`Options`].
fn parse_options(json: Option<&str>) -> Result<(SioOptions, Options), Error> {
    let text = json.map(str::trim).unwrap_or("");
    let mut object = if text.is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(Error::InvalidArgument(
                    "options JSON: expected an object like {\"transports\": [\"websocket\"]}"
                        .into(),
                ))
            }
            Err(e) => return Err(Error::InvalidArgument(format!("options JSON: {e}"))),
        }
    };
    let invalid = |why: String| Error::InvalidArgument(format!("options JSON: {why}"));
    for key in ["subprotocols", "ping_interval_ms", "pong_timeout_ms"] {
        if object.contains_key(key) {
            return Err(invalid(format!(
                "{key} does not apply to Socket.IO (the server sets the heartbeat and the protocol)"
            )));
        }
    }
    if object.contains_key("outbox") {
        return Err(invalid(
            "outbox is not supported for Socket.IO clients yet; emits wait in the in-memory queue"
                .into(),
        ));
    }
    let transports = match object.remove("transports") {
        None => Transports::PollingThenWebSocket,
        Some(value) => {
            let names: Vec<String> = serde_json::from_value(value)
                .map_err(|_| invalid("transports must be an array of strings".into()))?;
            Transports::parse(&names)?
        }
    };
    let path = match object.remove("path") {
        None => "/socket.io/".to_string(),
        Some(Value::String(path)) if path.starts_with('/') && is_plain_path(&path) => {
            format!("{}/", path.trim_end_matches('/'))
        }
        Some(_) => {
            return Err(invalid(
                "path must be a string starting with '/' without '?', '#' or spaces".into(),
            ))
        }
    };
    let auth = match object.remove("auth") {
        None | Some(Value::Null) => None,
        Some(value @ Value::Object(_)) => Some(value.to_string()),
        Some(_) => return Err(invalid("auth must be a JSON object".into())),
    };
    let ack_timeout = match object.remove("ack_timeout_ms") {
        None => Duration::from_millis(10_000),
        Some(value) => match value.as_u64() {
            Some(ms) if ms > 0 => Duration::from_millis(ms),
            _ => return Err(invalid("ack_timeout_ms must be a positive integer".into())),
        },
    };
    let rest = Value::Object(object).to_string();
    let options = Options::parse_json(Some(&rest))?;
    Ok((
        SioOptions {
            transports,
            path,
            auth,
            ack_timeout,
        },
        options,
    ))
}

fn is_plain_path(path: &str) -> bool {
    !path
        .chars()
        .any(|c| c == '?' || c == '#' || c.is_whitespace() || c.is_control())
}

/// Checks JSON text the app passes, naming what it is.
fn parse_json(what: &str, json: &str) -> Result<Value, Error> {
    serde_json::from_str(json)
        .map_err(|e| Error::InvalidArgument(format!("{what} is not valid JSON: {e}")))
}

fn check_namespace(nsp: &str) -> Result<(), Error> {
    packet::validate_namespace(nsp).map_err(Error::InvalidArgument)
}

/// What the app has been told, so that a lost connection can be told per
/// namespace, and events it never sees can be dropped.
#[derive(Default)]
struct AppView {
    /// Namespaces whose CONNECT the app got and no DISCONNECT yet.
    connected: BTreeSet<String>,
    /// Events made up on the app's side, delivered before the next one.
    synthesized: VecDeque<Event>,
}

/// A Socket.IO client: one Engine.IO connection kept up across failures,
/// with the namespaces the app joined.
pub struct SocketIoClient {
    client: Client,
    sio: Arc<SioShared>,
    view: Mutex<AppView>,
}

impl SocketIoClient {
    /// Validates `url` (`http(s)://host[:port][/][?query]`) and the options
    /// JSON, then starts connecting and joins `/` (with `"auth"`).
    pub fn connect(url: &str, options_json: Option<&str>) -> Result<SocketIoClient, Error> {
        let (sio_options, options) = parse_options(options_json)?;
        let (origin, query) = parse_url(url)?;
        if !origin.tls && !options.allow_insecure {
            return Err(Error::InvalidArgument(
                "URL: cleartext http:// is not allowed (option allow_insecure is false); use https://"
                    .into(),
            ));
        }
        let resolved = options.resolve()?;
        let dialer = net_dialer(&origin, &resolved)?;
        let engine = EngineConfig {
            origin,
            path: sio_options.path,
            query,
            transports: sio_options.transports,
            dialer: Arc::new(dialer),
            options: options.clone(),
        };
        let mut shared = None;
        let client = Client::start(&options, |events| {
            let sio = Arc::new(SioShared::new(events.clone(), sio_options.ack_timeout));
            // Joined before the first open: its CONNECT goes with the open.
            sio.join("/", sio_options.auth);
            shared = Some(sio.clone());
            SocketIoWire::new(engine, sio)
        })?;
        let sio =
            shared.ok_or_else(|| Error::Internal("the Socket.IO wire was not built".into()))?;
        crate::runtime::spawn(sio.clone().run_ack_timer())?;
        Ok(SocketIoClient {
            client,
            sio,
            view: Mutex::new(AppView::default()),
        })
    }

    /// Joins `nsp` with `auth_json` (a JSON object, or `None`), now if
    /// connected and again after every reconnect. Joining again (after a
    /// CONNECT_ERROR, with new auth) is how a refused namespace is retried.
    pub fn join(&self, nsp: &str, auth_json: Option<&str>) -> Result<(), Error> {
        check_namespace(nsp)?;
        let auth = match auth_json.map(|a| parse_json("auth", a)).transpose()? {
            None | Some(Value::Null) => None,
            Some(value @ Value::Object(_)) => Some(value.to_string()),
            Some(_) => return Err(Error::InvalidArgument("auth must be a JSON object".into())),
        };
        if let Some(connect) = self.sio.join(nsp, auth) {
            self.client
                .send_group(vec![Message::Text(Utf8Bytes::from(connect))])?;
        }
        Ok(())
    }

    /// Leaves `nsp`: the server is told, it is not joined again, and a
    /// `Disconnect` ("io client disconnect") follows. Emits still waiting
    /// for it are dropped (their acks fail).
    pub fn leave(&self, nsp: &str) -> Result<(), Error> {
        check_namespace(nsp)?;
        let (was_joined, tell_server) = self.sio.leave(nsp);
        if !was_joined {
            return Err(Error::InvalidArgument(format!(
                "namespace {nsp:?} is not joined"
            )));
        }
        if tell_server {
            let bye = packet::encode(Kind::Disconnect, nsp, None, 0, None);
            self.client
                .send_group(vec![Message::Text(Utf8Bytes::from(bye))])?;
        }
        self.client
            .event_sender()
            .send(Event::from(SioEvent::Disconnect {
                nsp: nsp.to_string(),
                reason: "io client disconnect".into(),
            }));
        Ok(())
    }

    /// Emits `event` with `args_json` (a JSON array) on `nsp`. With
    /// `want_ack`, returns the id its `Ack` event will carry.
    pub fn emit(
        &self,
        nsp: &str,
        event: &str,
        args_json: &str,
        want_ack: bool,
    ) -> Result<Option<u64>, Error> {
        self.emit_binary(nsp, event, args_json, &[], want_ack)
    }

    /// Emits with binary attachments: `args_json` may refer to them as
    /// `{"_placeholder":true,"num":i}`; those it does not refer to are
    /// appended as the last arguments, in order.
    pub fn emit_binary(
        &self,
        nsp: &str,
        event: &str,
        args_json: &str,
        attachments: &[&[u8]],
        want_ack: bool,
    ) -> Result<Option<u64>, Error> {
        check_namespace(nsp)?;
        if event.is_empty() || RESERVED_EVENTS.contains(&event) {
            return Err(Error::InvalidArgument(format!(
                "event name {event:?} is empty or reserved by Socket.IO"
            )));
        }
        let mut items = args_array(args_json, attachments.len())?;
        items.insert(0, Value::String(event.to_string()));
        if !self.sio.is_joined(nsp) {
            return Err(Error::InvalidArgument(format!(
                "namespace {nsp:?} is not joined (sio_join it first)"
            )));
        }
        let id = want_ack.then(|| self.sio.new_ack(nsp));
        let kind = if attachments.is_empty() {
            Kind::Event
        } else {
            Kind::BinaryEvent
        };
        let json = Value::Array(items).to_string();
        let text = packet::encode(kind, nsp, id, attachments.len(), Some(&json));
        let mut group = vec![Message::Text(Utf8Bytes::from(text))];
        group.extend(
            attachments
                .iter()
                .map(|a| Message::Binary(Bytes::copy_from_slice(a))),
        );
        if let Err(e) = self.client.send_group(group) {
            if let Some(id) = id {
                self.sio.cancel_ack(id);
            }
            return Err(e);
        }
        Ok(id)
    }

    /// Answers the server's event that carried `ack_id` with `args_json`.
    pub fn ack(&self, nsp: &str, ack_id: u64, args_json: &str) -> Result<(), Error> {
        self.ack_binary(nsp, ack_id, args_json, &[])
    }

    /// Answers with binary attachments (placed as for `emit_binary`).
    pub fn ack_binary(
        &self,
        nsp: &str,
        ack_id: u64,
        args_json: &str,
        attachments: &[&[u8]],
    ) -> Result<(), Error> {
        check_namespace(nsp)?;
        // The app sees the server's id plus one (0 means "none").
        let Some(server_id) = ack_id.checked_sub(1) else {
            return Err(Error::InvalidArgument(
                "ack id 0 means the event asked for no answer".into(),
            ));
        };
        let items = args_array(args_json, attachments.len())?;
        let kind = if attachments.is_empty() {
            Kind::Ack
        } else {
            Kind::BinaryAck
        };
        let json = Value::Array(items).to_string();
        let text = packet::encode(kind, nsp, Some(server_id), attachments.len(), Some(&json));
        let mut group = vec![Message::Text(Utf8Bytes::from(text))];
        group.extend(
            attachments
                .iter()
                .map(|a| Message::Binary(Bytes::copy_from_slice(a))),
        );
        self.client.send_group(group)
    }

    /// Waits up to `timeout` (`None`: forever) for the next event. Besides
    /// `Event::SocketIo`, it returns `State`, `Reconnecting`, `Error` and
    /// `Terminated`; a lost connection shows as a `Disconnect`
    /// ("transport close") per connected namespace.
    pub fn poll_event(&self, timeout: Option<Duration>) -> Result<Option<Event>, Error> {
        let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
        loop {
            if let Some(event) = self.view.lock().synthesized.pop_front() {
                return Ok(Some(event));
            }
            let left = match deadline {
                Some(d) => Some(d.saturating_duration_since(std::time::Instant::now())),
                None if timeout.is_some() => Some(Duration::ZERO),
                None => None,
            };
            let Some(event) = self.client.poll_event(left)? else {
                return Ok(None);
            };
            if let Some(event) = self.translate(event) {
                return Ok(Some(event));
            }
        }
    }

    /// What the app sees of a session event (`None`: nothing).
    fn translate(&self, event: Event) -> Option<Event> {
        let mut view = self.view.lock();
        match event {
            Event::SocketIo(ref sio) => match sio.as_ref() {
                SioEvent::Connect { nsp, .. } => {
                    view.connected.insert(nsp.clone());
                    Some(event)
                }
                SioEvent::Disconnect { nsp, .. } => view.connected.remove(nsp).then_some(event),
                _ => Some(event),
            },
            Event::State(_) | Event::Reconnecting { .. } | Event::Error { .. } => Some(event),
            Event::Closed { .. } => {
                let lost: Vec<String> = std::mem::take(&mut view.connected).into_iter().collect();
                view.synthesized.extend(lost.into_iter().map(|nsp| {
                    Event::from(SioEvent::Disconnect {
                        nsp,
                        reason: "transport close".into(),
                    })
                }));
                None
            }
            Event::Terminated => {
                let lost: Vec<String> = std::mem::take(&mut view.connected).into_iter().collect();
                for nsp in lost {
                    view.synthesized
                        .push_back(Event::from(SioEvent::Disconnect {
                            nsp,
                            reason: "io client disconnect".into(),
                        }));
                }
                for failed in self.sio.terminate() {
                    view.synthesized.push_back(Event::from(failed));
                }
                view.synthesized.push_back(Event::Terminated);
                None
            }
            // Engine.IO's open, raw messages and outbox reports are not
            // Socket.IO's business.
            Event::Open { .. }
            | Event::Text(_)
            | Event::Binary(_)
            | Event::Resent { .. }
            | Event::ServerSent(_) => None,
        }
    }

    /// Leaves every namespace and closes the connection; events drain to
    /// `Terminated`.
    pub fn close(&self) -> Result<(), Error> {
        self.client.close(1000, "")
    }

    pub fn pause(&self) -> Result<(), Error> {
        self.client.pause()
    }

    pub fn resume(&self) -> Result<(), Error> {
        self.client.resume()
    }

    pub fn network_changed(&self, available: bool) -> Result<(), Error> {
        self.client.network_changed(available)
    }

    pub fn reconnect(&self) -> Result<(), Error> {
        self.client.reconnect()
    }

    /// Sets (or removes) a header of the next handshakes and polling
    /// requests.
    pub fn set_header(&self, name: &str, value: Option<&str>) -> Result<(), Error> {
        self.client.set_header(name, value)
    }

    #[cfg(unix)]
    pub fn event_fd(&self) -> Result<std::os::unix::io::RawFd, Error> {
        self.client.event_fd()
    }

    pub fn stats(&self) -> Stats {
        self.client.stats()
    }

    /// The session underneath (its readiness descriptor, for poll sets).
    pub(crate) fn session(&self) -> &Client {
        &self.client
    }
}

/// The app's arguments as an array, with its attachments placed.
fn args_array(args_json: &str, attachments: usize) -> Result<Vec<Value>, Error> {
    let Value::Array(mut items) = parse_json("args", args_json)? else {
        return Err(Error::InvalidArgument(
            "args must be a JSON array, e.g. [\"hello\", 1]".into(),
        ));
    };
    let seen = packet::referenced_attachments(&Value::Array(items.clone()), attachments)
        .map_err(|e| Error::InvalidArgument(format!("args: {e}")))?;
    for (num, referenced) in seen.into_iter().enumerate() {
        if !referenced {
            items.push(packet::placeholder(num));
        }
    }
    Ok(items)
}

/// The origin and query of an `http(s)://` Socket.IO URL.
fn parse_url(url: &str) -> Result<(Endpoint, Option<String>), Error> {
    let invalid = |why: &str| Err(Error::InvalidArgument(format!("URL: {why}")));
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => ("http", rest),
        Some(("https", rest)) => ("https", rest),
        Some((other, _)) => {
            return invalid(&format!(
                "unsupported scheme {other:?} for Socket.IO; use http or https"
            ))
        }
        None => return invalid("missing scheme; use http:// or https://"),
    };
    if url.contains('#') {
        return invalid("fragments (#…) are not allowed");
    }
    let (authority_and_path, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match authority_and_path.find('/') {
        Some(i) => authority_and_path.split_at(i),
        None => (authority_and_path, ""),
    };
    if !(path.is_empty() || path == "/") {
        return invalid(
            "the URL names no path (namespaces are joined with sio_join, the Engine.IO path is the \"path\" option)",
        );
    }
    if let Some(query) = query {
        if query.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("the query must not contain spaces or control characters");
        }
        for reserved in ["EIO=", "transport=", "sid="] {
            if query.split('&').any(|p| p.starts_with(reserved)) {
                return invalid(&format!(
                    "the query must not set {} (Engine.IO sets it)",
                    reserved.trim_end_matches('=')
                ));
            }
        }
    }
    let endpoint = Endpoint::parse_http(&format!("{scheme}://{authority}/"))?;
    Ok((
        endpoint,
        query.filter(|q| !q.is_empty()).map(str::to_string),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let (e, q) = parse_url("http://127.0.0.1:3000").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls, q),
            ("127.0.0.1", 3000, false, None)
        );
        let (e, q) = parse_url("https://example.com/?token=abc").unwrap();
        assert_eq!(
            (e.port, e.tls, q.as_deref()),
            (443, true, Some("token=abc"))
        );
        for bad in [
            "ws://example.com",
            "example.com",
            "http://example.com/admin",
            "http://example.com/?EIO=3",
            "http://example.com/#x",
            "http://user@example.com/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn options_split_and_refuse_what_does_not_apply() {
        let (sio, options) = parse_options(Some(
            r#"{"transports":["websocket"],"path":"/io","auth":{"t":1},"ack_timeout_ms":500,"connect_timeout_ms":2000}"#,
        ))
        .unwrap();
        assert_eq!(sio.transports, Transports::WebSocketOnly);
        assert_eq!(sio.path, "/io/");
        assert_eq!(sio.auth.as_deref(), Some(r#"{"t":1}"#));
        assert_eq!(sio.ack_timeout, Duration::from_millis(500));
        assert_eq!(options.connect_timeout_ms, 2000);
        let (sio, _) = parse_options(None).unwrap();
        assert_eq!(sio.transports, Transports::PollingThenWebSocket);
        assert_eq!(sio.path, "/socket.io/");
        for bad in [
            r#"{"transports":[]}"#,
            r#"{"transports":["carrier-pigeon"]}"#,
            r#"{"path":"socket.io"}"#,
            r#"{"path":"/a?b"}"#,
            r#"{"auth":"token"}"#,
            r#"{"ack_timeout_ms":0}"#,
            r#"{"ping_interval_ms":1000}"#,
            r#"{"subprotocols":["x"]}"#,
            r#"{"outbox":{"path":"/tmp/x.db"}}"#,
            r#"{"no_such_key":1}"#,
            r#"[1]"#,
        ] {
            assert!(parse_options(Some(bad)).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn attachments_are_placed() {
        let items = args_array(r#"["a"]"#, 2).unwrap();
        assert_eq!(
            Value::Array(items).to_string(),
            r#"["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
        );
        let items = args_array(r#"[{"file":{"_placeholder":true,"num":0}}]"#, 1).unwrap();
        assert_eq!(items.len(), 1);
        assert!(args_array(r#"{"a":1}"#, 0).is_err());
        assert!(args_array(r#"[{"_placeholder":true,"num":3}]"#, 1).is_err());
    }
}
