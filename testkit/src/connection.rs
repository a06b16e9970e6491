//! One accepted TCP connection: its handshake (by the next queued
//! [`Reply`]), then the WebSocket it serves, and the [`Connection`] handle
//! tests drive it with.
//!
//! Three parts run per connection: the reader and the writer of
//! [`crate::link`], shaped by the network and the connection's faults, and
//! the *driver* here, which parses what the reader hands on, answers (echo,
//! Pong, Close) and runs the handle's commands.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::link::{self, Chunks, Out, Outgoing, Wiring, HEAD_TIMEOUT};
use crate::record::{ClientClose, Message, MessageKind, Request};
use crate::script::{Faults, Reply};
use crate::server::Shared;
use crate::wire::{
    self, Head, Parsed, FIN, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT,
};

/// A client message larger than this ends the connection.
const MAX_MESSAGE_BYTES: u64 = 64 << 20;
/// How long a closing connection waits for the client's part.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How long queued bytes may take to go out once the driver ended.
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// The server side of one open WebSocket connection. Cheap to clone;
/// every method returns at once, and returns false once the connection is
/// gone (nothing was done).
#[derive(Clone, Debug)]
pub struct Connection {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    faults: Arc<watch::Sender<Faults>>,
    open: Arc<AtomicBool>,
}

#[derive(Debug)]
enum Command {
    /// Raw bytes for the wire.
    Write(Vec<u8>),
    /// A Close frame; then the close handshake ends the connection.
    Close(u16, String),
    /// A Close frame, then the server ignores the client and keeps TCP open.
    CloseWithoutTcpClose(u16, String),
    /// FIN without a Close frame.
    Drop,
    /// FIN on the server's write side; still reads.
    HalfClose,
    /// These bytes, then an RST.
    ResetAfter(Vec<u8>),
}

impl Connection {
    /// This connection's id (from 1, in accept order per server; the same
    /// as [`Request::connection`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the connection still runs.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    fn command(&self, command: Command) -> bool {
        self.is_open() && self.commands.send(command).is_ok()
    }

    pub fn send_text(&self, text: &str) -> bool {
        self.command(Command::Write(wire::text(text)))
    }

    pub fn send_binary(&self, data: &[u8]) -> bool {
        self.command(Command::Write(wire::binary(data)))
    }

    /// A Ping frame (at most 125 bytes of payload are sent).
    pub fn ping(&self, payload: &[u8]) -> bool {
        self.command(Command::Write(wire::ping(
            &payload[..payload.len().min(125)],
        )))
    }

    /// Any bytes, as they are (a hostile frame, junk).
    pub fn send_raw(&self, bytes: &[u8]) -> bool {
        self.command(Command::Write(bytes.to_vec()))
    }

    /// A text message split into `pieces` frames.
    pub fn send_fragmented(&self, text: &str, pieces: usize) -> bool {
        self.command(Command::Write(wire::fragmented(
            OP_TEXT,
            text.as_bytes(),
            pieces,
        )))
    }

    /// A binary frame header announcing `len` bytes, then `len` zero bytes
    /// (at most 1 MiB of them: a client should have given up by then).
    pub fn send_oversize(&self, len: u64) -> bool {
        let mut bytes = wire::header(FIN | OP_BINARY, len, None);
        let sent = usize::try_from(len.min(1 << 20)).unwrap_or(1 << 20);
        bytes.resize(bytes.len() + sent, 0);
        self.command(Command::Write(bytes))
    }

    /// Starts the close handshake with any code (even one a server must
    /// not send) and reason; the connection ends once the client answered
    /// (or after 10 s).
    pub fn close(&self, code: u16, reason: &str) -> bool {
        self.command(Command::Close(code, reason.to_string()))
    }

    /// A Close frame, then nothing: the client's Close is ignored and TCP
    /// stays open until the client hangs up.
    pub fn close_without_tcp_close(&self, code: u16, reason: &str) -> bool {
        self.command(Command::CloseWithoutTcpClose(code, reason.to_string()))
    }

    /// Hangs up without a close handshake (FIN once queued bytes are out).
    pub fn drop_connection(&self) -> bool {
        self.command(Command::Drop)
    }

    /// Shuts the server's write side (FIN) and keeps reading.
    pub fn half_close(&self) -> bool {
        self.command(Command::HalfClose)
    }

    /// Resets the connection (RST) once queued bytes are out.
    pub fn reset(&self) -> bool {
        self.command(Command::ResetAfter(Vec::new()))
    }

    /// Writes the first half of a binary frame of `payload`, then resets.
    pub fn reset_mid_frame(&self, payload: &[u8]) -> bool {
        let mut bytes = wire::binary(payload);
        bytes.truncate(bytes.len() / 2);
        self.command(Command::ResetAfter(bytes))
    }

    /// Replaces this connection's faults (see [`Faults`]).
    pub fn set_faults(&self, faults: Faults) -> bool {
        self.faults.send_replace(faults);
        self.is_open()
    }

    pub fn faults(&self) -> Faults {
        *self.faults.borrow()
    }
}

