//! A hostile WebSocket server for the integration tests: it writes raw HTTP
//! and raw WebSocket frames by hand over TCP on 127.0.0.1 (no WebSocket
//! library on this side), so it can say anything a broken or malicious
//! server could.
//!
//! Each accepted connection plays a *script*, a list of [`Step`]s chosen
//! per connection by a function of its [`Ctx`] (the connection's number
//! and the client's request head). With [`HostileServer::start`] the
//! server first reads the client's HTTP request head (so the script can
//! compute `Sec-WebSocket-Accept` from its key); with
//! [`HostileServer::start_raw`] the script starts at accept, before a
//! byte is read.
//!
//! Whatever the script does, a reader task keeps reading what the client
//! sends (so the client never blocks on a full socket), parses the
//! client's masked frames and records them per connection, with whether
//! the client closed its side. Tests inspect that record with the
//! blocking, deadline-bounded `wait_*` methods.
//!
//! After the last step (unless it was `Close` or `Reset`) the connection
//! stays open, still read, until the client hangs up, at most
//! [`HOLD_LIMIT`]; dropping the server aborts every connection.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::ServerThread;

/// The longest any connection is held open, waited on or written to.
pub const HOLD_LIMIT: Duration = Duration::from_secs(30);
/// How long the server waits for the client's request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head larger than this is not one: the rest is ignored.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Client frames larger than this are not parsed (the tests send none).
const MAX_CLIENT_FRAME: u64 = 16 << 20;
/// Payload bytes kept per recorded client frame.
const KEPT_PAYLOAD: usize = 4096;

/// Frame header bits and opcodes (RFC 6455 §5.2).
pub const FIN: u8 = 0x80;
pub const RSV1: u8 = 0x40;
pub const RSV2: u8 = 0x20;
pub const RSV3: u8 = 0x10;
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One thing a connection's script does, in order.
#[derive(Debug, Clone)]
pub enum Step {
    /// Writes these bytes.
    Write(Vec<u8>),
    /// Writes the bytes one at a time, `gap` apart (slow headers).
    Trickle(Vec<u8>, Duration),
    /// Writes `bytes` `times` times over, in large batches (floods).
    Repeat(Vec<u8>, usize),
    /// Does nothing for this long (still reading).
    Sleep(Duration),
    /// Waits, at most this long, until the client has sent a Close frame.
    AwaitClose(Duration),
    /// Waits, at most this long, until the client has closed its side.
    AwaitEof(Duration),
    /// What a polite server does at the end: waits for the client's Close
    /// frame (at most [`HOLD_LIMIT`]), answers it with the same payload,
    /// then closes TCP.
    ServeClose,
    /// Half-close: shuts down the server's write side (FIN), still reads.
    ShutdownWrite,
    /// Closes the connection (FIN) and ends the script.
    Close,
    /// Resets the connection (RST: `SO_LINGER` 0, then close) and ends
    /// the script.
    Reset,
}

/// What a script is chosen from.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// 0 for the first connection accepted, then 1, 2, …
    pub index: usize,
    /// The client's request head (`None` with [`HostileServer::start_raw`]).
    pub head: Option<Head>,
}

impl Ctx {
    /// The request head; panics with `start_raw` (a bug in the test).
    pub fn head(&self) -> &Head {
        self.head
            .as_ref()
            .expect("no request head: the server was started with start_raw")
    }

    /// The path of the request, "" without a head.
    pub fn path(&self) -> &str {
        self.head.as_ref().map(|h| h.path.as_str()).unwrap_or("")
    }
}

