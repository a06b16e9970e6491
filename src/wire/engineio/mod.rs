//! The Engine.IO v4 wire: the transport under Socket.IO. It opens a
//! session over HTTP long-polling (then upgrades to WebSocket when the
//! server offers it) or over WebSocket directly, answers the server's
//! pings, and carries Engine.IO messages as text or binary messages.
//!
//! The server pings: the link is dead once nothing came for `pingInterval
//! + pingTimeout` ([`HeartbeatPolicy::PeerPings`]); a ping is answered by
//! the writer (the reader asks the driver to flush, [`Incoming::Flush`]).

pub(crate) mod packet;
mod polling;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::websocket::{WebSocketReader, WebSocketWire, WebSocketWriter};
use super::{Ending, HeartbeatPolicy, Incoming, Opened, Outbound, Violation};
use super::{WireReader, WireWriter};
use crate::error::{error_code, Error};
use crate::http::HttpClient;
use crate::logging::log;
use crate::options::Options;
use crate::queue::Message;
use crate::state::End;
use crate::transport::{Dialer, Endpoint};
use packet::{Handshake, Packet, Payload};
use polling::{PollTarget, PollingReader, PollingWriter};

/// Which transports a client may use (the `"transports"` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transports {
    /// Long-polling first, then the upgrade to WebSocket if offered.
    PollingThenWebSocket,
    PollingOnly,
    WebSocketOnly,
}

impl Transports {
    pub fn parse(names: &[String]) -> Result<Transports, Error> {
        let polling = names.iter().any(|n| n == "polling");
        let websocket = names.iter().any(|n| n == "websocket");
        if let Some(other) = names.iter().find(|n| *n != "polling" && *n != "websocket") {
            return Err(Error::InvalidArgument(format!(
                "transports: unknown transport {other:?} (use \"polling\" and/or \"websocket\")"
            )));
        }
        match (polling, websocket) {
            (true, true) => Ok(Transports::PollingThenWebSocket),
            (true, false) => Ok(Transports::PollingOnly),
            (false, true) => Ok(Transports::WebSocketOnly),
            (false, false) => Err(Error::InvalidArgument(
                "transports: name at least one of \"polling\" and \"websocket\"".into(),
            )),
        }
    }
}

/// Where and how one client opens its Engine.IO sessions.
pub(crate) struct EngineConfig {
    /// The server's `http(s)://` origin (scheme, host, port).
    pub origin: Endpoint,
    /// The Engine.IO path, e.g. `/socket.io/`, and the URL's own query.
    pub path: String,
    pub query: Option<String>,
    pub transports: Transports,
    pub dialer: Arc<dyn Dialer>,
    pub options: Options,
}

/// A dialer shared by the transports of one client.
struct SharedDialer(Arc<dyn Dialer>);

impl Dialer for SharedDialer {
    fn dial<'a>(
        &'a self,
        endpoint: &'a Endpoint,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<crate::transport::Transport, crate::transport::ConnectError>,
    > {
        self.0.dial(endpoint)
    }

    fn through_proxy(&self) -> bool {
        self.0.through_proxy()
    }
}

impl EngineConfig {
    /// The URL of a request of `transport` (`sid` once the session exists).
    fn request_target(&self, transport: &str, sid: Option<&str>) -> String {
        let mut target = format!("{}?EIO=4&transport={transport}", self.path);
        if let Some(sid) = sid {
            // The server chose it: whatever it holds (`&`, spaces, `#`)
            // stays one query value, never another parameter or a broken
            // request line.
            target.push_str("&sid=");
            push_query_value(&mut target, sid);
        }
        if let Some(query) = &self.query {
            target.push('&');
            target.push_str(query);
        }
        target
    }

