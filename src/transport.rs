//! Where a client connects and the byte stream under its wire: TCP, TLS
//! over TCP (directly or through an HTTP proxy), or an injected stream.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::Bytes;

use futures_util::future::BoxFuture;

use crate::error::Error;
use crate::options::{authority_port, ProxyConfig};

/// A validated `ws://` or `wss://` URL.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub uri: Uri,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    /// A `ws://` or `wss://` URL.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        Endpoint::parse_with(url, ["ws", "wss"])
    }

    /// An `http://` or `https://` URL (https is TLS, with the same trust,
    /// pins and proxy as wss).
    pub fn parse_http(url: &str) -> Result<Endpoint, Error> {
        Endpoint::parse_with(url, ["http", "https"])
    }

    /// `schemes`: the cleartext one, then the TLS one.
    fn parse_with(url: &str, schemes: [&str; 2]) -> Result<Endpoint, Error> {
        // The URL itself is not echoed: it may carry a token.
        let invalid = |why: &str| Err(Error::InvalidArgument(format!("URL: {why}")));
        let uri: Uri = match url.parse() {
            Ok(uri) => uri,
            Err(e) => return invalid(&format!("malformed ({e})")),
        };
        let [plain, secure] = schemes;
        let tls = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case(plain) => false,
            Some(s) if s.eq_ignore_ascii_case(secure) => true,
            Some(other) => {
                return invalid(&format!(
                    "unsupported scheme {other:?}; use {plain} or {secure}"
                ))
            }
            None => return invalid(&format!("missing scheme; use {plain}:// or {secure}://")),
        };
        let host = match uri.host() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return invalid("missing host"),
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return invalid("user info in the URL is not supported; use the headers option");
        }
        if url.contains('#') {
            return invalid("fragments (#…) are not allowed in the URL (RFC 6455 §3)");
        }
        let default_port = if tls { 443 } else { 80 };
        let Some(port) = authority_port(uri.authority().map_or("", |a| a.as_str()), default_port)
        else {
            return invalid("the port must be between 1 and 65535");
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            tls,
            uri,
        })
    }
}

impl Endpoint {
    /// The `Host` header of requests to this endpoint (the port only when
    /// it is not the scheme's default).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.tls { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The request target: path and query (`/` when the URL has none).
    pub fn target(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }
}

/// Any byte stream a wire can run over (tests use in-memory ones).
#[cfg(test)]
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

#[cfg(test)]
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// The stream a wire runs over: TCP or TLS, statically dispatched, or
/// an injected stream.
pub(crate) enum Transport {
    /// Shared with the WebSocket writer's direct sends (see [`SharedTcp`]).
    Plain(Arc<SharedTcp>),
    Tls(Box<TlsStream<TcpStream>>),
    #[cfg(test)]
    Injected(Box<dyn ByteStream>),
}

/// Opens the byte stream of one attempt. The session is given one, so that
/// its tests run over in-memory streams instead of sockets.
pub(crate) trait Dialer: Send + Sync + 'static {
    fn dial<'a>(&'a self, endpoint: &'a Endpoint)
        -> BoxFuture<'a, Result<Transport, ConnectError>>;

    /// Whether attempts go through an HTTP proxy (for logs).
    fn through_proxy(&self) -> bool {
        false
    }
}

/// The real network: TCP (or a proxy's tunnel), then TLS for `wss://`.
pub(crate) struct NetDialer {
    pub proxy: Option<ProxyConfig>,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Dialer for NetDialer {
    fn dial<'a>(
        &'a self,
        endpoint: &'a Endpoint,
    ) -> BoxFuture<'a, Result<Transport, ConnectError>> {
        Box::pin(Transport::connect(
            endpoint,
            self.proxy.as_ref(),
            self.tls.as_ref(),
        ))
    }

    fn through_proxy(&self) -> bool {
        self.proxy.is_some()
    }
}

