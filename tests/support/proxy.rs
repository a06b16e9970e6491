//! A fault-injecting TCP proxy on 127.0.0.1 for the integration tests.
//!
//! `FaultProxy` sits between a client and a real server and forwards bytes
//! unchanged in both directions until a test tells it to misbehave. It runs
//! on its own thread with its own tokio runtime (like `EchoServer`), so its
//! control methods are plain blocking calls usable from any test, sync or
//! async. Every control method has taken effect when it returns.
//!
//! How each fault is realised:
//! - `Mode::Forward`: each accepted connection is joined to a fresh TCP
//!   connection to the upstream; every chunk read on one side is written to
//!   the other; a FIN is passed on as a FIN (half-close is kept), a read or
//!   write error (e.g. RST) resets both sides.
//! - `Mode::Refuse`: the listening socket is closed, so a new connect gets
//!   a real "connection refused" (RST to the SYN). Leaving `Refuse` binds
//!   the same port again. Existing connections are not affected.
//! - `Mode::BlackHole`: existing and new connections stay open, but nothing
//!   is forwarded in either direction and nothing is closed: no data, no
//!   FIN, no RST — the peer vanished. Bytes that arrive meanwhile are held
//!   (mostly in the kernel's buffers, as TCP retransmission would) and are
//!   delivered in order once the mode leaves `BlackHole`.
//! - `Mode::Delay(d)`: each chunk (and a FIN or error) is delivered `d`
//!   after it was read, order kept. This is latency, not a bandwidth limit:
//!   chunks read close together are delivered close together.
//! - `kill_all()`: sends FIN to both sides of every current connection and
//!   drops whatever was queued; anything they still send is read and
//!   discarded (so the close stays a FIN, never an RST) until they close
//!   too, for at most 5 s.
//! - `reset_all()`: sets `SO_LINGER` to 0 on both sides of every current
//!   connection and closes them, so both peers get an RST.
//!
//! A connection accepted while the upstream cannot be reached is reset.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// How long a control call waits for the proxy thread before panicking.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a killed connection drains its peers before it is dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What the proxy does with traffic; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward every byte unchanged (the default).
    #[default]
    Forward,
    /// Close the listener: new connects are refused; existing connections
    /// keep forwarding.
    Refuse,
    /// Existing and new connections stay open; nothing moves, nothing
    /// closes.
    BlackHole,
    /// Deliver each chunk this long after it was read, order kept.
    Delay(Duration),
}

/// How `kill_all`/`reset_all` close a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Close {
    Fin,
    Rst,
}

/// A close order for one connection. `done` is dropped once the FIN or RST
/// has been sent, which is what the caller waits for.
struct Ctl {
    how: Close,
    done: std_mpsc::Sender<()>,
}

enum Cmd {
    SetMode(Mode, std_mpsc::Sender<Result<(), String>>),
}

struct Shared {
    upstream: Mutex<SocketAddr>,
    connections: AtomicUsize,
    active: AtomicUsize,
    next_id: AtomicU64,
    /// Close orders for every connection still open, by id.
    conns: Mutex<HashMap<u64, oneshot::Sender<Ctl>>>,
}