    fn websocket_endpoint(&self, sid: Option<&str>) -> Result<Endpoint, Ending> {
        let scheme = if self.origin.tls { "wss" } else { "ws" };
        let host = if self.origin.host.contains(':') {
            format!("[{}]", self.origin.host)
        } else {
            self.origin.host.clone()
        };
        let url = format!(
            "{scheme}://{host}:{}{}",
            self.origin.port,
            self.request_target("websocket", sid)
        );
        Endpoint::parse(&url)
            .map_err(|e| Ending::failed(End::Configuration, error_code::HANDSHAKE, e.to_string()))
    }

    pub fn describe(&self) -> String {
        let via = if self.dialer.through_proxy() {
            " through the proxy"
        } else {
            ""
        };
        format!(
            "{}:{}{}{via}",
            self.origin.host, self.origin.port, self.path
        )
    }

    /// Opens one Engine.IO session.
    pub async fn open(
        &self,
        headers: &BTreeMap<String, String>,
    ) -> Result<(Opened<EngineReader, EngineWriter>, Handshake), Ending> {
        match self.transports {
            Transports::WebSocketOnly => self.open_websocket(headers).await,
            Transports::PollingOnly | Transports::PollingThenWebSocket => {
                self.open_polling(headers).await
            }
        }
    }

