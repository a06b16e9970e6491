//! [`TestServer`]: the listener on 127.0.0.1, its runtime thread, and what
//! its connections share (reply queue, journals, network conditions).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::connection::{self, Connection};
use crate::record::{lock, ClientClose, Journal, Message, Request};
use crate::script::{Network, Reply};

/// How long a control call (restart, kill) waits for the server thread.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the connections share with the handle.
pub(crate) struct Shared {
    /// Set on `wss://` servers.
    pub(crate) tls: Option<crate::tls::Identity>,
    replies: Mutex<VecDeque<Reply>>,
    echo: AtomicBool,
    next_id: AtomicU64,
    pub(crate) network: watch::Sender<Network>,
    pub(crate) requests: Journal<Request>,
    pub(crate) messages: Journal<Message>,
    pub(crate) connections: Journal<Connection>,
    pub(crate) client_closes: Journal<ClientClose>,
}

impl Shared {
    /// The next queued reply; `None` once the queue is empty (accept,
    /// choosing the first subprotocol the client offers).
    pub(crate) fn next_reply(&self) -> Option<Reply> {
        lock(&self.replies).pop_front()
    }

    /// The next reply if it acts at the TLS handshake (`OtherKey` stays
    /// queued as an accept for the WebSocket handshake that follows).
    pub(crate) fn take_tls_reply(&self) -> Option<Reply> {
        let mut replies = lock(&self.replies);
        if !replies.front()?.is_tls() {
            return None;
        }
        let reply = replies.pop_front()?;
        if reply == Reply::OtherKey {
            replies.push_front(Reply::accept());
        }
        Some(reply)
    }

    pub(crate) fn echo(&self) -> bool {
        self.echo.load(Ordering::SeqCst)
    }
}

enum Control {
    /// Kill every connection; with `true`, also close the listener and
    /// bind the same port again.
    Kill {
        rebind: bool,
        done: std_mpsc::Sender<Result<(), String>>,
    },
}

