//! The WebSocket wire (RFC 6455): the HTTP upgrade (handshake.rs) over
//! whatever byte stream the dialer opens, frames in and out with
//! tokio-tungstenite, and the classification of how a connection ended.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::WebSocketStream;

use super::{Ending, HeartbeatPolicy, Incoming, Opened, Outbound, Violation, Wire};
use super::{WireReader, WireWriter};
use crate::error::error_code;
use crate::frame::masked_frame;
use crate::http::parse_retry_after;
use crate::options::Options;
use crate::queue::{DirectWrite, Message, WriteNow};
use crate::state::End;
use crate::transport::{ConnectError, Dialer, DirectOutcome, Endpoint, SharedTcp, Transport};

mod handshake;
mod read_ahead;

use read_ahead::{Lifted, ReadAhead};

type Ws = WebSocketStream<ReadAhead<Transport>>;

/// tungstenite's read buffer of a connection, kept (and zero-filled, so
/// resident) for the connection's life: small, so idle connections stay
/// cheap (DESIGN: 12 KiB each at 10,000; 2 KiB here measured 0.7 KiB
/// more). tungstenite grows it to the size of each incoming frame it
/// reads, and reads at most this much per call: `ReadAhead` under it makes
/// those calls copies from a 64 KiB read instead of system calls, and takes
/// large binary frames past it.
const READ_BUFFER_BYTES: usize = 1024;

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
    async fn handshake(&self, headers: &BTreeMap<String, String>) -> Result<Handshaken, Ending> {
        let mut transport = self
            .dialer
            .dial(&self.endpoint)
            .await
            .map_err(|e| connect_ending(e, &self.endpoint))?;
        let upgraded =
            handshake::upgrade(&mut transport, &self.endpoint, &self.subprotocols, headers).await?;
        let direct = transport.shared_tcp();
        // tungstenite fails a frame above either limit: such a frame is not lifted.
        let lift_max = [self.config.max_frame_size, self.config.max_message_size]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(usize::MAX);
        // The leftover goes through ReadAhead, which sees every frame header.
        let transport = ReadAhead::new(transport, upgraded.leftover, lift_max);
        let lifted = transport.lifted();
        let ws = WebSocketStream::from_raw_socket(transport, Role::Client, Some(self.config)).await;
        Ok(Handshaken {
            ws,
            protocol: upgraded.protocol,
            direct,
            lifted,
        })
    }
}

/// An open WebSocket connection, before the split.
struct Handshaken {
    ws: Ws,
    protocol: Option<String>,
    /// The plain TCP connection under `ws` (none over TLS).
    direct: Option<Arc<SharedTcp>>,
    lifted: Arc<Lifted>,
}

impl Wire for WebSocketWire {
    type Reader = WebSocketReader;
    type Writer = WebSocketWriter;

