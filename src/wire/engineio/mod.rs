//! The Engine.IO v4 wire: the transport under Socket.IO. It opens a
//! session over HTTP long-polling (then upgrades to WebSocket when the
//! server offers it) or over WebSocket directly, answers the server's
//! pings, and carries Engine.IO messages as text or binary messages.
//!
//! The server pings: the link is dead once nothing came for `pingInterval
//! + pingTimeout` ([`HeartbeatPolicy::PeerPings`]); a ping is answered by
//! the writer (the reader asks the driver to flush, [`Incoming::Flush`]).

pub(crate) mod packet;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::websocket::{WebSocketReader, WebSocketWire, WebSocketWriter};
use super::{Ending, HeartbeatPolicy, Incoming, Opened, Outbound, Violation};
use super::{WireReader, WireWriter};
use crate::error::{error_code, Error};
use crate::options::Options;
use crate::queue::Message;
use crate::state::End;
use crate::transport::{Dialer, Endpoint};
use packet::{Handshake, Packet};

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
            target.push_str("&sid=");
            target.push_str(sid);
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
            Transports::PollingOnly | Transports::PollingThenWebSocket => Err(Ending::failed(
                End::Configuration,
                error_code::HANDSHAKE,
                "HTTP long-polling is not available in this build; use \"transports\": [\"websocket\"]"
                    .into(),
            )),
        }
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
            Incoming::End(ending) => return Err(ending),
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

fn handshake_violation(why: String) -> Ending {
    Ending {
        end: End::ConnectFailed,
        ..Ending::violated(Violation::Protocol, error_code::HANDSHAKE, why)
    }
}

/// What the halves of one Engine.IO connection share.
#[derive(Default)]
struct EngineLink {
    /// Pongs owed to the server's pings, oldest first.
    pongs: Mutex<Vec<String>>,
}

enum ReaderTransport {
    WebSocket(WebSocketReader),
}

enum WriterTransport {
    WebSocket(WebSocketWriter),
}

pub(crate) struct EngineReader {
    transport: ReaderTransport,
    link: Arc<EngineLink>,
}

impl EngineReader {
    /// One Engine.IO packet as the driver sees it.
    fn on_packet(&self, packet: Packet) -> Option<Incoming> {
        match packet {
            Packet::Message(Message::Text(text)) => Some(Incoming::Text(text)),
            Packet::Message(Message::Binary(data)) => Some(Incoming::Binary(data)),
            Packet::Ping(data) => {
                self.link.pongs.lock().push(data);
                Some(Incoming::Flush)
            }
            Packet::Close => Some(Incoming::End(Ending::abnormal(
                End::Lost,
                error_code::CONNECTION_LOST,
                "the server closed the Engine.IO session".into(),
            ))),
            Packet::Pong(_) | Packet::Noop | Packet::Upgrade | Packet::Open(_) => {
                Some(Incoming::Control)
            }
        }
    }
}

impl WireReader for EngineReader {
    async fn next(&mut self) -> Incoming {
        let ReaderTransport::WebSocket(ws) = &mut self.transport;
        let incoming = ws.next().await;
        match incoming {
            Incoming::Text(text) => match packet::decode_text(&text) {
                Ok(packet) => self.on_packet(packet).unwrap_or(Incoming::Control),
                Err(e) => Incoming::End(Ending::violated(
                    Violation::Protocol,
                    error_code::PROTOCOL,
                    e,
                )),
            },
            // Over WebSocket a binary frame is a binary message.
            other => other,
        }
    }
}

pub(crate) struct EngineWriter {
    transport: WriterTransport,
    link: Arc<EngineLink>,
}

impl WireWriter for EngineWriter {
    async fn ready(&mut self) -> Result<(), Ending> {
        let WriterTransport::WebSocket(ws) = &mut self.transport;
        ws.ready().await
    }

    fn start(&mut self, frame: Outbound) -> Result<(), Ending> {
        let WriterTransport::WebSocket(ws) = &mut self.transport;
        let frame = match frame {
            Outbound::Message(Message::Text(text)) => {
                let text = packet::encode_text(&Packet::Message(Message::Text(text)));
                Outbound::Message(Message::Text(Utf8Bytes::from(text)))
            }
            other => other,
        };
        ws.start(frame)
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        let WriterTransport::WebSocket(ws) = &mut self.transport;
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
}
