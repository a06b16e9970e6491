//! [`SseTestServer`]: the Server-Sent Events personality of the kit, an
//! HTTP/1.1 server written by hand over TCP (as the WebSocket one is) on
//! the same listener, link shaping and network conditions.

mod script;
mod stream;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

pub use script::{SseEvent, SseReply};
pub use stream::SseStream;

use crate::listener::Listener;
use crate::record::{lock, Journal, Request};
use crate::script::Network;

/// What the streams share with the handle.
pub(crate) struct SseShared {
    /// Set on `https://` servers.
    tls: Option<crate::tls::Identity>,
    replies: Mutex<VecDeque<SseReply>>,
    next_id: AtomicU64,
    network: watch::Sender<Network>,
    requests: Journal<Request>,
    streams: Journal<SseStream>,
}

impl SseShared {
    /// The next queued reply; `None` once the queue is empty (accept).
    fn next_reply(&self) -> Option<SseReply> {
        lock(&self.replies).pop_front()
    }
}

/// A Server-Sent Events server on 127.0.0.1 for tests, on its own thread:
/// it answers each request with the next queued [`SseReply`] (once none is
/// left, it accepts: `200`, `text/event-stream`), records every request,
/// and hands each accepted stream to the test as an [`SseStream`] that
/// sends events, comments, raw bytes, ends, resets or stalls it. Every
/// method is a plain blocking call from any thread, in effect when it
/// returns. Dropping it stops the thread and kills every connection.
///
/// ```no_run
/// use std::time::Duration;
/// use tether_testkit::{SseEvent, SseReply, SseTestServer};
///
/// let server = SseTestServer::start().unwrap();
/// server.push_reply(SseReply::refuse(503, &[("Retry-After", "1")])).unwrap();
/// // … connect the client under test to server.url("/feed") …
/// let stream = server.await_stream(Duration::from_secs(5)).unwrap();
/// stream.send(&SseEvent::data("hello").id("1"));
/// stream.end(); // the client comes back with Last-Event-ID: 1
/// let again = server.await_request(Duration::from_secs(5)).unwrap();
/// ```
pub struct SseTestServer {
    shared: Arc<SseShared>,
    listener: Listener,
}

impl SseTestServer {
    /// Starts on a free port of 127.0.0.1 (`http://`).
    pub fn start() -> std::io::Result<SseTestServer> {
        Self::start_with(None)
    }

    /// An `https://` server: like [`SseTestServer::start`], over TLS with
    /// a certificate for `localhost` and `127.0.0.1` from a CA made now
    /// ([`SseTestServer::ca_pem`]).
    pub fn start_tls() -> std::io::Result<SseTestServer> {
        let identity = crate::tls::identity().map_err(std::io::Error::other)?;
        Self::start_with(Some(identity))
    }

    fn start_with(tls: Option<crate::tls::Identity>) -> std::io::Result<SseTestServer> {
        let shared = Arc::new(SseShared {
            tls,
            replies: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(1),
            network: watch::Sender::new(Network::default()),
            requests: Journal::new(),
            streams: Journal::new(),
        });
        let for_streams = shared.clone();
        let listener = Listener::start("tether-testkit-sse", move |tcp| {
            let id = for_streams.next_id.fetch_add(1, Ordering::SeqCst);
            stream::serve(tcp, id, for_streams.clone())
        })?;
        Ok(SseTestServer { shared, listener })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.addr()
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `http://127.0.0.1:PORT` + `path` (which should start with `/`), or
    /// `https://localhost:PORT` + `path` on a TLS server.
    pub fn url(&self, path: &str) -> String {
        match self.shared.tls {
            None => format!("http://{}{path}", self.addr()),
            Some(_) => format!("https://localhost:{}{path}", self.port()),
        }
    }

    /// A TLS server's CA certificate, PEM (for the client's
    /// `tls.extra_ca_pem`); `None` on an `http://` server.
    pub fn ca_pem(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// base64(SHA-256(SubjectPublicKeyInfo)) of a TLS server's certificate
    /// (for the client's `tls.pin_sha256`); `None` on an `http://` server.
    pub fn pin_sha256(&self) -> Option<&str> {
        self.shared.tls.as_ref().map(|t| t.pin_sha256.as_str())
    }

    /// Queues the answer to a coming request (first queued, first used).
    pub fn push_reply(&self, reply: SseReply) -> Result<(), String> {
        reply.check()?;
        lock(&self.shared.replies).push_back(reply);
        Ok(())
    }

    /// Replaces the network conditions of every connection, current and
    /// new (the same [`Network`] as the WebSocket server's).
    pub fn set_network(&self, network: Network) {
        self.shared.network.send_replace(network);
    }

    pub fn network(&self) -> Network {
        *self.shared.network.borrow()
    }

    /// The next request not taken yet, waiting at most `timeout`.
    pub fn await_request(&self, timeout: Duration) -> Option<Request> {
        self.shared.requests.next(timeout)
    }

    /// The next accepted stream not taken yet, waiting at most `timeout`.
    pub fn await_stream(&self, timeout: Duration) -> Option<SseStream> {
        self.shared.streams.next(timeout)
    }

    /// Every request so far, taken or not.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.all()
    }

    /// Streams accepted so far.
    pub fn stream_count(&self) -> usize {
        self.shared.streams.len()
    }

    /// Kills every connection (no last chunk: like a crash), keeps listening.
    pub fn kill_connections(&self) -> Result<(), String> {
        self.listener.kill(false)
    }

    /// Like a server restart: kills every connection, closes the listener
    /// and binds the same port again.
    pub fn restart(&self) -> Result<(), String> {
        self.listener.kill(true)
    }
}
