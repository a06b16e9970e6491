//! Where a client connects and the byte stream under its WebSocket: TCP,
//! or TLS over TCP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::http::Uri;

use crate::error::Error;

/// A validated `ws://` or `wss://` URL.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub uri: Uri,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        // The URL itself is not echoed: it may carry a token.
        let invalid = |why: &str| Err(Error::InvalidArgument(format!("URL: {why}")));
        let uri: Uri = match url.parse() {
            Ok(uri) => uri,
            Err(e) => return invalid(&format!("malformed ({e})")),
        };
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some(other) => return invalid(&format!("unsupported scheme {other:?}; use ws or wss")),
            None => return invalid("missing scheme; use ws:// or wss://"),
        };
        let host = match uri.host() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => return invalid("missing host"),
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return invalid("user info in the URL is not supported; use the headers option");
        }
        if url.contains('#') {
            return invalid("fragments (#…) are not allowed in WebSocket URLs (RFC 6455 §3)");
        }
        // `Uri::port` hides a port that is not a u16: read it ourselves.
        let authority = uri.authority().map_or("", |a| a.as_str());
        let host_port = authority.rsplit('@').next().unwrap_or("");
        let port_text = match host_port.rfind(':') {
            Some(i) if i > host_port.rfind(']').unwrap_or(0) => Some(&host_port[i + 1..]),
            _ => None,
        };
        let port = match port_text {
            None | Some("") => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(text) => match text.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return invalid("the port must be between 1 and 65535"),
            },
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            tls,
            uri,
        })
    }
}

/// An HTTP proxy that tunnels with CONNECT (RFC 9110 §9.3.6).
#[derive(Debug, Clone)]
pub(crate) struct Proxy {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value (Basic), from the URL's user info.
    authorization: Option<String>,
}

impl Proxy {
    /// Parses `http://[user:password@]host:port`. Errors never echo the
    /// URL: it may carry a password.
    pub fn parse(url: &str) -> Result<Proxy, Error> {
        let invalid = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "options: proxy: {why} (expected http://[user:password@]host:port)"
            )))
        };
        let Ok(uri) = url.parse::<Uri>() else {
            return invalid("malformed URL");
        };
        if uri.scheme_str() != Some("http") {
            return invalid("only http:// proxies (CONNECT) are supported");
        }
        let Some(authority) = uri.authority() else {
            return invalid("missing host");
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return invalid("a proxy URL has no path");
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return invalid("missing host");
        }
        let authorization = authority.as_str().rsplit_once('@').map(|(userinfo, _)| {
            use base64::Engine;
            let decoded = percent_decode(userinfo);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded)
            )
        });
        Ok(Proxy {
            host: host.to_string(),
            port: authority.port_u16().unwrap_or(80),
            authorization,
        })
    }

    /// Opens a tunnel to `endpoint` through this proxy.
    async fn tunnel(&self, endpoint: &Endpoint) -> Result<TcpStream, ConnectError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| ConnectError::Proxy(format!("cannot reach the proxy: {e}"), None))?;
        let _ = tcp.set_nodelay(true);
        let target = if endpoint.host.contains(':') {
            format!("[{}]:{}", endpoint.host, endpoint.port)
        } else {
            format!("{}:{}", endpoint.host, endpoint.port)
        };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        request.push_str("\r\n");
        let lost =
            |e: io::Error| ConnectError::Proxy(format!("proxy connection failed: {e}"), None);
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
}

/// `%XX` escapes of URL user info, decoded.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The stream a WebSocket runs over.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    /// TCP connect (with DNS), then TLS when the endpoint asks for it.
    pub async fn connect(
        endpoint: &Endpoint,
        proxy: Option<&Proxy>,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Transport, ConnectError> {
        let tcp = match proxy {
            Some(proxy) => proxy.tunnel(endpoint).await?,
            None => TcpStream::connect((endpoint.host.as_str(), endpoint.port))
                .await
                .map_err(ConnectError::Tcp)?,
        };
        // Small messages must not wait for Nagle's algorithm.
        let _ = tcp.set_nodelay(true);
        let Some(config) = tls.filter(|_| endpoint.tls) else {
            return Ok(Transport::Plain(tcp));
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
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
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
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
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
            "ws://host/#frag",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn proxy_urls_give_host_port_and_basic_auth() {
        let p = Proxy::parse("http://127.0.0.1:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.authorization),
            ("127.0.0.1", 3128, None)
        );
        let p = Proxy::parse("http://al%40ice:pa%3Ass@proxy.test:8080/").unwrap();
        assert_eq!(p.host, "proxy.test");
        // base64("al@ice:pa:ss")
        assert_eq!(p.authorization.as_deref(), Some("Basic YWxAaWNlOnBhOnNz"));
        for bad in [
            "https://p:1",
            "socks5://p:1",
            "http://",
            "http://p:1/path",
            "p:1",
        ] {
            assert!(Proxy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_do_not_echo_the_url() {
        let Err(Error::InvalidArgument(msg)) = Endpoint::parse("ws://user:s3cret@host/") else {
            panic!("accepted")
        };
        assert!(!msg.contains("s3cret"), "{msg}");
    }
}