/// The client's HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The head as received, up to and including the blank line.
    pub raw: String,
    pub method: String,
    pub path: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    fn parse(raw: String) -> Head {
        let mut lines = raw.split("\r\n");
        let mut request = lines.next().unwrap_or("").split(' ');
        let method = request.next().unwrap_or("").to_string();
        let path = request.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Head {
            raw,
            method,
            path,
            headers,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The client's `Sec-WebSocket-Key` ("" if it sent none).
    pub fn key(&self) -> &str {
        self.header("sec-websocket-key").unwrap_or("")
    }

    /// The right `Sec-WebSocket-Accept` for this request.
    pub fn accept(&self) -> String {
        accept_key(self.key())
    }

    /// A correct `101 Switching Protocols` answer, with `extra` header
    /// lines (each ending in "\r\n") before the blank line.
    pub fn switching(&self, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            self.accept()
        )
        .into_bytes()
    }
}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)), RFC 6455 §4.2.2.
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// A frame header: `b0` is FIN, RSV bits and opcode as one byte; the
/// length in its shortest encoding; `mask` adds a masking key.
pub fn header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// An unmasked frame (what a server sends).
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, None);
    out.extend_from_slice(payload);
    out
}

/// A masked frame (which a server must never send).
pub fn masked_frame(b0: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, Some(key));
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

pub fn text(s: &str) -> Vec<u8> {
    frame(FIN | OP_TEXT, s.as_bytes())
}

pub fn binary(b: &[u8]) -> Vec<u8> {
    frame(FIN | OP_BINARY, b)
}

pub fn ping(p: &[u8]) -> Vec<u8> {
    frame(FIN | OP_PING, p)
}

/// A Close frame with a code and raw reason bytes.
pub fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(FIN | OP_CLOSE, &payload)
}

/// A frame the client sent, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFrame {
    pub fin: bool,
    /// The three RSV bits, as in the header byte (0x70 mask).
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    /// The payload length announced.
    pub len: u64,
    /// The payload, unmasked, at most [`KEPT_PAYLOAD`] bytes of it.
    pub payload: Vec<u8>,
}

impl ClientFrame {
    /// The code of a Close frame (`None`: not a Close, or one without a
    /// code).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// What one connection saw from the client.
#[derive(Debug, Clone, Default)]
pub struct ConnRecord {
    pub head: Option<Head>,
    pub frames: Vec<ClientFrame>,
    /// The client closed its side (FIN or RST) or the read failed.
    pub eof: bool,
    /// The client sent bytes that are not a request head and frames.
    pub junk: bool,
    /// A write of the script failed (the client had gone).
    pub write_failed: bool,
    /// The script has run to its end (or stopped on a failed write).
    pub script_done: bool,
}

impl ConnRecord {
    /// The client's first Close frame.
    pub fn close_frame(&self) -> Option<&ClientFrame> {
        self.frames.iter().find(|f| f.opcode == OP_CLOSE)
    }

    pub fn count(&self, opcode: u8) -> usize {
        self.frames.iter().filter(|f| f.opcode == opcode).count()
    }
}

type Script = dyn Fn(&Ctx) -> Vec<Step> + Send + Sync;

struct Shared {
    conns: Mutex<Vec<ConnRecord>>,
    /// For the tests' blocking waits.
    changed: Condvar,
    /// For the scripts' async waits.
    changed_async: tokio::sync::Notify,
}

impl Shared {
    fn update(&self, index: usize, f: impl FnOnce(&mut ConnRecord)) {
        {
            let mut conns = self.conns.lock().unwrap();
            f(&mut conns[index]);
        }
        self.changed.notify_all();
        self.changed_async.notify_waiters();
    }

    fn check(&self, index: usize, f: &impl Fn(&ConnRecord) -> bool) -> bool {
        f(&self.conns.lock().unwrap()[index])
    }

    /// Async wait (in a script) until `f` holds for connection `index`.
    async fn until(&self, index: usize, timeout: Duration, f: impl Fn(&ConnRecord) -> bool) {
        let wait = async {
            loop {
                let notified = self.changed_async.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.check(index, &f) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait).await;
    }
}

/// The hostile server: see the module documentation.
pub struct HostileServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: ServerThread,
}

impl HostileServer {
    /// Reads each client's request head, then plays `script(ctx)`.
    pub fn start(script: impl Fn(&Ctx) -> Vec<Step> + Send + Sync + 'static) -> HostileServer {
        Self::start_with(true, Arc::new(script))
    }

