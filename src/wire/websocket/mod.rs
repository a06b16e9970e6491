//! The WebSocket wire (RFC 6455): the HTTP upgrade (handshake.rs) over
//! whatever byte stream the dialer opens, frames in and out with
//! tokio-tungstenite, and the classification of how a connection ended.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use super::{Ending, HeartbeatPolicy, Incoming, Opened, Outbound, Violation, Wire};
use super::{WireReader, WireWriter};
use crate::error::error_code;
use crate::http::parse_retry_after;
use crate::options::Options;
use crate::queue::{DirectWrite, Message, WriteNow};
use crate::state::End;
use crate::transport::{ConnectError, Dialer, Endpoint, ReadAhead, Transport};

mod handshake;

type Ws = WebSocketStream<ReadAhead<Transport>>;

/// tungstenite's read buffer of a connection, kept for the connection's
/// life: small, so idle connections stay cheap (DESIGN: 12 KiB each at
/// 10,000). tungstenite grows it to the size of each incoming frame, and
/// reads at most this much per call: `ReadAhead` under it makes those calls
/// copies from a 64 KiB read instead of system calls.
const READ_BUFFER_BYTES: usize = 2 * 1024;

/// Opens WebSocket connections to one endpoint.
pub(crate) struct WebSocketWire {
    endpoint: Endpoint,
    dialer: Box<dyn Dialer>,
    subprotocols: Vec<String>,
    config: WebSocketConfig,
    heartbeat: HeartbeatPolicy,
}

impl WebSocketWire {
    pub fn new(endpoint: Endpoint, options: &Options, dialer: Box<dyn Dialer>) -> WebSocketWire {
        let heartbeat = if options.ping_interval_ms == 0 {
            HeartbeatPolicy::Off
        } else {
            HeartbeatPolicy::ClientPings {
                interval: Duration::from_millis(options.ping_interval_ms),
                timeout: Duration::from_millis(options.pong_timeout_ms),
            }
        };
        WebSocketWire {
            endpoint,
            dialer,
            subprotocols: options.subprotocols.clone(),
            config: WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER_BYTES)
                .max_message_size(Some(options.max_message_bytes))
                .max_frame_size(Some(options.max_frame_bytes)),
            heartbeat,
        }
    }

    /// Another heartbeat than the options' (Engine.IO's server pings, the
    /// driver's tests).
    pub fn with_heartbeat(mut self, heartbeat: HeartbeatPolicy) -> WebSocketWire {
        self.heartbeat = heartbeat;
        self
    }

    /// TCP, TLS and the HTTP upgrade. Errors never include header values.
    async fn handshake(
        &self,
        headers: &BTreeMap<String, String>,
    ) -> Result<(Ws, Option<String>), Ending> {
        let mut transport = self
            .dialer
            .dial(&self.endpoint)
            .await
            .map_err(|e| connect_ending(e, &self.endpoint))?;
        let upgraded =
            handshake::upgrade(&mut transport, &self.endpoint, &self.subprotocols, headers).await?;
        let transport = ReadAhead::new(transport);
        // Only a non-empty leftover goes through `from_partially_read`: its
        // read buffer starts at the leftover's capacity, and an empty one
        // would make every later frame allocate a buffer of its own size
        // (one read, one allocation per frame while the app holds the last).
        let ws = if upgraded.leftover.is_empty() {
            WebSocketStream::from_raw_socket(transport, Role::Client, Some(self.config)).await
        } else {
            WebSocketStream::from_partially_read(
                transport,
                upgraded.leftover,
                Role::Client,
                Some(self.config),
            )
            .await
        };
        Ok((ws, upgraded.protocol))
    }
}

impl Wire for WebSocketWire {
    type Reader = WebSocketReader;
    type Writer = WebSocketWriter;

    async fn open(
        &mut self,
        headers: &BTreeMap<String, String>,
    ) -> Result<Opened<WebSocketReader, WebSocketWriter>, Ending> {
        let (ws, protocol) = self.handshake(headers).await?;
        let (sink, stream) = ws.split();
        Ok(Opened {
            reader: WebSocketReader {
                stream,
                peer_close: None,
            },
            writer: WebSocketWriter { sink },
            protocol,
            heartbeat: self.heartbeat,
        })
    }

    fn describe(&self) -> String {
        let via = if self.dialer.through_proxy() {
            " through the proxy"
        } else {
            ""
        };
        format!("{}:{}{via}", self.endpoint.host, self.endpoint.port)
    }
}

pub(crate) struct WebSocketReader {
    stream: SplitStream<Ws>,
    /// The peer's Close frame, once it came.
    peer_close: Option<(u16, String)>,
}