/// A TCP proxy from `addr()` to an upstream, with faults on command.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cmd: Option<mpsc::UnboundedSender<Cmd>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts forwarding from a fresh port on 127.0.0.1 to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            connections: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).unwrap();
                    accept_loop(listener, addr, state, cmd_rx).await;
                });
                // Dropping the runtime drops every connection task.
            })
            .unwrap();
        FaultProxy {
            addr,
            shared,
            cmd: Some(cmd_tx),
            thread: Some(thread),
        }
    }

    /// The proxy's listening address (kept across `Refuse`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://ADDR{path}`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Switches the mode. Returns once the listener is closed (`Refuse`) or
    /// bound again (leaving `Refuse`) and the connections see the new mode.
    pub fn set_mode(&self, mode: Mode) {
        let (tx, rx) = std_mpsc::channel();
        self.cmd
            .as_ref()
            .unwrap()
            .send(Cmd::SetMode(mode, tx))
            .expect("proxy thread gone");
        match rx.recv_timeout(CONTROL_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("proxy: set_mode({mode:?}) failed: {e}"),
            Err(e) => panic!("proxy: set_mode({mode:?}) got no answer: {e}"),
        }
    }

    /// Connections accepted after this call go to `upstream`; existing ones
    /// keep theirs.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = upstream;
    }

    /// Closes both sides of every current connection with a FIN. Returns
    /// once the FINs are sent.
    pub fn kill_all(&self) {
        self.close_all(Close::Fin);
    }

    /// Closes both sides of every current connection with an RST. Returns
    /// once the RSTs are sent.
    pub fn reset_all(&self) {
        self.close_all(Close::Rst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections currently open (accepted, not yet closed on both sides,
    /// killed or reset).
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    fn close_all(&self, how: Close) {
        let orders: Vec<_> = self
            .shared
            .conns
            .lock()
            .unwrap()
            .drain()
            .map(|(_, tx)| tx)
            .collect();
        let (done, all_done) = std_mpsc::channel();
        for order in orders {
            // A connection that ended meanwhile drops the order: also done.
            let _ = order.send(Ctl {
                how,
                done: done.clone(),
            });
        }
        drop(done);
        // Every connection drops its `done` once it has acted.
        let deadline = std::time::Instant::now() + CONTROL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match all_done.recv_timeout(left) {
                Ok(()) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    panic!("proxy: connections did not close ({how:?}) in time")
                }
            }
        }
    }
}

