//! Real WebSocket servers on 127.0.0.1 for the integration tests.
#![allow(dead_code)]
pub mod connect_proxy;
pub mod hostile;
pub mod hostile_engineio;
pub mod pki;
pub mod proxy;
pub mod socketio_server;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::{Client, Event, State};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// Request headers of each accepted handshake, in order.
pub type Handshakes = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A TCP server on its own thread and runtime: each accepted connection
/// is handed to `serve` as a task. Dropping it stops listening and aborts
/// every connection (no close frame, no FIN handshake to wait for).
pub struct ServerThread {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    pub fn start<F, Fut>(addr: SocketAddr, serve: F) -> ServerThread
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let std_listener = bind_with_retry(addr);
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let (shutdown, mut stop) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let mut tasks = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((tcp, _)) = accepted else { continue };
                            // Replies are small writes in a row: no Nagle delay.
                            let _ = tcp.set_nodelay(true);
                            tasks.spawn(serve(tcp));
                        }
                    }
                }
                tasks.abort_all();
            });
        });
        ServerThread {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An echo server on its own thread and runtime. Text commands change its
/// behaviour: `close:CODE:REASON` makes it close with that code, `drop`
/// makes it hang up without a close handshake.
pub struct EchoServer {
    pub addr: SocketAddr,
    /// Request headers of every accepted handshake, in order.
    pub handshakes: Handshakes,
    server: ServerThread,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Starts on a given address (to restart a server on the same port).
    pub fn start_on(addr: SocketAddr) -> EchoServer {
        Self::start_with(addr, None)
    }

    /// A `wss://` echo server with this TLS configuration.
    pub fn start_tls(tls: Arc<rustls::ServerConfig>) -> EchoServer {
        Self::start_with("127.0.0.1:0".parse().unwrap(), Some(tls))
    }

    fn start_with(addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) -> EchoServer {
        let handshakes: Handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        let server = ServerThread::start(addr, move |tcp| {
            let (seen, tls) = (seen.clone(), tls.clone());
            async move {
                match tls {
                    None => serve(tcp, seen).await,
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve(stream, seen).await;
                        }
                    }
                }
            }
        });
        EchoServer {
            addr: server.addr,
            handshakes,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/echo", self.addr)
    }

    /// The `wss://` URL with `host` in place of the address.
    pub fn tls_url(&self, host: &str) -> String {
        format!("wss://{host}:{}/echo", self.addr.port())
    }

    /// Stops listening and kills every connection without a close frame.
    pub fn kill(mut self) {
        self.server.stop();
    }
}

fn bind_with_retry(addr: SocketAddr) -> std::net::TcpListener {
    // A port just released may linger briefly; retry for a bounded time.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

#[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
async fn serve<S>(tcp: S, seen: Handshakes)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let record = |req: &Request, mut resp: Response| {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        seen.lock().unwrap().push(headers);
        // Pick the first offered subprotocol, if any; an offer starting
        // with "unsupported" gets none (like a server that knows none).
        if let Some(offered) = req
            .headers()
            .get("sec-websocket-protocol")
            .filter(|v| !v.as_bytes().starts_with(b"unsupported"))
        {
            let first = offered
                .to_str()
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .trim()
                .to_string();
            resp.headers_mut()
                .insert("sec-websocket-protocol", first.parse().unwrap());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) if t.as_str() == "drop" => return,
            Message::Text(t) if t.as_str().starts_with("close:") => {
                let mut parts = t.as_str().splitn(3, ':').skip(1);
                let code: u16 = parts.next().unwrap().parse().unwrap();
                let reason = parts.next().unwrap_or("").to_string();
                let _ = ws
                    .close(Some(CloseFrame {
                        code: CloseCode::from(code),
                        reason: reason.into(),
                    }))
                    .await;
                // Finish the handshake: read until the client's Close.
                while let Some(Ok(_)) = ws.next().await {}
                return;
            }
            Message::Text(_) | Message::Binary(_) => {
                let Ok(()) = ws.send(msg).await else { return };
            }
            _ => {}
        }
    }
}

/// Polls until `pred` matches an event, collecting everything seen.
/// Panics after `timeout`.
pub fn poll_until(client: &Client, timeout: Duration, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; events so far: {seen:#?}");
        if let Some(ev) = client.poll_event(Some(left)).expect("poll failed") {
            let done = pred(&ev);
            seen.push(ev);
            if done {
                return seen;
            }
        }
    }
}

pub fn wait_open(client: &Client) -> Vec<Event> {
    poll_until(client, Duration::from_secs(10), |e| {
        matches!(e, Event::Open { .. })
    })
}

pub fn states(events: &[Event]) -> Vec<State> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::State(s) => Some(*s),
            _ => None,
        })
        .collect()
}

/// The codes of the `Error` events, in order.
pub fn error_codes(events: &[Event]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// Code and reason of the `Closed` events, in order.
pub fn closes(events: &[Event]) -> Vec<(u16, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Closed { code, reason } => Some((*code, reason.clone())),
            _ => None,
        })
        .collect()
}

pub fn close_codes(events: &[Event]) -> Vec<u16> {
    closes(events).into_iter().map(|(code, _)| code).collect()
}

/// The received texts, in order.
pub fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Text(t) => Some(t.as_str().to_string()),
            _ => None,
        })
        .collect()
}