impl Transport {
    /// TCP connect (with DNS), then TLS when the endpoint asks for it.
    pub async fn connect(
        endpoint: &Endpoint,
        proxy: Option<&ProxyConfig>,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Transport, ConnectError> {
        let tcp = match proxy {
            Some(proxy) => tunnel(proxy, endpoint).await?,
            None => TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(ConnectError::Tcp)?,
        };
        // Small messages must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let Some(config) = tls.filter(|_| endpoint.tls) else {
            return Ok(Transport::Plain(Arc::new(SharedTcp::new(tcp))));
        };
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|e| ConnectError::Tls(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let stream = tokio_rustls::TlsConnector::from(config.clone())
            .connect(name, tcp)
            .await
            .map_err(ConnectError::Tls)?;
        Ok(Transport::Tls(Box::new(stream)))
    }
}

/// Opens a tunnel to `endpoint` through `proxy`.
async fn tunnel(proxy: &ProxyConfig, endpoint: &Endpoint) -> Result<TcpStream, ConnectError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| ConnectError::Proxy(format!("cannot reach the proxy: {e}"), None))?;
    let _ = tcp.set_nodelay(true);
    let target = if endpoint.host.contains(':') {
        format!("[{}]:{}", endpoint.host, endpoint.port)
    } else {
        format!("{}:{}", endpoint.host, endpoint.port)
    };
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(auth) = &proxy.authorization {
        request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    request.push_str("\r\n");
    let lost = |e: io::Error| ConnectError::Proxy(format!("proxy connection failed: {e}"), None);
    tcp.write_all(request.as_bytes()).await.map_err(lost)?;
    // Read the answer's head byte by byte: nothing after it may be
    // consumed, it belongs to the tunnel.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= 16 * 1024 {
            return Err(ConnectError::Proxy("proxy answer too long".into(), None));
        }
        let byte = tcp.read_u8().await.map_err(lost)?;
        head.push(byte);
    }
    let status_line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let status = std::str::from_utf8(status_line)
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(tcp),
        Some(code) => Err(ConnectError::Proxy(
            format!("the proxy refused the tunnel: HTTP {code}"),
            Some(code),
        )),
        None => Err(ConnectError::Proxy(
            "the proxy's answer is not HTTP".into(),
            None,
        )),
    }
}

