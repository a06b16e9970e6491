//! [`TestServer`]: the listener on 127.0.0.1, its runtime thread, and what
//! its connections share (reply queue, journals, network conditions).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::connection::{self, Connection};
use crate::listener::Listener;
use crate::record::{lock, ClientClose, Journal, Message, Request};
use crate::script::{Network, Reply};

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

/// A WebSocket server on 127.0.0.1 for tests, on its own thread: it echoes
/// by default, answers each handshake with the next queued [`Reply`] (or,
/// once none is left, accepts with the first subprotocol offered),
/// records what clients send, and injects faults on command. Every method
/// is a plain blocking call from any thread, in effect when it returns.
/// Dropping it stops the thread and kills every connection.
pub struct TestServer {
    shared: Arc<Shared>,
    listener: Listener,
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
        let for_connections = shared.clone();
        let listener = Listener::start("tether-testkit", move |tcp| {
            let id = for_connections.next_id.fetch_add(1, Ordering::SeqCst);
            connection::serve(tcp, id, for_connections.clone())
        })?;
        Ok(TestServer { shared, listener })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `ws://127.0.0.1:PORT` + `path` (which should start with `/`), or
    /// `wss://localhost:PORT` + `path` on a TLS server.
    pub fn url(&self, path: &str) -> String {
        match self.shared.tls {
            None => format!("ws://{}{path}", self.addr()),
            Some(_) => format!("wss://localhost:{}{path}", self.port()),
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
        self.listener.kill(false)
    }

    /// Like a server restart: kills every connection, closes the listener
    /// and binds the same port again.
    pub fn restart(&self) -> Result<(), String> {
        self.listener.kill(true)
    }
}