    /// Plays `script(ctx)` as soon as a connection is accepted, before
    /// reading anything (`ctx.head` is `None`).
    pub fn start_raw(script: impl Fn(&Ctx) -> Vec<Step> + Send + Sync + 'static) -> HostileServer {
        Self::start_with(false, Arc::new(script))
    }

    /// As [`HostileServer::start`], on `addr` (a restarted server).
    pub fn start_on(
        addr: SocketAddr,
        script: impl Fn(&Ctx) -> Vec<Step> + Send + Sync + 'static,
    ) -> HostileServer {
        Self::start_at(addr, true, Arc::new(script))
    }

    fn start_with(read_head: bool, script: Arc<Script>) -> HostileServer {
        Self::start_at("127.0.0.1:0".parse().unwrap(), read_head, script)
    }

    fn start_at(addr: SocketAddr, read_head: bool, script: Arc<Script>) -> HostileServer {
        let shared = Arc::new(Shared {
            conns: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            changed_async: tokio::sync::Notify::new(),
        });
        let for_server = shared.clone();
        let server = ServerThread::start(addr, move |tcp| {
            let (shared, script) = (for_server.clone(), script.clone());
            serve(tcp, shared, script, read_head)
        });
        HostileServer {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    /// `ws://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Connections accepted so far (attempts of the client).
    pub fn accepts(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }

    /// Connections accepted so far whose request was for `path`.
    pub fn accepts_for(&self, path: &str) -> usize {
        self.shared
            .conns
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.head.as_ref().is_some_and(|h| h.path == path))
            .count()
    }

    /// A copy of what connection `index` saw (panics if there is none).
    pub fn conn(&self, index: usize) -> ConnRecord {
        self.shared.conns.lock().unwrap()[index].clone()
    }

    /// A copy of every connection's record.
    pub fn conns(&self) -> Vec<ConnRecord> {
        self.shared.conns.lock().unwrap().clone()
    }

    /// Blocks until `f` holds for the records, at most `timeout`; whether
    /// it held.
    pub fn wait_until(&self, timeout: Duration, f: impl Fn(&[ConnRecord]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut conns = self.shared.conns.lock().unwrap();
        loop {
            if f(&conns) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            conns = self.shared.changed.wait_timeout(conns, left).unwrap().0;
        }
    }

    /// Whether at least `n` connections were accepted within `timeout`.
    pub fn wait_accepts(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |c| c.len() >= n)
    }

    /// The code of the client's Close frame on connection `index`, waited
    /// for at most `timeout`. `None`: no Close frame came; `Some(None)`:
    /// one without a code.
    pub fn client_close(&self, index: usize, timeout: Duration) -> Option<Option<u16>> {
        self.wait_until(timeout, |c| {
            c.get(index).is_some_and(|c| c.close_frame().is_some())
        });
        let conns = self.shared.conns.lock().unwrap();
        conns
            .get(index)
            .and_then(|c| c.close_frame())
            .map(ClientFrame::close_code)
    }

    /// Whether the client closed its side of connection `index` within
    /// `timeout`.
    pub fn wait_eof(&self, index: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |c| c.get(index).is_some_and(|c| c.eof))
    }

    /// Whether connection `index` ran its script to the end within
    /// `timeout`.
    pub fn wait_script_done(&self, index: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |c| c.get(index).is_some_and(|c| c.script_done))
    }
}

