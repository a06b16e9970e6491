//! One accepted connection of an SSE test server: its request, the answer
//! the script gives, then the event stream the [`SseStream`] handle
//! writes. Bytes move through [`crate::link`]: the network's latency,
//! bandwidth and cuts apply as on WebSocket connections.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::script::{comment, SseEvent, SseReply};
use super::SseShared;
use crate::link::ClosedOnDrop;
use crate::link::{self, Chunks, Out, Outgoing, Wiring, HEAD_TIMEOUT};
use crate::record::Request;
use crate::script::Faults;

/// How long a refused connection waits for the client to hang up.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
/// How long queued bytes may take to go out once the stream ended.
const FLUSH_WAIT: Duration = Duration::from_secs(30);

/// The server side of one open event stream. Cheap to clone; every
/// method returns at once (commands are written in order), and returns
/// false once the stream is gone (nothing was done).
#[derive(Clone, Debug)]
pub struct SseStream {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    open: Arc<AtomicBool>,
}

#[derive(Debug)]
enum Command {
    /// Body bytes (sent as one chunk).
    Write(Vec<u8>),
    /// The last chunk, then FIN: a clean end of the stream.
    End,
    /// An RST once queued bytes are out.
    Reset,
    /// Stop (`true`) or resume writing.
    Stall(bool),
}

impl SseStream {
    /// This stream's id (from 1, in accept order per server; the same as
    /// [`Request::connection`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the stream still runs (the client has not hung up, and it
    /// was not ended, reset or killed).
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    fn command(&self, command: Command) -> bool {
        self.is_open() && self.commands.send(command).is_ok()
    }

    /// Writes `event` (refused, returning false, if it does not pass
    /// [`SseEvent::check`]).
    pub fn send(&self, event: &SseEvent) -> bool {
        event.check().is_ok() && self.command(Command::Write(event.to_wire()))
    }

    /// Writes a comment (`: text`), which only keeps the stream alive.
    pub fn comment(&self, text: &str) -> bool {
        self.command(Command::Write(comment(text)))
    }

    /// Writes any bytes into the body as they are (half an event, bad
    /// UTF-8, a field the client must ignore).
    pub fn send_raw(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return self.is_open();
        }
        self.command(Command::Write(bytes.to_vec()))
    }

    /// Ends the stream cleanly (the last chunk, then FIN): an EventSource
    /// client reconnects, with `Last-Event-ID`.
    pub fn end(&self) -> bool {
        self.command(Command::End)
    }

    /// Resets the connection (RST) once queued bytes are out.
    pub fn reset(&self) -> bool {
        self.command(Command::Reset)
    }

    /// With `true`, the server stops writing on this stream and keeps it
    /// open: what is sent from then on (an end or a reset too) is held,
    /// and a client's read timeout must notice. With `false`, what was
    /// held goes out, in order.
    pub fn set_stall(&self, stall: bool) -> bool {
        self.command(Command::Stall(stall))
    }
}

/// Serves one accepted connection to its end, over TLS on an `https://`
/// server.
pub(crate) async fn serve(tcp: TcpStream, id: u64, shared: Arc<SseShared>) {
    let _ = tcp.set_nodelay(true);
    let resetter = link::resetter(&tcp);
    let Some(identity) = &shared.tls else {
        return serve_stream(tcp, resetter, id, shared).await;
    };
    let accepting = tokio_rustls::TlsAcceptor::from(identity.config.clone()).accept(tcp);
    if let Ok(Ok(tls)) = tokio::time::timeout(HEAD_TIMEOUT, accepting).await {
        serve_stream(tls, resetter, id, shared).await;
    }
}