impl WireReader for WebSocketReader {
    async fn next(&mut self) -> Incoming {
        match self.stream.next().await {
            Some(Ok(WsMessage::Text(text))) => Incoming::Text(text),
            Some(Ok(WsMessage::Binary(data))) => Incoming::Binary(data),
            Some(Ok(WsMessage::Pong(payload))) => Incoming::Pong(payload),
            // tungstenite answers Pings itself.
            Some(Ok(WsMessage::Ping(_) | WsMessage::Frame(_))) => Incoming::Control,
            // tungstenite answers a Close frame whose code no endpoint may
            // send (RFC 6455 7.4) with 1002 and hands us that answer in its
            // place; this text is how it can be told from a peer's own 1002.
            Some(Ok(WsMessage::Close(Some(frame))))
                if frame.code == CloseCode::Protocol && frame.reason == "Protocol violation" =>
            {
                Incoming::End(Ending::violated(
                    Violation::Protocol,
                    error_code::PROTOCOL,
                    "the peer closed with 1002: it sent a close code no endpoint may send, \
                     or it says we broke the protocol"
                        .into(),
                ))
            }
            Some(Ok(WsMessage::Close(frame))) => {
                let (code, reason) = match frame {
                    Some(f) => (u16::from(f.code), f.reason.to_string()),
                    None => (1005, String::new()),
                };
                self.peer_close = Some((code, reason.clone()));
                Incoming::Close { code, reason }
            }
            Some(Err(e)) => Incoming::End(read_error_ending(e, self.peer_close.take())),
            // The close handshake completed and the server closed TCP.
            None => {
                let (code, reason) = self.peer_close.take().unwrap_or((1005, String::new()));
                Incoming::End(Ending::peer_closed(code, reason))
            }
        }
    }
}

pub(crate) struct WebSocketWriter {
    sink: SplitSink<Ws, WsMessage>,
}

impl WireWriter for WebSocketWriter {
    async fn ready(&mut self) -> Result<(), Ending> {
        poll_fn(|cx| self.sink.poll_ready_unpin(cx))
            .await
            .map_err(write_error_ending)
    }

    fn start(&mut self, frame: Outbound) -> Result<(), Ending> {
        let message = match frame {
            Outbound::Message(message) => Self::as_frame(message),
            Outbound::Ping(payload) => WsMessage::Ping(payload),
            Outbound::Close { code, reason } => WsMessage::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.as_str().into(),
            })),
        };
        self.sink
            .start_send_unpin(message)
            .map_err(write_error_ending)
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        self.sink.flush().await.map_err(write_error_ending)
    }

    fn into_direct(self) -> Result<Box<dyn DirectWrite>, Self> {
        Ok(Box::new(self))
    }
}

impl WebSocketWriter {
    fn as_frame(message: Message) -> WsMessage {
        match message {
            Message::Text(text) => WsMessage::Text(text),
            Message::Binary(data) => WsMessage::Binary(data),
        }
    }
}