async fn serve(tcp: TcpStream, shared: Arc<Shared>, script: Arc<Script>, read_head: bool) {
    let index = {
        let mut conns = shared.conns.lock().unwrap();
        conns.push(ConnRecord::default());
        conns.len() - 1
    };
    shared.changed.notify_all();
    shared.changed_async.notify_waiters();
    let (rd, wr) = tcp.into_split();
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let reader = tokio::spawn(read_client(rd, index, shared.clone(), head_tx));
    let head = if read_head {
        match tokio::time::timeout(HEAD_TIMEOUT, head_rx).await {
            Ok(Ok(head)) => Some(head),
            // No head came: nothing to play.
            _ => {
                shared.update(index, |c| c.script_done = true);
                reader.abort();
                return;
            }
        }
    } else {
        None
    };
    let steps = script(&Ctx { index, head });
    let mut conn = Conn {
        index,
        shared: shared.clone(),
        wr: Some(wr),
        reader,
    };
    let ended = tokio::time::timeout(HOLD_LIMIT, conn.play(steps))
        .await
        .unwrap_or(false);
    shared.update(index, |c| c.script_done = true);
    if !ended {
        // Held open, still read, until the client hangs up.
        shared
            .until(index, HOLD_LIMIT, |c: &ConnRecord| c.eof)
            .await;
    }
    conn.reader.abort();
}

struct Conn {
    index: usize,
    shared: Arc<Shared>,
    /// `None` once shut down or given up.
    wr: Option<OwnedWriteHalf>,
    reader: tokio::task::JoinHandle<()>,
}

impl Conn {
    /// Plays the steps; true if the connection was closed or reset by
    /// them (or a write failed: the client is gone).
    async fn play(&mut self, steps: Vec<Step>) -> bool {
        for step in steps {
            match step {
                Step::Write(bytes) => {
                    if !self.write(&bytes).await {
                        return true;
                    }
                }
                Step::Trickle(bytes, gap) => {
                    for b in bytes {
                        if !self.write(&[b]).await {
                            return true;
                        }
                        tokio::time::sleep(gap).await;
                    }
                }
                Step::Repeat(bytes, times) => {
                    if bytes.is_empty() || times == 0 {
                        continue;
                    }
                    let per_batch = (64 * 1024 / bytes.len()).clamp(1, times);
                    let batch = bytes.repeat(per_batch);
                    let mut left = times;
                    while left > 0 {
                        let n = left.min(per_batch);
                        if !self.write(&batch[..n * bytes.len()]).await {
                            return true;
                        }
                        left -= n;
                    }
                }
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::AwaitClose(d) => {
                    self.shared
                        .until(self.index, d, |c: &ConnRecord| {
                            c.close_frame().is_some() || c.eof
                        })
                        .await
                }
                Step::AwaitEof(d) => {
                    self.shared
                        .until(self.index, d, |c: &ConnRecord| c.eof)
                        .await
                }
                Step::ServeClose => {
                    self.shared
                        .until(self.index, HOLD_LIMIT, |c: &ConnRecord| {
                            c.close_frame().is_some() || c.eof
                        })
                        .await;
                    let payload = {
                        let conns = self.shared.conns.lock().unwrap();
                        conns[self.index].close_frame().map(|f| f.payload.clone())
                    };
                    if let Some(payload) = payload {
                        self.write(&frame(FIN | OP_CLOSE, &payload)).await;
                    }
                    self.close().await;
                    return true;
                }
                Step::ShutdownWrite => {
                    if let Some(mut wr) = self.wr.take() {
                        let _ = wr.shutdown().await;
                    }
                }
                Step::Close => {
                    self.close().await;
                    return true;
                }
                Step::Reset => {
                    if let Some(wr) = self.wr.take() {
                        // A zero linger does not block; it makes close()
                        // send an RST (deprecated only for non-zero values).
                        #[allow(deprecated)]
                        let _ = wr.as_ref().set_linger(Some(Duration::ZERO));
                        // Without the FIN that dropping a write half sends.
                        wr.forget();
                    }
                    // Dropping the read half closes the socket.
                    self.reader.abort();
                    let _ = (&mut self.reader).await;
                    return true;
                }
            }
        }
        false
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        let Some(wr) = self.wr.as_mut() else {
            return false;
        };
        match wr.write_all(bytes).await {
            Ok(()) => true,
            Err(_) => {
                self.shared.update(self.index, |c| c.write_failed = true);
                // The client hung up: let the reader record its EOF or
                // reset before the connection is torn down.
                self.shared
                    .until(self.index, Duration::from_secs(2), |c: &ConnRecord| c.eof)
                    .await;
                false
            }
        }
    }