async fn serve_stream<S>(
    stream: S,
    resetter: Option<std::net::TcpStream>,
    id: u64,
    shared: Arc<SseShared>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    // SSE streams have no per-connection faults of the WebSocket kind
    // (stalls are the driver's): these stay off.
    let (_faults, faults_rx) = watch::channel(Faults::default());
    let wiring = Wiring {
        net: shared.network.subscribe(),
        faults: faults_rx,
    };
    let (chunks, out, tasks) = link::spawn(stream, resetter, &wiring);
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let open = Arc::new(AtomicBool::new(true));
    // Also when this task is aborted (a kill, a restart, the server dropped).
    let _closed = ClosedOnDrop(open.clone());
    let handle = SseStream {
        id,
        commands: commands_tx,
        open: open.clone(),
    };
    let mut driver = Driver {
        id,
        shared,
        chunks,
        commands,
        out,
        wiring,
    };
    driver.run(handle).await;
    open.store(false, Ordering::SeqCst);
    drop(driver);
    tasks.finish(FLUSH_WAIT).await;
}

struct Driver {
    id: u64,
    shared: Arc<SseShared>,
    chunks: Chunks,
    commands: mpsc::UnboundedReceiver<Command>,
    out: Outgoing,
    wiring: Wiring,
}

impl Driver {
    fn queue(&self, item: Out) {
        let _ = self.out.send((Instant::now(), item));
    }

    async fn run(&mut self, handle: SseStream) {
        let mut buf = Vec::new();
        let Some(head) = link::read_head(&mut self.chunks, &mut buf, &self.wiring).await else {
            return;
        };
        self.shared.requests.push(Request {
            connection: self.id,
            method: head.method,
            path: head.path,
            headers: head.headers,
        });
        match self.shared.next_reply().unwrap_or_else(SseReply::accept) {
            SseReply::Accept { headers } => {
                self.queue(Out::Bytes(accepted(&headers)));
                self.shared.streams.push(handle);
                self.stream().await;
            }
            SseReply::Refuse {
                status,
                headers,
                body,
            } => self.answer_and_close(status, &headers, &body).await,
            SseReply::WrongContentType { content_type } => {
                let headers = BTreeMap::from([("Content-Type".to_string(), content_type)]);
                self.answer_and_close(200, &headers, "<p>not an event stream</p>")
                    .await;
            }
            SseReply::Reset => self.queue(Out::Reset),
        }
    }

    /// A whole answer, FIN, then waits (bounded) for the client to hang up.
    async fn answer_and_close(
        &mut self,
        status: u16,
        headers: &BTreeMap<String, String>,
        body: &str,
    ) {
        let mut text = format!(
            "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
            reason_phrase(status)
        );
        // 204 and 304 carry no body, nor its length.
        if status != 204 && status != 304 {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        if status != 204 && status != 304 {
            text.push_str(body);
        }
        self.queue(Out::Bytes(text.into_bytes()));
        self.queue(Out::Shutdown);
        let drain = async { while self.chunks.recv().await.flatten().is_some() {} };
        let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
    }

    /// The open stream: runs the handle's commands until the stream ends,
    /// is reset, or the client hangs up (what it sends is ignored: a
    /// request body, a next request).
    async fn stream(&mut self) {
        let mut stalled = false;
        let mut held: VecDeque<Command> = VecDeque::new();
        loop {
            tokio::select! {
                chunk = self.chunks.recv() => {
                    if chunk.flatten().is_none() {
                        return;
                    }
                }
                Some(command) = self.commands.recv() => {
                    match command {
                        Command::Stall(on) => stalled = on,
                        other => held.push_back(other),
                    }
                    if stalled {
                        continue;
                    }
                    while let Some(command) = held.pop_front() {
                        if !self.write(command) {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Queues one command's bytes; false once the stream is over.
    fn write(&self, command: Command) -> bool {
        match command {
            Command::Write(bytes) => {
                self.queue(Out::Bytes(chunk(&bytes)));
                true
            }
            Command::End => {
                self.queue(Out::Bytes(b"0\r\n\r\n".to_vec()));
                self.queue(Out::Shutdown);
                false
            }
            Command::Reset => {
                self.queue(Out::Reset);
                false
            }
            Command::Stall(_) => true,
        }
    }
}

/// The `200 OK` head of an event stream, with `extra` headers.
fn accepted(extra: &BTreeMap<String, String>) -> Vec<u8> {
    let mut text = String::from(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
         Transfer-Encoding: chunked\r\n",
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// `bytes` as one chunk of a chunked body (not empty: that would end it).
fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