#[derive(Debug)]
pub(crate) enum ConnectError {
    Tcp(io::Error),
    Tls(io::Error),
    /// The proxy failed: message, and its HTTP status if it answered.
    Proxy(String, Option<u16>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => s.poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(test)]
            Transport::Injected(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => s.poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(test)]
            Transport::Injected(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            // No vectored writes of its own: the first slice, as
            // `AsyncWrite`'s default does (tungstenite writes one buffer).
            Transport::Plain(s) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &**b);
                s.poll_write(cx, first)
            }
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            #[cfg(test)]
            Transport::Injected(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(s) => s.is_write_vectored(),
            #[cfg(test)]
            Transport::Injected(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => s.poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(test)]
            Transport::Injected(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Poll::Ready(s.shutdown_write()),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(test)]
            Transport::Injected(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Transport {
    /// The plain TCP connection, which the app's thread may write to
    /// directly (`None` for TLS: its record state is the reader's too).
    pub fn shared_tcp(&self) -> Option<Arc<SharedTcp>> {
        match self {
            Transport::Plain(tcp) => Some(tcp.clone()),
            _ => None,
        }
    }
}

/// A plain TCP connection with two writers: the connection task (through
/// `Transport`'s `AsyncWrite`: tungstenite's frames, Pongs included) and
/// a direct send on the app's thread ([`SharedTcp::try_write_whole`]).
/// Reads and writes use tokio's `&self` socket calls, so neither writer
/// ever waits for the reader. Writers take turns under `turn`, never
/// splitting the other's frame; what a direct send left over goes first.
pub(crate) struct SharedTcp {
    stream: TcpStream,
    turn: parking_lot::Mutex<WriteTurn>,
}

#[derive(Default)]
struct WriteTurn {
    /// A direct send's bytes the socket has not taken yet, or a frame the
    /// task handed over whole (`try_keep`).
    leftover: Bytes,
    /// How much of `leftover` is written.
    sent: usize,
    /// The task's last write stopped inside what it offered (tungstenite
    /// offers its whole buffer each time, so a whole write ends at a frame
    /// boundary): nothing may go in between.
    mid_frame: bool,
}

/// What [`SharedTcp::try_write_whole`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DirectOutcome {
    /// All of it is in the socket.
    Written,
    /// Part (or none) of it is in the socket; the rest goes before
    /// anything else, on the next write or flush of the connection task.
    Kept,
    /// Nothing written: another write is under way, or the socket failed
    /// (which the connection task will find itself).
    Busy,
}

impl SharedTcp {
    pub fn new(stream: TcpStream) -> SharedTcp {
        SharedTcp {
            stream,
            turn: parking_lot::Mutex::new(WriteTurn::default()),
        }
    }

    /// Writes `bytes` (one whole frame) now, on the caller's thread,
    /// without waiting: not even for the lock, which the task may hold.
    pub fn try_write_whole(&self, bytes: &[u8]) -> DirectOutcome {
        let Some(mut turn) = self.turn.try_lock() else {
            return DirectOutcome::Busy;
        };
        if turn.mid_frame || turn.sent < turn.leftover.len() {
            return DirectOutcome::Busy;
        }
        let written = match self.stream.try_write(bytes) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => return DirectOutcome::Busy,
        };
        if written == bytes.len() {
            return DirectOutcome::Written;
        }
        turn.leftover = Bytes::copy_from_slice(&bytes[written..]);
        turn.sent = 0;
        DirectOutcome::Kept
    }

    /// Takes `frame` (whole frames the task built) to go out before
    /// anything written after it, on the task's next write or flush; false
    /// (nothing taken) while something else must go first: a direct send's
    /// rest, the rest of a frame the socket took part of.
    pub fn try_keep(&self, frame: Bytes) -> bool {
        let Some(mut turn) = self.turn.try_lock() else {
            return false;
        };
        if turn.mid_frame || turn.sent < turn.leftover.len() {
            return false;
        }
        turn.leftover = frame;
        turn.sent = 0;
        true
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            // Into the buffer's unfilled part as it is: a buffer handed in
            // uninitialised (a lifted frame's) is not zeroed first.
            let want = buf.remaining();
            let n = self
                .io_clearing_when_short(Interest::READABLE, want, || self.stream.try_read_buf(buf));
            match n {
                Ok(_) => return Poll::Ready(Ok(())),
                // The readiness was stale and is cleared now: poll again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// One read or write of at most `want` bytes; one that moves fewer
    /// clears the readiness, as tokio's own socket calls do (the socket is
    /// drained, or full): the next call then waits for the next edge
    /// instead of making a system call that finds nothing.
    fn io_clearing_when_short(
        &self,
        interest: Interest,
        want: usize,
        io: impl FnOnce() -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut moved = None;
        let result = self.stream.try_io(interest, || {
            let n = io()?;
            moved = Some(n);
            if n > 0 && n < want {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match (result, moved) {
            (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            (result, _) => result,
        }
    }

    /// The turn, or Pending (and polled again at once): a direct send
    /// holds it only for one non-blocking write.
    fn poll_turn(&self, cx: &mut Context<'_>) -> Poll<parking_lot::MutexGuard<'_, WriteTurn>> {
        match self.turn.try_lock() {
            Some(turn) => Poll::Ready(turn),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn poll_socket_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.stream.poll_write_ready(cx))?;
            // tokio's write: no SIGPIPE from a reset peer (MSG_NOSIGNAL).
            let n = self.io_clearing_when_short(Interest::WRITABLE, bytes.len(), || {
                self.stream.try_write(bytes)
            });
            match n {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes what a direct send left over.
    fn poll_leftover(&self, turn: &mut WriteTurn, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while turn.sent < turn.leftover.len() {
            let n = std::task::ready!(self.poll_socket_write(cx, &turn.leftover[turn.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            turn.sent += n;
        }
        turn.leftover = Bytes::new();
        turn.sent = 0;
        Poll::Ready(Ok(()))
    }

    fn poll_write(&self, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let mut turn = std::task::ready!(self.poll_turn(cx));
        std::task::ready!(self.poll_leftover(&mut turn, cx))?;
        let n = std::task::ready!(self.poll_socket_write(cx, bytes))?;
        turn.mid_frame = n < bytes.len();
        Poll::Ready(Ok(n))
    }

    /// Writes what is kept (`try_write_whole`'s rest, `try_keep`'s frame).
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut turn = std::task::ready!(self.poll_turn(cx));
        self.poll_leftover(&mut turn, cx)
    }

    fn shutdown_write(&self) -> io::Result<()> {
        socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_and_wss_with_default_ports() {
        let e = Endpoint::parse("ws://example.com/chat?x=1").unwrap();
        assert_eq!((e.host.as_str(), e.port, e.tls), ("example.com", 80, false));
        let e = Endpoint::parse("wss://example.com:8443/").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("example.com", 8443, true)
        );
        let e = Endpoint::parse("ws://[::1]:9000").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
    }

    #[test]
    fn rejects_what_is_not_a_websocket_url() {
        for bad in [
            "",
            "example.com",
            "http://example.com",
            "ftp://x",
            "ws://",
            "ws://user:pw@host/",
            "ws://exa mple.com",
            "ws://127.0.0.1:99999/",
            "ws://127.0.0.1:65536/",
            "ws://127.0.0.1:0/",
            "ws://127.0.0.1:+80/",
            "wss://example.test:+443/",
            "ws://host/#frag",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn parses_http_and_https_for_the_http_wires() {
        let e = Endpoint::parse_http("http://127.0.0.1:8080/events?x=1").unwrap();
        assert_eq!((e.port, e.tls, e.target()), (8080, false, "/events?x=1"));
        assert_eq!(e.host_header(), "127.0.0.1:8080");
        let e = Endpoint::parse_http("https://example.com").unwrap();
        assert_eq!((e.port, e.tls, e.target()), (443, true, "/"));
        assert_eq!(e.host_header(), "example.com");
        let e = Endpoint::parse_http("http://[::1]:9/").unwrap();
        assert_eq!(e.host_header(), "[::1]:9");
        for bad in [
            "ws://x/",
            "wss://x/",
            "http://",
            "http://u:p@x/",
            "http://x:0/",
            "ftp://x/",
        ] {
            assert!(Endpoint::parse_http(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Endpoint::parse("http://x/").is_err());
    }

    #[test]
    fn errors_do_not_echo_the_url() {
        let Err(Error::InvalidArgument(msg)) = Endpoint::parse("ws://user:s3cret@host/") else {
            panic!("accepted")
        };
        assert!(!msg.contains("s3cret"), "{msg}");
    }
}