impl Drop for FaultProxy {
    /// Stops listening, drops every connection (a FIN, or an RST where
    /// unread data is pending) and joins the thread.
    fn drop(&mut self) {
        // Closing the command channel ends the accept loop.
        self.cmd.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut cmd: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut listener = Some(listener);
    let (mode_tx, mode_rx) = watch::channel(Mode::Forward);
    loop {
        tokio::select! {
            c = cmd.recv() => match c {
                None => break,
                Some(Cmd::SetMode(mode, ack)) => {
                    let result = if mode == Mode::Refuse {
                        // Closing the listener also resets connections
                        // still waiting in its backlog.
                        listener = None;
                        Ok(())
                    } else if listener.is_none() {
                        rebind(addr).await.map(|l| listener = Some(l))
                    } else {
                        Ok(())
                    };
                    mode_tx.send_replace(mode);
                    let _ = ack.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok((tcp, _)) => spawn_connection(tcp, &shared, mode_rx.clone()),
                // E.g. out of file descriptors: don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Binds the proxy's port again, retrying for a bounded time.
async fn rebind(addr: SocketAddr) -> Result<TcpListener, String> {
    let deadline = Instant::now() + CONTROL_TIMEOUT / 2;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() >= deadline => return Err(format!("cannot bind {addr}: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Keeps the books for one connection: registered while it lives, counted
/// in `active` until dropped.
struct ConnGuard {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.conns.lock().unwrap().remove(&self.id);
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn spawn_connection(client: TcpStream, shared: &Arc<Shared>, mode: watch::Receiver<Mode>) {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let (ctl_tx, ctl_rx) = oneshot::channel();
    shared.conns.lock().unwrap().insert(id, ctl_tx);
    shared.connections.fetch_add(1, Ordering::SeqCst);
    shared.active.fetch_add(1, Ordering::SeqCst);
    let guard = ConnGuard {
        id,
        shared: shared.clone(),
    };
    let upstream = *shared.upstream.lock().unwrap();
    tokio::spawn(connection(client, upstream, mode, ctl_rx, guard));
}

/// How a connection ended.
enum End {
    /// Both directions passed their FIN on.
    Clean,
    /// One side failed (e.g. was reset): reset both.
    Failed,
    /// `kill_all` or `reset_all`.
    Ordered(Ctl),
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    mut ctl: oneshot::Receiver<Ctl>,
    guard: ConnGuard,
) {
    let server = tokio::select! {
        r = TcpStream::connect(upstream) => r,
        Ok(order) = &mut ctl => {
            close(client, None, order.how).await;
            drop(guard);
            drop(order.done);
            return;
        }
    };
    let Ok(server) = server else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let end = {
        let up = pump(&mut client_r, &mut server_w, mode.clone());
        let down = pump(&mut server_r, &mut client_w, mode);
        tokio::select! {
            r = async { tokio::try_join!(up, down) } => match r {
                Ok(_) => End::Clean,
                Err(_) => End::Failed,
            },
            Ok(order) = &mut ctl => End::Ordered(order),
        }
    };
    let client = client_r.reunite(client_w).unwrap();
    let server = server_r.reunite(server_w).unwrap();
    match end {
        End::Clean => {}
        End::Failed => {
            reset(&client);
            reset(&server);
        }
        End::Ordered(order) => {
            close(client, Some(server), order.how).await;
            drop(guard);
            drop(order.done);
        }
    }
}

/// Sends a FIN or RST to each given socket. After a FIN, reads and discards
/// until the peers close too (bounded), so that unread data does not turn
/// the close into an RST; that part runs on in the background.
async fn close(a: TcpStream, b: Option<TcpStream>, how: Close) {
    let mut socks = vec![a];
    socks.extend(b);
    match how {
        Close::Rst => socks.iter().for_each(reset),
        Close::Fin => {
            for s in &mut socks {
                let _ = s.shutdown().await;
            }
            for mut s in socks {
                tokio::spawn(async move {
                    let drain = async {
                        let mut buf = vec![0u8; 16 * 1024];
                        while let Ok(1..) = s.read(&mut buf).await {}
                    };
                    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
                });
            }
        }
    }
}

/// Makes dropping the socket send an RST instead of a FIN.
fn reset(s: &TcpStream) {
    // Deprecated because a non-zero linger blocks the thread on drop; a zero
    // linger does not block, it just makes close() send an RST.
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
}

enum Chunk {
    Data(Vec<u8>),
    Eof,
    Err(io::Error),
}

/// Waits while the mode is `BlackHole`.
async fn flowing(mode: &mut watch::Receiver<Mode>) {
    // An error means the proxy is shutting down; nothing left to wait for.
    let _ = mode.wait_for(|m| *m != Mode::BlackHole).await;
}

fn delay(mode: &watch::Receiver<Mode>) -> Duration {
    match *mode.borrow() {
        Mode::Delay(d) => d,
        _ => Duration::ZERO,
    }
}

/// Forwards one direction until EOF (passed on as a FIN) or an error
/// (returned, after anything read before it was delivered).
async fn pump(
    r: &mut OwnedReadHalf,
    w: &mut OwnedWriteHalf,
    mode: watch::Receiver<Mode>,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Chunk)>();
    let mut read_mode = mode.clone();
    let reading = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // In a black hole, leave the bytes in the kernel's buffers.
            flowing(&mut read_mode).await;
            let chunk = match r.read(&mut buf).await {
                Ok(0) => Chunk::Eof,
                Ok(n) => Chunk::Data(buf[..n].to_vec()),
                Err(e) => Chunk::Err(e),
            };
            let last = !matches!(chunk, Chunk::Data(_));
            let due = Instant::now() + delay(&read_mode);
            if tx.send((due, chunk)).is_err() || last {
                return Ok::<(), io::Error>(());
            }
        }
    };
    let mut write_mode = mode;
    let writing = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            // A chunk read just before the hole opened is held too.
            flowing(&mut write_mode).await;
            match chunk {
                Chunk::Data(b) => w.write_all(&b).await?,
                Chunk::Eof => return w.shutdown().await,
                Chunk::Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    tokio::try_join!(reading, writing).map(|_| ())
}