/// A send on the app's thread while the connection task has nothing to
/// write. Polled with a no-op waker: whatever cannot finish now goes back
/// to the task (`Unfinished`, `Refused`), whose own poll registers the
/// waker that counts, so no wakeup is lost.
impl DirectWrite for WebSocketWriter {
    fn write_now(&mut self, message: Message) -> WriteNow {
        let mut cx = Context::from_waker(Waker::noop());
        // An error: the connection is broken, which the task finds itself.
        if !matches!(self.sink.poll_ready_unpin(&mut cx), Poll::Ready(Ok(()))) {
            return WriteNow::Refused(message);
        }
        if self.sink.start_send_unpin(Self::as_frame(message)).is_err() {
            return WriteNow::Unfinished;
        }
        match self.sink.poll_flush_unpin(&mut cx) {
            Poll::Ready(Ok(())) => WriteNow::Written,
            // Taken, and the reader held the connection this instant, or the
            // socket is full or broken: the task's flush finishes the write
            // or meets the error (as a frame it had written itself would).
            Poll::Ready(Err(_)) | Poll::Pending => WriteNow::Unfinished,
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// How a failure to open the byte stream ends the attempt.
fn connect_ending(error: ConnectError, endpoint: &Endpoint) -> Ending {
    crate::http::connect_error(error, endpoint).into()
}

#[cfg(test)]
fn tls_ending(error: std::io::Error) -> Ending {
    crate::http::tls_error(error).into()
}

/// How a read error ends an open connection. `peer_close`: the peer's
/// Close frame, if it had sent one.
fn read_error_ending(error: WsError, peer_close: Option<(u16, String)>) -> Ending {
    let lost = |detail: String| {
        Ending::abnormal(
            End::Lost,
            error_code::CONNECTION_LOST,
            format!("connection lost: {detail}"),
        )
    };
    match (error, peer_close) {
        // A peer that sent its Close frame may hang up without waiting.
        (
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) | WsError::Io(_),
            Some((code, reason)),
        ) => Ending::peer_closed(code, reason),
        (WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake), None) => {
            lost("the server closed TCP without a close handshake".into())
        }
        (WsError::Io(e), None) => lost(e.to_string()),
        (WsError::Tls(e), _) => lost(format!("TLS: {e}")),
        (WsError::Capacity(e), _) => {
            let detail = match e {
                CapacityError::MessageTooLong { size, max_size } => {
                    format!("incoming message of {size} bytes exceeds the limit of {max_size}")
                }
                other => other.to_string(),
            };
            Ending::violated(Violation::TooBig, error_code::MESSAGE_TOO_BIG, detail)
        }
        (WsError::Utf8(detail), _) => Ending::violated(
            Violation::InvalidUtf8,
            error_code::PROTOCOL,
            format!("peer sent text that is not UTF-8: {detail}"),
        ),
        (other, _) => Ending::violated(
            Violation::Protocol,
            error_code::PROTOCOL,
            format!("peer broke the WebSocket protocol: {other}"),
        ),
    }
}

fn write_error_ending(error: WsError) -> Ending {
    Ending::abnormal(
        End::Lost,
        error_code::CONNECTION_LOST,
        format!("connection lost while writing: {error}"),
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

    #[test]
    fn hostile_retry_after_values_neither_panic_nor_overflow() {
        let huge = "9".repeat(400);
        assert_eq!(
            parse_retry_after(&huge),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("18446744073709551615"),
            Some(Duration::from_secs(u64::MAX))
        );
        for ignored in [
            "-5",
            "",
            " ",
            "1.5",
            "+3",
            "0x10",
            "Fri, 99 Foo 9999 99:99:99 GMT",
        ] {
            assert_eq!(parse_retry_after(ignored), None, "{ignored:?}");
        }
        let far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT").unwrap();
        assert!(far > Duration::from_secs(86_400 * 365 * 7000));
    }

    fn io_error() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset")
    }

    #[test]
    fn a_reset_after_the_peers_close_is_that_close() {
        let ending = read_error_ending(
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            Some((1012, "restart".into())),
        );
        assert_eq!(ending, Ending::peer_closed(1012, "restart".into()));
        let ending = read_error_ending(WsError::Io(io_error()), Some((1000, String::new())));
        assert_eq!(ending.end, End::PeerClose(1000));
    }

    #[test]
    fn a_reset_without_a_close_is_a_lost_connection() {
        for error in [
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            WsError::Io(io_error()),
        ] {
            let ending = read_error_ending(error, None);
            assert_eq!(ending.end, End::Lost);
            assert_eq!(ending.closed, Some((1006, String::new())));
            assert_eq!(ending.error.unwrap().0, error_code::CONNECTION_LOST);
            assert_eq!(ending.violation, None);
        }
    }

    #[test]
    fn violations_are_typed_by_what_the_peer_broke() {
        let too_big = read_error_ending(
            WsError::Capacity(CapacityError::MessageTooLong {
                size: 10,
                max_size: 5,
            }),
            None,
        );
        assert_eq!(too_big.violation, Some(Violation::TooBig));
        assert_eq!(too_big.error.unwrap().0, error_code::MESSAGE_TOO_BIG);
        let utf8 = read_error_ending(WsError::Utf8("bad byte".into()), None);
        assert_eq!(utf8.violation, Some(Violation::InvalidUtf8));
        assert_eq!(utf8.end, End::ProtocolViolation);
        let frame = read_error_ending(WsError::Protocol(ProtocolError::NonZeroReservedBits), None);
        assert_eq!(frame.violation, Some(Violation::Protocol));
        assert_eq!(frame.error.unwrap().0, error_code::PROTOCOL);
    }

    #[test]
    fn certificate_failures_are_configuration_and_others_are_lost() {
        let untrusted = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let ending = tls_ending(untrusted);
        assert_eq!(ending.end, End::Configuration);
        assert_eq!(ending.error.unwrap().0, error_code::TLS_UNTRUSTED);
        let pin = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ),
        );
        assert_eq!(tls_ending(pin).error.unwrap().0, error_code::TLS_PIN);
        assert_eq!(tls_ending(io_error()).end, End::Lost);
    }

    #[test]
    fn proxy_failures_say_whether_retrying_can_help() {
        let endpoint = Endpoint::parse("ws://127.0.0.1:9/").unwrap();
        let auth = connect_ending(ConnectError::Proxy("407".into(), Some(407)), &endpoint);
        assert_eq!(auth.end, End::Configuration);
        let down = connect_ending(ConnectError::Proxy("down".into(), None), &endpoint);
        assert_eq!(down.end, End::ConnectFailed);
        let tcp = connect_ending(ConnectError::Tcp(io_error()), &endpoint);
        assert_eq!(tcp.end, End::ConnectFailed);
        assert_eq!(tcp.error.unwrap().0, error_code::CONNECT);
    }
}