/// A WebSocket server on 127.0.0.1 for tests, on its own thread: it echoes
/// by default, answers each handshake with the next queued [`Reply`] (or,
/// once none is left, accepts with the first subprotocol offered),
/// records what clients send, and injects faults on command. Every method
/// is a plain blocking call from any thread, in effect when it returns.
/// Dropping it stops the thread and kills every connection.
pub struct TestServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    control: Option<mpsc::UnboundedSender<Control>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts on a free port of 127.0.0.1, echoing.
    pub fn start() -> std::io::Result<TestServer> {
        Self::start_with(None)
    }

    /// A `wss://` server: like [`TestServer::start`], over TLS with a
    /// certificate for `localhost` and `127.0.0.1` from a CA made now
    /// ([`TestServer::ca_pem`]); TLS faults can be queued as replies.
    pub fn start_tls() -> std::io::Result<TestServer> {
        let identity = crate::tls::identity().map_err(std::io::Error::other)?;
        Self::start_with(Some(identity))
    }

    fn start_with(tls: Option<crate::tls::Identity>) -> std::io::Result<TestServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            tls,
            replies: Mutex::new(VecDeque::new()),
            echo: AtomicBool::new(true),
            next_id: AtomicU64::new(1),
            network: watch::Sender::new(Network::default()),
            requests: Journal::new(),
            messages: Journal::new(),
            connections: Journal::new(),
            client_closes: Journal::new(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("tether-testkit".into())
            .spawn(move || {
                runtime.block_on(async move {
                    if let Ok(l) = TcpListener::from_std(listener) {
                        accept_loop(l, addr, for_thread, control_rx).await;
                    }
                });
                // Dropping the runtime drops every connection task.
            })?;
        Ok(TestServer {
            addr,
            shared,
            control: Some(control_tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `ws://127.0.0.1:PORT` + `path` (which should start with `/`), or
    /// `wss://localhost:PORT` + `path` on a TLS server.
    pub fn url(&self, path: &str) -> String {
        match self.shared.tls {
            None => format!("ws://{}{path}", self.addr),
            Some(_) => format!("wss://localhost:{}{path}", self.addr.port()),
        }
    }

    /// A TLS server's CA certificate, PEM (for the client's
    /// `tls.extra_ca_pem`); `None` on a `ws://` server.
    pub fn ca_pem(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// base64(SHA-256(SubjectPublicKeyInfo)) of a TLS server's certificate
    /// (for the client's `tls.pin_sha256`); `None` on a `ws://` server.
    pub fn pin_sha256(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|t| t.pin_sha256.as_str())
    }

    /// Whether text and binary messages are echoed (on by default).
    pub fn set_echo(&self, echo: bool) {
        self.shared.echo.store(echo, Ordering::SeqCst);
    }

    /// Queues the answer to a coming handshake (first queued, first used).
    pub fn push_reply(&self, reply: Reply) -> Result<(), String> {
        reply.check()?;
        if reply.is_tls() && self.shared.tls.is_none() {
            return Err(format!("{reply:?} needs a TLS server (start_tls)"));
        }
        lock(&self.shared.replies).push_back(reply);
        Ok(())
    }

    /// Replaces the network conditions of every connection, current and new.
    pub fn set_network(&self, network: Network) {
        self.shared.network.send_replace(network);
    }

    pub fn network(&self) -> Network {
        *self.shared.network.borrow()
    }

    /// The next handshake request not taken yet, waiting at most `timeout`.
    pub fn await_request(&self, timeout: Duration) -> Option<Request> {
        self.shared.requests.next(timeout)
    }

    /// The next message from a client not taken yet, waiting at most `timeout`.
    pub fn await_message(&self, timeout: Duration) -> Option<Message> {
        self.shared.messages.next(timeout)
    }

    /// The next accepted WebSocket connection not taken yet, waiting at
    /// most `timeout`.
    pub fn await_connection(&self, timeout: Duration) -> Option<Connection> {
        self.shared.connections.next(timeout)
    }

    /// The next Close frame from a client not taken yet, waiting at most
    /// `timeout`.
    pub fn await_client_close(&self, timeout: Duration) -> Option<ClientClose> {
        self.shared.client_closes.next(timeout)
    }

    /// Every handshake request so far, taken or not.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.all()
    }

    /// Every message so far, taken or not.
    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.all()
    }

    /// WebSocket connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.len()
    }

    /// Kills every connection (no Close frame: like a crash), keeps listening.
    pub fn kill_connections(&self) -> Result<(), String> {
        self.control(false)
    }

    /// Like a server restart: kills every connection, closes the listener
    /// and binds the same port again.
    pub fn restart(&self) -> Result<(), String> {
        self.control(true)
    }

    fn control(&self, rebind: bool) -> Result<(), String> {
        let (done, answer) = std_mpsc::channel();
        self.control
            .as_ref()
            .ok_or("the server is stopped")?
            .send(Control::Kill { rebind, done })
            .map_err(|_| "the server thread is gone")?;
        answer
            .recv_timeout(CONTROL_TIMEOUT)
            .map_err(|_| "the server thread did not answer".to_string())?
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Closing the control channel ends the accept loop.
        self.control.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    mut control: mpsc::UnboundedReceiver<Control>,
) {
    let mut listener = Some(listener);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            c = control.recv() => match c {
                None => break,
                Some(Control::Kill { rebind, done }) => {
                    if rebind {
                        listener = None;
                    }
                    connections.shutdown().await;
                    let result = match listener {
                        Some(_) => Ok(()),
                        None => bind(addr).await.map(|l| listener = Some(l)),
                    };
                    let _ = done.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(tcp) => {
                    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(connection::serve(tcp, id, shared.clone()));
                }
                // E.g. out of file descriptors: don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<tokio::net::TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(tcp, _)| tcp),
        None => std::future::pending().await,
    }
}

/// Binds `addr` again, retrying for a bounded time (a port just released
/// may linger).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let deadline = tokio::time::Instant::now() + CONTROL_TIMEOUT / 2;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("cannot bind {addr} again: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