/// Serves one accepted connection to its end: over TLS on a `wss://`
/// server (where the next reply may be a TLS fault, taken before the TLS
/// handshake), else as it is.
pub(crate) async fn serve(tcp: TcpStream, id: u64, shared: Arc<Shared>) {
    let _ = tcp.set_nodelay(true);
    let resetter = link::resetter(&tcp);
    let Some(identity) = &shared.tls else {
        return serve_stream(tcp, resetter, id, shared).await;
    };
    let config = match shared.take_tls_reply() {
        Some(Reply::TlsFailure) => {
            // A fatal handshake_failure alert (TLS 1.2 record), then FIN.
            let mut tcp = tcp;
            let _ = tcp
                .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
                .await;
            let _ = tcp.shutdown().await;
            return;
        }
        Some(_) => identity.other_key.clone(),
        None => identity.config.clone(),
    };
    let accepting = tokio_rustls::TlsAcceptor::from(config).accept(tcp);
    if let Ok(Ok(tls)) = tokio::time::timeout(HEAD_TIMEOUT, accepting).await {
        serve_stream(tls, resetter, id, shared).await;
    }
}

async fn serve_stream<S>(
    stream: S,
    resetter: Option<std::net::TcpStream>,
    id: u64,
    shared: Arc<Shared>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (faults_tx, faults_rx) = watch::channel(Faults::default());
    let wiring = Wiring {
        net: shared.network.subscribe(),
        faults: faults_rx,
    };
    let (chunks, out, tasks) = link::spawn(stream, resetter, &wiring);
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let open = Arc::new(AtomicBool::new(true));
    let closed = link::ClosedOnDrop(open.clone());
    let handle = Connection {
        id,
        commands: commands_tx,
        faults: Arc::new(faults_tx),
        open: open.clone(),
    };
    let mut driver = Driver {
        id,
        shared,
        chunks,
        commands,
        out,
        buf: Vec::new(),
        wiring,
    };
    driver.run(handle).await;
    drop(closed);
    // Let queued bytes (a last Close, a FIN, an RST) go out, bounded.
    drop(driver);
    tasks.finish(FLUSH_WAIT).await;
}

/// What the driver is doing with the close handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// The server sent Close; waiting for the client's until the deadline.
    Sent(Instant),
    /// Close sent; the client is ignored, TCP stays open.
    Ignoring,
    /// The driver is done.
    Done,
}

struct Driver {
    id: u64,
    shared: Arc<Shared>,
    chunks: Chunks,
    commands: mpsc::UnboundedReceiver<Command>,
    out: Outgoing,
    buf: Vec<u8>,
    wiring: Wiring,
}

impl Driver {
    fn queue(&self, item: Out) {
        let _ = self.out.send((Instant::now(), item));
    }

    /// The next chunk; `None` at EOF.
    async fn chunk(&mut self) -> Option<Vec<u8>> {
        self.chunks.recv().await.flatten()
    }

    async fn run(&mut self, handle: Connection) {
        let Some(head) = self.head().await else {
            return;
        };
        self.shared.requests.push(Request {
            connection: self.id,
            method: head.method.clone(),
            path: head.path.clone(),
            headers: head.headers.clone(),
        });
        let reply = self
            .shared
            .next_reply()
            .unwrap_or_else(|| match first_offered(&head) {
                Some(protocol) => Reply::accept_subprotocol(protocol),
                None => Reply::accept(),
            });
        match reply {
            Reply::Accept {
                subprotocol,
                headers,
            } => {
                self.queue(Out::Bytes(switching(
                    &head,
                    subprotocol.as_deref(),
                    &headers,
                )));
            }
            Reply::SlowHeaders { gap_ms } => {
                let bytes = switching(&head, None, &Default::default());
                self.queue(Out::Trickle(bytes, Duration::from_millis(gap_ms)));
            }
            Reply::Refuse {
                status,
                headers,
                body,
            } => {
                let mut text = format!(
                    "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reason_phrase(status),
                    body.len()
                );
                for (name, value) in &headers {
                    text.push_str(&format!("{name}: {value}\r\n"));
                }
                text.push_str("\r\n");
                text.push_str(&body);
                self.queue(Out::Bytes(text.into_bytes()));
                self.queue(Out::Shutdown);
                self.drain_until_eof(CLOSE_WAIT).await;
                return;
            }
            // (TLS faults are taken before the TLS handshake.)
            Reply::Reset | Reply::TlsFailure | Reply::OtherKey => {
                self.queue(Out::Reset);
                return;
            }
            Reply::Silence => {
                self.drain_until_eof(Duration::MAX).await;
                return;
            }
        }
        self.shared.connections.push(handle);
        self.serve_websocket().await;
    }

    /// Reads the request head; `None` if none came (in time, or at all).
    async fn head(&mut self) -> Option<Head> {
        link::read_head(&mut self.chunks, &mut self.buf, &self.wiring).await
    }