    /// FIN, then the whole socket closes.
    async fn close(&mut self) {
        if let Some(mut wr) = self.wr.take() {
            let _ = wr.shutdown().await;
        }
        self.reader.abort();
        let _ = (&mut self.reader).await;
    }
}

/// Reads everything the client sends: the request head (handed to the
/// script through `head_tx`), then frames, recorded for the tests.
async fn read_client(
    mut rd: OwnedReadHalf,
    index: usize,
    shared: Arc<Shared>,
    head_tx: tokio::sync::oneshot::Sender<Head>,
) {
    let mut head_tx = Some(head_tx);
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut in_head = true;
    let mut junk = false;
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if junk {
            continue;
        }
        buf.extend_from_slice(&chunk[..n]);
        if in_head {
            match buf.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(end) => {
                    let raw = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                    buf.drain(..end + 4);
                    in_head = false;
                    let head = Head::parse(raw);
                    shared.update(index, |c| c.head = Some(head.clone()));
                    if let Some(tx) = head_tx.take() {
                        let _ = tx.send(head);
                    }
                }
                None if buf.len() > MAX_HEAD_BYTES => {
                    junk = true;
                    shared.update(index, |c| c.junk = true);
                    continue;
                }
                None => continue,
            }
        }
        let mut used = 0;
        let mut frames = Vec::new();
        loop {
            match parse_client_frame(&buf[used..]) {
                Parsed::Frame(f, n) => {
                    frames.push(f);
                    used += n;
                }
                Parsed::Incomplete => break,
                Parsed::Junk => {
                    junk = true;
                    break;
                }
            }
        }
        buf.drain(..used);
        if !frames.is_empty() || junk {
            shared.update(index, |c| {
                c.frames.extend(frames);
                c.junk |= junk;
            });
        }
    }
    shared.update(index, |c| c.eof = true);
}

pub enum Parsed {
    Frame(ClientFrame, usize),
    Incomplete,
    Junk,
}

pub fn parse_client_frame(buf: &[u8]) -> Parsed {
    if buf.len() < 2 {
        return Parsed::Incomplete;
    }
    let (b0, b1) = (buf[0], buf[1]);
    let masked = b1 & 0x80 != 0;
    let mut pos = 2;
    let len = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Parsed::Incomplete;
            }
            pos = 4;
            u64::from(u16::from_be_bytes([buf[2], buf[3]]))
        }
        127 => {
            if buf.len() < 10 {
                return Parsed::Incomplete;
            }
            pos = 10;
            u64::from_be_bytes(buf[2..10].try_into().unwrap())
        }
        n => u64::from(n),
    };
    if len > MAX_CLIENT_FRAME {
        return Parsed::Junk;
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Parsed::Incomplete;
        }
        let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(key)
    } else {
        None
    };
    let len_usize = len as usize;
    if buf.len() < pos + len_usize {
        return Parsed::Incomplete;
    }
    let kept = len_usize.min(KEPT_PAYLOAD);
    let payload = buf[pos..pos + kept]
        .iter()
        .enumerate()
        .map(|(i, b)| match mask {
            Some(key) => b ^ key[i % 4],
            None => *b,
        })
        .collect();
    Parsed::Frame(
        ClientFrame {
            fin: b0 & FIN != 0,
            rsv: b0 & 0x70,
            opcode: b0 & 0x0f,
            masked,
            len,
            payload,
        },
        pos + len_usize,
    )
}