    /// Long-polling first: the handshake GET, then the upgrade to
    /// WebSocket if the server offers it and the options allow it.
    async fn open_polling(
        &self,
        headers: &BTreeMap<String, String>,
    ) -> Result<(Opened<EngineReader, EngineWriter>, Handshake), Ending> {
        let limit = self.options.max_message_bytes;
        let mut target = PollTarget {
            http: HttpClient::new(self.origin.clone(), self.dialer.clone()),
            target: self.request_target("polling", None),
            headers: headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut packets = polling::handshake(target.clone(), limit).await?;
        let handshake = match packets.next() {
            Some(Ok(Packet::Open(handshake))) => handshake,
            Some(Err(e)) => {
                return Err(Ending::failed(End::ConnectFailed, error_code::HANDSHAKE, e))
            }
            _ => {
                return Err(handshake_violation(
                    "the handshake answer did not start with the open packet".into(),
                ))
            }
        };
        target.target = self.request_target("polling", Some(&handshake.sid));
        let heartbeat = HeartbeatPolicy::PeerPings {
            silence: handshake.silence_limit(),
        };
        let link = Arc::new(EngineLink::default());
        let offered = handshake.upgrades.iter().any(|u| u == "websocket");
        if self.transports == Transports::PollingThenWebSocket && offered {
            // Bounded on its own: a failed probe falls back to polling
            // within the attempt's connect timeout.
            let limit = self.options.connect_timeout() / 2;
            match tokio::time::timeout(limit, self.upgrade(headers, &handshake.sid)).await {
                Ok(Ok((reader, writer))) => {
                    return Ok((
                        Opened {
                            reader: EngineReader {
                                transport: ReaderTransport::WebSocket(reader),
                                pending: packets,
                                link: link.clone(),
                            },
                            writer: EngineWriter {
                                transport: WriterTransport::WebSocket(writer),
                                link,
                            },
                            protocol: None,
                            heartbeat,
                        },
                        handshake,
                    ));
                }
                Ok(Err(why)) => log!(Info, "{}: staying on long-polling: {why}", self.describe()),
                Err(_) => log!(
                    Info,
                    "{}: staying on long-polling: the WebSocket probe timed out",
                    self.describe()
                ),
            }
        }
        Ok((
            Opened {
                reader: EngineReader {
                    transport: ReaderTransport::Polling(PollingReader::new(target.clone(), limit)),
                    pending: packets,
                    link: link.clone(),
                },
                writer: EngineWriter {
                    transport: WriterTransport::Polling(PollingWriter::new(
                        target,
                        handshake.max_payload,
                    )),
                    link,
                },
                protocol: None,
                heartbeat,
            },
            handshake,
        ))
    }

    /// The upgrade of a polling session: a WebSocket with its sid, the
    /// `2probe`/`3probe` exchange, then `5` makes it the transport.
    async fn upgrade(
        &self,
        headers: &BTreeMap<String, String>,
        sid: &str,
    ) -> Result<(WebSocketReader, WebSocketWriter), String> {
        let endpoint = self
            .websocket_endpoint(Some(sid))
            .map_err(describe_ending)?;
        let mut ws = WebSocketWire::new(
            endpoint,
            &self.options,
            Box::new(SharedDialer(self.dialer.clone())),
        )
        .with_heartbeat(HeartbeatPolicy::Off);
        let opened = super::Wire::open(&mut ws, headers)
            .await
            .map_err(describe_ending)?;
        let (mut reader, mut writer) = (opened.reader, opened.writer);
        send_text(&mut writer, "2probe").await?;
        match reader.next().await {
            Incoming::Text(text) if text.as_str() == "3probe" => {}
            other => return Err(format!("the server answered the probe with {other:?}")),
        }
        send_text(&mut writer, "5").await?;
        Ok((reader, writer))
    }

    /// A WebSocket from the start: the first frame is the open packet.
    async fn open_websocket(
        &self,
        headers: &BTreeMap<String, String>,
    ) -> Result<(Opened<EngineReader, EngineWriter>, Handshake), Ending> {
        let endpoint = self.websocket_endpoint(None)?;
        let mut ws = WebSocketWire::new(
            endpoint,
            &self.options,
            Box::new(SharedDialer(self.dialer.clone())),
        )
        .with_heartbeat(HeartbeatPolicy::Off);
        let opened = super::Wire::open(&mut ws, headers).await?;
        let mut reader = opened.reader;
        let handshake = match reader.next().await {
            Incoming::Text(text) => match packet::decode_text(&text) {
                Ok(Packet::Open(handshake)) => handshake,
                Ok(_) => {
                    return Err(handshake_violation(
                        "the first packet was not the open packet".into(),
                    ))
                }
                Err(e) => return Err(handshake_violation(e)),
            },
            // A broken or oversized first frame fails this attempt only.
            Incoming::End(mut ending) => {
                if ending.end == End::ProtocolViolation {
                    ending.end = End::ConnectFailed;
                }
                return Err(ending);
            }
            _ => {
                return Err(handshake_violation(
                    "the first frame was not the open packet".into(),
                ))
            }
        };
        let link = Arc::new(EngineLink::default());
        Ok((
            Opened {
                reader: EngineReader {
                    transport: ReaderTransport::WebSocket(reader),
                    pending: Payload::default(),
                    link: link.clone(),
                },
                writer: EngineWriter {
                    transport: WriterTransport::WebSocket(opened.writer),
                    link,
                },
                protocol: None,
                heartbeat: HeartbeatPolicy::PeerPings {
                    silence: handshake.silence_limit(),
                },
            },
            handshake,
        ))
    }
}

/// Appends `value` percent-encoded (RFC 3986: all but unreserved bytes).
fn push_query_value(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

async fn send_text(writer: &mut WebSocketWriter, text: &str) -> Result<(), String> {
    let frame = Outbound::Message(Message::Text(Utf8Bytes::from(text.to_string())));
    writer.ready().await.map_err(describe_ending)?;
    writer.start(frame).map_err(describe_ending)?;
    writer.flush().await.map_err(describe_ending)
}

fn describe_ending(ending: Ending) -> String {
    ending
        .error
        .map_or_else(|| format!("{:?}", ending.end), |(_, message)| message)
}

/// The server broke Engine.IO or Socket.IO on an open session (a packet
/// that does not parse, a payload over the limits): the client tells it
/// why and hangs up (the violation's close), then reconnects, as Socket.IO
/// clients do after a parse error. A garbled session is lost, not a
/// configuration error: the next one may well be fine (a proxy that
/// mangled a response, a server restarted mid-write), and the backoff
/// keeps a server that always does it from being hammered.
pub(crate) fn broken(violation: Violation, code: i32, why: String) -> Ending {
    Ending {
        end: End::Lost,
        ..Ending::violated(violation, code, why)
    }
}

fn handshake_violation(why: String) -> Ending {
    Ending {
        end: End::ConnectFailed,
        ..Ending::violated(Violation::Protocol, error_code::HANDSHAKE, why)
    }
}

/// What the halves of one Engine.IO connection share.
#[derive(Default)]
pub(crate) struct EngineLink {
    /// The pong owed to the server's pings (at most one).
    pongs: Mutex<Vec<String>>,
    /// Our close packet was taken (polling).
    closing: AtomicBool,
    /// …and posted: the session is over, the reader ends.
    close_done: AtomicBool,
    close_posted: Notify,
}

impl EngineLink {
    fn take_pongs(&self) -> Vec<String> {
        std::mem::take(&mut *self.pongs.lock())
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    fn close_done(&self) -> bool {
        self.close_done.load(Ordering::Acquire)
    }

    fn set_close_done(&self) {
        self.close_done.store(true, Ordering::Release);
        // One reader waits; a permit is kept if it is not waiting yet.
        self.close_posted.notify_one();
    }

    async fn close_done_notified(&self) {
        self.close_posted.notified().await
    }
}

enum ReaderTransport {
    WebSocket(WebSocketReader),
    Polling(PollingReader),
}

enum WriterTransport {
    WebSocket(WebSocketWriter),
    Polling(PollingWriter),
}

pub(crate) struct EngineReader {
    transport: ReaderTransport,
    /// Packets that came with the handshake, handed on first.
    pending: Payload,
    link: Arc<EngineLink>,
}

impl EngineReader {
    /// One Engine.IO packet as the driver sees it.
    fn on_packet(&self, packet: Packet) -> Incoming {
        match packet {
            Packet::Message(Message::Text(text)) => Incoming::Text(text),
            Packet::Message(Message::Binary(data)) => Incoming::Binary(data),
            Packet::Message(masked @ Message::Masked(_)) => {
                self.on_packet(Packet::Message(masked.unmasked()))
            }
            Packet::Ping(data) => {
                // One pong owed answers every ping before it is written:
                // a server that floods pings is not flooded back (one POST
                // per pong), and what is owed stays bounded.
                let mut pongs = self.link.pongs.lock();
                if pongs.is_empty() {
                    pongs.push(data);
                    Incoming::Flush
                } else {
                    Incoming::Control
                }
            }
            // Our own close, answered.
            Packet::Close if self.link.closing() => {
                Incoming::End(Ending::peer_closed(1000, String::new()))
            }
            // The server ended the session (a restart, a shutdown): lost,
            // so the driver reconnects.
            Packet::Close => Incoming::End(Ending::abnormal(
                End::Lost,
                error_code::CONNECTION_LOST,
                "the server closed the Engine.IO session".into(),
            )),
            Packet::Pong(_) | Packet::Noop | Packet::Upgrade | Packet::Open(_) => Incoming::Control,
        }
    }
}

impl WireReader for EngineReader {
    async fn next(&mut self) -> Incoming {
        if let Some(next) = self.pending.next() {
            return match next {
                Ok(packet) => self.on_packet(packet),
                Err(e) => Incoming::End(broken(Violation::Protocol, error_code::PROTOCOL, e)),
            };
        }
        match &mut self.transport {
            ReaderTransport::WebSocket(ws) => match ws.next().await {
                Incoming::Text(text) => match packet::decode_text(&text) {
                    Ok(packet) => self.on_packet(packet),
                    Err(e) => Incoming::End(broken(Violation::Protocol, error_code::PROTOCOL, e)),
                },
                // The server closing the WebSocket is its Engine.IO session
                // ending (a restart, `socket.conn.close()`): the client
                // reconnects whatever close code it gave, as Socket.IO
                // clients do.
                Incoming::Close { code, reason } if !self.link.closing() => Incoming::Close {
                    code: reconnectable(code),
                    reason,
                },
                Incoming::End(mut ending) if !self.link.closing() => {
                    match ending.end {
                        End::PeerClose(code) => ending.end = End::PeerClose(reconnectable(code)),
                        // A broken frame ends the session like a broken
                        // packet: the client reconnects.
                        End::ProtocolViolation => ending.end = End::Lost,
                        _ => {}
                    }
                    Incoming::End(ending)
                }
                // Over WebSocket a binary frame is a binary message.
                other => other,
            },
            ReaderTransport::Polling(polling) => match polling.next_packet(&self.link).await {
                Ok(packet) => self.on_packet(packet),
                Err(incoming) => incoming,
            },
        }
    }
}

/// A close code the session driver reconnects after (1001, going away)
/// in place of a normal closure or none (Engine.IO servers close with no
/// status, 1005).
fn reconnectable(code: u16) -> u16 {
    match code {
        1000 | 1005 => 1001,
        other => other,
    }
}

pub(crate) struct EngineWriter {
    transport: WriterTransport,
    link: Arc<EngineLink>,
}

impl WireWriter for EngineWriter {
    async fn ready(&mut self) -> Result<(), Ending> {
        match &mut self.transport {
            WriterTransport::WebSocket(ws) => ws.ready().await,
            // Full payloads wait for their POST: post them first.
            WriterTransport::Polling(polling) if polling.backlog() > 0 => {
                polling.flush(&self.link).await
            }
            WriterTransport::Polling(_) => Ok(()),
        }
    }

    fn start(&mut self, frame: Outbound) -> Result<(), Ending> {
        match &mut self.transport {
            WriterTransport::WebSocket(ws) => {
                let frame = match frame {
                    Outbound::Message(message @ Message::Masked(_)) => {
                        return self.start(Outbound::Message(message.unmasked()));
                    }
                    Outbound::Message(Message::Text(text)) => {
                        let text = packet::encode_text(&Packet::Message(Message::Text(text)));
                        Outbound::Message(Message::Text(Utf8Bytes::from(text)))
                    }
                    Outbound::Close { code, reason } => {
                        self.link.set_closing();
                        Outbound::Close { code, reason }
                    }
                    other => other,
                };
                ws.start(frame)
            }
            WriterTransport::Polling(polling) => {
                polling.start(frame, &self.link);
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        match &mut self.transport {
            WriterTransport::WebSocket(ws) => {
                loop {
                    if self.link.pongs.lock().is_empty() {
                        break;
                    }
                    ws.ready().await?;
                    let Some(data) = ({
                        let mut pongs = self.link.pongs.lock();
                        (!pongs.is_empty()).then(|| pongs.remove(0))
                    }) else {
                        break;
                    };
                    let pong = packet::encode_text(&Packet::Pong(data));
                    ws.start(Outbound::Message(Message::Text(Utf8Bytes::from(pong))))?;
                }
                ws.flush().await
            }
            WriterTransport::Polling(polling) => polling.flush(&self.link).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_percent_encoded_in_request_targets() {
        let mut out = String::new();
        push_query_value(&mut out, "aZ9-._~ b&c=d/é%");
        assert_eq!(out, "aZ9-._~%20b%26c%3Dd%2F%C3%A9%25");
    }

    #[test]
    fn transports_option() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Transports::parse(&names(&["polling", "websocket"])).unwrap(),
            Transports::PollingThenWebSocket
        );
        assert_eq!(
            Transports::parse(&names(&["websocket", "polling"])).unwrap(),
            Transports::PollingThenWebSocket
        );
        assert_eq!(
            Transports::parse(&names(&["polling"])).unwrap(),
            Transports::PollingOnly
        );
        assert_eq!(
            Transports::parse(&names(&["websocket"])).unwrap(),
            Transports::WebSocketOnly
        );
        assert!(Transports::parse(&names(&[])).is_err());
        assert!(Transports::parse(&names(&["webtransport"])).is_err());
    }
}