    /// Reads and discards until the client hangs up, at most `limit`.
    async fn drain_until_eof(&mut self, limit: Duration) {
        let limit = limit.min(Duration::from_secs(365 * 24 * 3600));
        let _ = tokio::time::timeout(limit, async { while self.chunk().await.is_some() {} }).await;
    }

    async fn serve_websocket(&mut self) {
        let mut closing = Closing::Open;
        let mut message: Option<(MessageKind, Vec<u8>)> = None;
        while closing != Closing::Done {
            let deadline = match closing {
                Closing::Sent(at) => at,
                _ => Instant::now() + Duration::from_secs(365 * 24 * 3600),
            };
            tokio::select! {
                chunk = self.chunks.recv() => {
                    let Some(chunk) = chunk.flatten() else { break };
                    if closing == Closing::Ignoring {
                        continue;
                    }
                    self.buf.extend_from_slice(&chunk);
                    closing = self.frames(closing, &mut message);
                }
                Some(command) = self.commands.recv() => {
                    closing = self.command(command, closing);
                }
                () = tokio::time::sleep_until(deadline) => {
                    self.queue(Out::Shutdown);
                    closing = Closing::Done;
                }
            }
        }
    }

    /// Handles the whole frames in the buffer.
    fn frames(
        &mut self,
        closing: Closing,
        message: &mut Option<(MessageKind, Vec<u8>)>,
    ) -> Closing {
        loop {
            let frame = match wire::parse_frame(&self.buf, MAX_MESSAGE_BYTES, usize::MAX) {
                Parsed::Frame(frame, used) => {
                    self.buf.drain(..used);
                    frame
                }
                Parsed::Incomplete => return closing,
                Parsed::Junk => {
                    self.queue(Out::Bytes(wire::close(1009, b"")));
                    self.queue(Out::Shutdown);
                    return Closing::Done;
                }
            };
            match frame.opcode {
                OP_TEXT | OP_BINARY | OP_CONTINUATION => {
                    let (kind, mut data) = match (frame.opcode, message.take()) {
                        (OP_CONTINUATION, Some(started)) => started,
                        (OP_TEXT, _) => (MessageKind::Text, Vec::new()),
                        (OP_BINARY, _) => (MessageKind::Binary, Vec::new()),
                        // A continuation of nothing: ignored.
                        _ => continue,
                    };
                    data.extend_from_slice(&frame.payload);
                    if !frame.fin {
                        *message = Some((kind, data));
                        continue;
                    }
                    if self.shared.echo() && closing == Closing::Open {
                        let op = if kind == MessageKind::Text {
                            OP_TEXT
                        } else {
                            OP_BINARY
                        };
                        self.queue(Out::Bytes(wire::frame(FIN | op, &data)));
                    }
                    self.shared.messages.push(Message {
                        connection: self.id,
                        kind,
                        data,
                    });
                }
                OP_PING if !self.wiring.faults.borrow().drop_pongs => {
                    self.queue(Out::Bytes(wire::frame(FIN | OP_PONG, &frame.payload)));
                }
                OP_CLOSE => {
                    let reason = frame.payload.get(2..).unwrap_or_default();
                    self.shared.client_closes.push(ClientClose {
                        connection: self.id,
                        code: frame.close_code(),
                        reason: String::from_utf8_lossy(reason).into_owned(),
                    });
                    if closing == Closing::Open {
                        // Answer with the same payload (RFC 6455 §5.5.1).
                        self.queue(Out::Bytes(wire::frame(FIN | OP_CLOSE, &frame.payload)));
                    }
                    self.queue(Out::Shutdown);
                    return Closing::Done;
                }
                _ => {}
            }
        }
    }

    fn command(&mut self, command: Command, closing: Closing) -> Closing {
        match command {
            Command::Write(bytes) => self.queue(Out::Bytes(bytes)),
            Command::Close(code, reason) => {
                self.queue(Out::Bytes(wire::close(code, reason.as_bytes())));
                return Closing::Sent(Instant::now() + CLOSE_WAIT);
            }
            Command::CloseWithoutTcpClose(code, reason) => {
                self.queue(Out::Bytes(wire::close(code, reason.as_bytes())));
                return Closing::Ignoring;
            }
            Command::Drop => {
                self.queue(Out::Shutdown);
                return Closing::Done;
            }
            Command::HalfClose => self.queue(Out::Shutdown),
            Command::ResetAfter(bytes) => {
                if !bytes.is_empty() {
                    self.queue(Out::Bytes(bytes));
                }
                self.queue(Out::Reset);
                return Closing::Done;
            }
        }
        closing
    }
}

/// The first subprotocol the client offers, if any.
fn first_offered(head: &Head) -> Option<&str> {
    let offered = head.header("sec-websocket-protocol")?;
    offered.split(',').map(str::trim).find(|p| !p.is_empty())
}

/// The `101 Switching Protocols` answer to `head`.
fn switching(
    head: &Head,
    subprotocol: Option<&str>,
    headers: &std::collections::BTreeMap<String, String>,
) -> Vec<u8> {
    let mut extra = String::new();
    if let Some(p) = subprotocol {
        extra.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    for (name, value) in headers {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    head.switching(&extra)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