    async fn open(
        &mut self,
        headers: &BTreeMap<String, String>,
    ) -> Result<Opened<WebSocketReader, WebSocketWriter>, Ending> {
        let Handshaken {
            ws,
            protocol,
            direct,
            lifted,
        } = self.handshake(headers).await?;
        let (sink, stream) = ws.split();
        Ok(Opened {
            reader: WebSocketReader {
                stream,
                lifted,
                peer_close: None,
            },
            writer: WebSocketWriter {
                sink,
                direct,
                sink_dirty: false,
                kept_frame: false,
            },
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
    /// Large binary frames that went past tungstenite, in their turn.
    lifted: Arc<Lifted>,
    /// The peer's Close frame, once it came.
    peer_close: Option<(u16, String)>,
}

impl WireReader for WebSocketReader {
    async fn next(&mut self) -> Incoming {
        let (stream, lifted) = (&mut self.stream, &self.lifted);
        // A lifted frame completes inside a read tungstenite then finds
        // pending: it is the next message.
        let next = poll_fn(|cx| {
            let lifted_frame = || lifted.take().map(|data| Some(Ok(WsMessage::Binary(data))));
            if let Some(frame) = lifted_frame() {
                return Poll::Ready(frame);
            }
            match stream.poll_next_unpin(cx) {
                Poll::Pending => lifted_frame().map_or(Poll::Pending, Poll::Ready),
                ready => ready,
            }
        })
        .await;
        match next {
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
    /// The plain TCP connection under `sink`, for direct sends and frames
    /// masked at send (none over TLS, whose record state the reader shares).
    direct: Option<Arc<SharedTcp>>,
    /// tungstenite may hold frames we gave it since its last flush: a frame
    /// masked at send must not go to the socket ahead of them.
    sink_dirty: bool,
    /// A frame masked at send went to `direct` and may not be written yet.
    kept_frame: bool,
}

impl WireWriter for WebSocketWriter {
    async fn ready(&mut self) -> Result<(), Ending> {
        // A frame masked at send is written whole before the next one is
        // taken, as tungstenite waits for a frame that did not fit.
        if let Some(tcp) = self.direct.as_ref().filter(|_| self.kept_frame) {
            poll_fn(|cx| tcp.poll_flush(cx))
                .await
                .map_err(|e| write_error_ending(WsError::Io(e)))?;
            self.kept_frame = false;
        }
        poll_fn(|cx| self.sink.poll_ready_unpin(cx))
            .await
            .map_err(write_error_ending)
    }

    fn start(&mut self, frame: Outbound) -> Result<(), Ending> {
        let message = match frame {
            Outbound::Message(Message::Masked(masked)) => {
                if self.direct.is_some() && self.sink_dirty {
                    self.sink_dirty = !self.flushed_now();
                }
                if let Some(tcp) = self.direct.as_ref().filter(|_| !self.sink_dirty) {
                    if tcp.try_keep(masked.frame().clone()) {
                        self.kept_frame = true;
                        return Ok(());
                    }
                }
                // Behind frames tungstenite could not write yet: in turn.
                Self::as_frame(Message::Masked(masked))
            }
            Outbound::Message(message) => Self::as_frame(message),
            Outbound::Ping(payload) => WsMessage::Ping(payload),
            Outbound::Close { code, reason } => WsMessage::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.as_str().into(),
            })),
        };
        self.sink_dirty = true;
        self.sink
            .start_send_unpin(message)
            .map_err(write_error_ending)
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        self.sink.flush().await.map_err(write_error_ending)?;
        self.sink_dirty = false;
        Ok(())
    }

    fn into_direct(self) -> Result<Box<dyn DirectWrite>, Self> {
        if self.direct.is_some() {
            Ok(Box::new(self))
        } else {
            Err(self)
        }
    }
}

impl WebSocketWriter {
    /// Writes what tungstenite holds, if the socket takes it now. Polled
    /// without the task's waker: `ready` or `flush`, which the session
    /// always calls next, register it.
    fn flushed_now(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        matches!(self.sink.poll_flush_unpin(&mut cx), Poll::Ready(Ok(())))
    }

    fn as_frame(message: Message) -> WsMessage {
        match message {
            Message::Text(text) => WsMessage::Text(text),
            Message::Binary(data) => WsMessage::Binary(data),
            masked @ Message::Masked(_) => Self::as_frame(masked.unmasked()),
        }
    }
}

/// A send on the app's thread while the connection task has nothing to
/// write: the frame is built here (as tungstenite builds it, with a fresh
/// random mask) and written straight to the socket, past tungstenite, which
/// keeps no state about data frames it did not write. Never through the
/// split's lock: the reader, which holds it while it reads, must not wait
/// for a sender (nor a sender for it).
impl DirectWrite for WebSocketWriter {
    fn write_now(&mut self, message: Message) -> WriteNow {
        let Some(tcp) = &self.direct else {
            return WriteNow::Refused(message);
        };
        let outcome = match &message {
            Message::Text(text) => {
                tcp.try_write_whole(&masked_frame(Data::Text, text.as_bytes(), rand::random()))
            }
            Message::Binary(data) => {
                tcp.try_write_whole(&masked_frame(Data::Binary, data, rand::random()))
            }
            Message::Masked(masked) => tcp.try_write_whole(masked.frame()),
        };
        match outcome {
            DirectOutcome::Written => WriteNow::Written,
            DirectOutcome::Kept => WriteNow::Unfinished,
            DirectOutcome::Busy => WriteNow::Refused(message),
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

    /// A plain TCP connection of the wire to a tokio-tungstenite server on
    /// 127.0.0.1: (reader, writer, the server's side).
    async fn open_over_tcp() -> (
        WebSocketReader,
        WebSocketWriter,
        WebSocketStream<tokio::net::TcpStream>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let options = Options::from_json(Some(r#"{"allow_insecure": true}"#)).unwrap();
        let dialer = crate::transport::NetDialer {
            proxy: None,
            tls: None,
        };
        let mut wire =
            WebSocketWire::new(Endpoint::parse(&url).unwrap(), &options, Box::new(dialer));
        let server = async {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio_tungstenite::accept_async(tcp).await.unwrap()
        };
        let headers = BTreeMap::new();
        let (opened, server) = tokio::join!(wire.open(&headers), server);
        let opened = opened.unwrap_or_else(|e| panic!("open failed: {e:?}"));
        (opened.reader, opened.writer, server)
    }

    fn text(i: usize, len: usize) -> Message {
        let mut body = format!("{i:06}-");
        while body.len() < len {
            body.push((b'a' + (body.len() % 26) as u8) as char);
        }
        Message::Text(body.into())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn direct_sends_keep_their_order_and_frames_whole_under_backpressure_and_pings() {
        let (mut reader, writer, mut server) = open_over_tcp().await;
        let mut direct = match writer.into_direct() {
            Ok(direct) => direct,
            Err(_) => panic!("a plain TCP connection takes direct sends"),
        };
        // The server reads nothing yet: direct sends fill the socket until
        // one is kept in part; the next waits its turn (the queue's).
        let mut sent = Vec::new();
        let kept_at = loop {
            assert!(sent.len() < 10_000, "the socket never filled");
            let message = text(sent.len(), 15 * 1024);
            match direct.write_now(message.clone()) {
                WriteNow::Written => sent.push(message),
                WriteNow::Unfinished => {
                    sent.push(message);
                    break sent.len();
                }
                WriteNow::Refused(_) => panic!("refused before the socket filled"),
            }
        };
        assert!(matches!(
            direct.write_now(text(kept_at, 10)),
            WriteNow::Refused(_)
        ));
        let mut writer: WebSocketWriter = *direct.into_any().downcast().unwrap();

        // The client's reader answers Pings (tungstenite does, while it
        // reads), its task finishes the kept frame; the server pings while
        // it reads, and direct sends go on between its Pings.
        let client_reader = tokio::spawn(async move {
            loop {
                match tokio::time::timeout(Duration::from_secs(20), reader.next()).await {
                    Ok(Incoming::End(_)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        let flushed = tokio::time::timeout(Duration::from_secs(20), writer.flush());
        let (flushed, read_back) = tokio::join!(flushed, async {
            let mut got = Vec::new();
            while got.len() < kept_at {
                match tokio::time::timeout(Duration::from_secs(20), server.next()).await {
                    Ok(Some(Ok(WsMessage::Text(t)))) => got.push(Message::Text(t)),
                    other => panic!("the server read {other:?}"),
                }
            }
            got
        });
        flushed.expect("the kept frame was never finished").unwrap();
        assert_eq!(read_back, sent, "every frame whole, in order");

        let mut direct = writer.into_direct().ok().expect("still plain TCP");
        let mut later = Vec::new();
        let mut pongs = 0;
        for i in 0..300 {
            server
                .send(WsMessage::Ping(vec![i as u8; 3].into()))
                .await
                .unwrap();
            let message = text(kept_at + 1 + i, 40 + i % 200);
            // Refused: the task is writing a Pong this instant; it would be
            // queued, and sent in order after the ones before it.
            for _ in 0..10_000 {
                match direct.write_now(message.clone()) {
                    WriteNow::Written | WriteNow::Unfinished => break,
                    WriteNow::Refused(_) => tokio::task::yield_now().await,
                }
            }
            later.push(message);
        }
        let mut got = Vec::new();
        while got.len() < later.len() || pongs < 300 {
            match tokio::time::timeout(Duration::from_secs(20), server.next()).await {
                Ok(Some(Ok(WsMessage::Text(t)))) => got.push(Message::Text(t)),
                Ok(Some(Ok(WsMessage::Pong(_)))) => pongs += 1,
                other => panic!("the server read {other:?} after {} messages", got.len()),
            }
        }
        assert_eq!(got, later);
        drop(direct);
        drop(server);
        client_reader.await.unwrap();
    }

    fn masked(i: usize, kind: Data, len: usize) -> Message {
        let Message::Text(body) = text(i, len) else {
            unreachable!()
        };
        Message::Masked(crate::frame::MaskedFrame::new(kind, body.as_bytes()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn masked_frames_go_out_whole_and_in_order_among_other_frames_and_pings() {
        let (mut reader, mut writer, mut server) = open_over_tcp().await;
        let client_reader = tokio::spawn(async move {
            loop {
                match tokio::time::timeout(Duration::from_secs(20), reader.next()).await {
                    Ok(Incoming::End(_)) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        // Masked frames after a flush, right after a small frame tungstenite
        // holds (written first if the socket takes it now, else the masked
        // frame goes through tungstenite, in turn), back to back (each
        // waits for the one before).
        let messages: Vec<Message> = (0..160)
            .map(|i| match i % 5 {
                // More than the sockets hold while the server does not read:
                // tungstenite keeps the rest, the next masked frame goes
                // through tungstenite.
                0 if i == 0 => text(i, 12 << 20),
                0 | 3 => text(i, 30 + i),
                1 => masked(i, Data::Binary, 17 * 1024 + i * 997),
                2 => masked(i, Data::Text, 200 * 1024),
                _ => masked(i, Data::Binary, 70_000),
            })
            .collect();
        let expected: Vec<Message> = messages.iter().map(|m| m.clone().unmasked()).collect();
        let count = messages.len();
        let write = async {
            let (mut as_is, mut through_tungstenite) = (0, 0);
            for (i, message) in messages.into_iter().enumerate() {
                writer.ready().await.unwrap();
                let is_masked = matches!(message, Message::Masked(_));
                writer.start(Outbound::Message(message)).unwrap();
                if is_masked && writer.sink_dirty {
                    through_tungstenite += 1;
                } else if is_masked {
                    as_is += 1;
                }
                if i % 7 == 6 {
                    writer.flush().await.unwrap();
                }
            }
            writer.flush().await.unwrap();
            // Through tungstenite only while the socket was full.
            assert!(
                as_is > 50 && through_tungstenite > 0,
                "{as_is} / {through_tungstenite}"
            );
            writer
        };
        let read = async {
            // Late at first, so that the socket fills and frames are
            // written in parts; Pings from the server all along.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (mut got, mut pings, mut pongs) = (Vec::new(), 0, 0);
            while got.len() < count || pongs < pings {
                if got.len() % 10 == 0 && pings <= got.len() / 10 && got.len() < count {
                    server
                        .send(WsMessage::Ping(vec![7; 4].into()))
                        .await
                        .unwrap();
                    pings += 1;
                }
                match tokio::time::timeout(Duration::from_secs(20), server.next()).await {
                    Ok(Some(Ok(WsMessage::Text(t)))) => got.push(Message::Text(t)),
                    Ok(Some(Ok(WsMessage::Binary(b)))) => got.push(Message::Binary(b)),
                    Ok(Some(Ok(WsMessage::Pong(_)))) => pongs += 1,
                    other => panic!("the server read {other:?} after {} messages", got.len()),
                }
            }
            got
        };
        let (writer, got) =
            tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(write, read) })
                .await
                .expect("the frames never all arrived");
        assert_eq!(got.len(), expected.len());
        for (i, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert!(got == expected, "message {i} differs");
        }
        assert!(writer.into_direct().is_ok(), "idle again, it may park");
        drop(server);
        client_reader.await.unwrap();
    }

    #[tokio::test]
    async fn a_masked_frame_goes_through_tungstenite_where_it_cannot_go_as_it_is() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ws = WebSocketStream::from_raw_socket(
            ReadAhead::new(
                Transport::Injected(Box::new(client)),
                Vec::new(),
                usize::MAX,
            ),
            Role::Client,
            None,
        )
        .await;
        let mut server = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        let (sink, _stream) = ws.split();
        let mut writer = WebSocketWriter {
            sink,
            direct: None,
            sink_dirty: false,
            kept_frame: false,
        };
        let message = masked(1, Data::Text, 100_000);
        let expected = message.clone().unmasked();
        let write = async {
            writer.ready().await.unwrap();
            writer.start(Outbound::Message(message)).unwrap();
            writer.flush().await.unwrap();
        };
        let (_, read) = tokio::join!(write, server.next());
        match read {
            Some(Ok(WsMessage::Text(t))) => assert_eq!(Message::Text(t), expected),
            other => panic!("the server read {other:?}"),
        }
    }

    /// What a reader got, comparable.
    #[derive(Debug, PartialEq)]
    enum Got {
        Text(String),
        Binary(Vec<u8>),
        Control,
        Close(u16),
        End(String),
    }

    fn got(incoming: Incoming) -> Got {
        match incoming {
            Incoming::Text(t) => Got::Text(t.to_string()),
            Incoming::Binary(b) => Got::Binary(b.to_vec()),
            Incoming::Control => Got::Control,
            Incoming::Close { code, .. } => Got::Close(code),
            Incoming::End(ending) => Got::End(format!("{:?}", ending.error)),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Reads, as the wire's reader over an injected stream, the frames a
    /// hostile server writes by hand: `leftover` bytes of them as the
    /// handshake's leftover, the rest in writes of `pieces` bytes in turn.
    /// Returns what came (up to a Close or the end) and how many frames were
    /// lifted past tungstenite.
    async fn read_by_hand(frames: &[u8], leftover: usize, pieces: &[usize]) -> (Vec<Got>, usize) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(64 * 1024);
        let ahead = ReadAhead::new(
            Transport::Injected(Box::new(client)),
            frames[..leftover].to_vec(),
            2 << 20,
        );
        let lifted = ahead.lifted();
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
        let ws = WebSocketStream::from_raw_socket(ahead, Role::Client, Some(config)).await;
        let (_sink, stream) = ws.split();
        let mut reader = WebSocketReader {
            stream,
            lifted: lifted.clone(),
            peer_close: None,
        };
        let (mut from_client, mut to_client) = tokio::io::split(server);
        // The client's pongs.
        let draining = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = from_client.read_to_end(&mut sink).await;
        });
        let writing = async move {
            let mut rest = &frames[leftover..];
            for piece in pieces.iter().cycle().take(rest.len()) {
                let (now, later) = rest.split_at((*piece).min(rest.len()));
                to_client.write_all(now).await.unwrap();
                tokio::task::yield_now().await;
                rest = later;
                if rest.is_empty() {
                    break;
                }
            }
            to_client.shutdown().await.unwrap();
            to_client
        };
        let reading = async {
            let mut all = Vec::new();
            for _ in 0..100 {
                let next = got(reader.next().await);
                let last = matches!(next, Got::Close(_) | Got::End(_));
                all.push(next);
                if last {
                    break;
                }
            }
            all
        };
        let (to_client, all) = tokio::join!(writing, reading);
        drop((reader, _sink, to_client));
        draining.await.unwrap();
        (all, lifted.count())
    }

    /// `len` bytes that tell message `i` from the others.
    fn pattern(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| ((i * 31 + j) % 251) as u8).collect()
    }

    #[tokio::test]
    async fn received_frames_arrive_whole_and_in_order_whether_lifted_past_tungstenite_or_not() {
        use tether_testkit::wire::{self as hand, FIN, OP_BINARY, OP_CONTINUATION};
        let big =
            |i: usize, len: usize| (hand::binary(&pattern(i, len)), Got::Binary(pattern(i, len)));
        let mut long_form = vec![FIN | OP_BINARY, 127];
        long_form.extend_from_slice(&(20_000u64).to_be_bytes());
        long_form.extend(pattern(8, 20_000));
        let sent = [
            (hand::text("hello"), Got::Text("hello".into())),
            big(1, 20_000),
            (hand::ping(b"p"), Got::Control),
            big(2, 16 * 1024 - 1),
            big(3, 300_000),
            (
                hand::fragmented(OP_BINARY, &pattern(4, 60_000), 3),
                Got::Binary(pattern(4, 60_000)),
            ),
            (
                [
                    hand::frame(OP_BINARY, &pattern(5, 20_000)),
                    hand::ping(b"q"),
                    hand::frame(FIN | OP_CONTINUATION, &pattern(6, 20_000)),
                ]
                .concat(),
                Got::Control,
            ),
            big(7, 70_000),
            (long_form, Got::Binary(pattern(8, 20_000))),
            big(9, 0),
            big(10, 1 << 20),
            (
                hand::text(&"t".repeat(30_000)),
                Got::Text("t".repeat(30_000)),
            ),
            big(11, 16 * 1024),
            (hand::close(1000, b"bye"), Got::Close(1000)),
        ];
        let frames: Vec<u8> = sent.iter().flat_map(|(f, _)| f.clone()).collect();
        let mut expected: Vec<Got> = Vec::new();
        for (i, (_, want)) in sent.iter().enumerate() {
            if i == 6 {
                // The ping inside the fragmented message comes first.
                expected.push(Got::Control);
                expected.push(Got::Binary(
                    [pattern(5, 20_000), pattern(6, 20_000)].concat(),
                ));
            } else {
                expected.push(match want {
                    Got::Text(t) => Got::Text(t.clone()),
                    Got::Binary(b) => Got::Binary(b.clone()),
                    Got::Control => Got::Control,
                    Got::Close(c) => Got::Close(*c),
                    Got::End(e) => Got::End(e.clone()),
                });
            }
        }
        // 20,000, 300,000, 70,000, the long form, 1 MiB and 16 KiB.
        let lifts = 6;
        for (leftover, pieces) in [
            (0, vec![usize::MAX]),
            (3, vec![1, 2, 3, 4093]),
            (9, vec![3, 1000]),
            (111, vec![7, 65_536, 2]),
            (0, vec![2048, 13]),
            (frames.len() - 2, vec![1]),
        ] {
            let (all, lifted) = read_by_hand(&frames, leftover, &pieces).await;
            assert_eq!(
                all.len(),
                expected.len(),
                "{leftover}/{pieces:?}: {:?}",
                all.last()
            );
            for (i, (got, want)) in all.iter().zip(&expected).enumerate() {
                assert!(got == want, "{leftover}/{pieces:?}: message {i} differs");
            }
            assert_eq!(lifted, lifts, "{leftover}/{pieces:?}");
        }
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_lifted_frame_is_a_lost_connection() {
        use tether_testkit::wire as hand;
        let mut frames = hand::binary(&pattern(1, 20_000));
        frames.extend(hand::header(hand::FIN | hand::OP_BINARY, 100_000, None));
        frames.extend(pattern(2, 50_000));
        let (all, lifted) = read_by_hand(&frames, 0, &[4096]).await;
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0] == Got::Binary(pattern(1, 20_000)));
        assert!(
            matches!(&all[1], Got::End(e) if e.contains("without a close handshake")),
            "{:?}",
            all[1]
        );
        assert_eq!(lifted, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_other_than_plain_tcp_takes_no_direct_sends() {
        let (client, _server) = tokio::io::duplex(1024);
        let ws = WebSocketStream::from_raw_socket(
            ReadAhead::new(
                Transport::Injected(Box::new(client)),
                Vec::new(),
                usize::MAX,
            ),
            Role::Client,
            None,
        )
        .await;
        let (sink, _stream) = ws.split();
        let writer = WebSocketWriter {
            sink,
            direct: None,
            sink_dirty: false,
            kept_frame: false,
        };
        assert!(writer.into_direct().is_err());
    }

    #[test]
    fn proxy_failures_say_whether_retrying_can_help() {
        let endpoint = Endpoint::parse("ws://127.0.0.1:9/").unwrap();
        let auth = connect_ending(ConnectError::Proxy("407".into(), Some(407)), &endpoint);
        assert_eq!(auth.end, End::Configuration);
        let down = connect_ending(ConnectError::Proxy("down".into(), None), &endpoint);
        assert_eq!(down.end, End::ConnectFailed);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let tcp = connect_ending(ConnectError::Tcp(refused), &endpoint);
        assert_eq!(tcp.end, End::ConnectFailed);
        assert_eq!(tcp.error.unwrap().0, error_code::CONNECT);
    }
}
