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
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Endpoint {
            host: host.to_string(),
            port,
            tls,
            uri,
        })
    }
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
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Transport, ConnectError> {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(ConnectError::Tcp)?;
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
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(Error::InvalidArgument(_))),
                "{bad:?} was accepted"
            );
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
