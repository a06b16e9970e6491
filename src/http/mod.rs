//! The HTTP/1.1 client of the wires that speak plain HTTP (SSE, Engine.IO
//! long-polling), on hyper's connection-level client.
//!
//! One [`HttpClient`] is bound to one origin and dials through the same
//! [`Dialer`] as the WebSocket wire, so TLS, pins and the proxy are
//! exactly the WebSocket path's. It keeps a small keep-alive pool: a
//! request takes an idle connection if one is ready, else dials a new one,
//! so a GET can stay open (a long-poll, an event stream) while a POST goes
//! out on a second connection. A connection returns to the pool only once
//! its response body was read to the end; a body dropped half-read closes
//! its connection.
//!
//! Failures are [`HttpError`]s: an end of the state machine, a Tether
//! error code (`error_code`, or the HTTP status of a refusal) and a
//! message without header values; wires turn them into their `Ending`.

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

use crate::error::error_code;
use crate::state::End;
use crate::transport::{ConnectError, Dialer, Endpoint};

/// Idle keep-alive connections kept per origin (a long-poll GET and a
/// POST beside it need two; a few more absorb bursts).
const MAX_IDLE: usize = 4;

/// Bytes of a response head hyper buffers at most (status line and
/// header fields): a server that sends more is broken.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One request: method, path and query, extra headers, body bytes.
/// `Host` is set from the origin; `Content-Length` from the body.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// Path and query, e.g. `/engine.io/?EIO=4&transport=polling`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Request {
    pub fn new(method: Method, target: impl Into<String>) -> Request {
        Request {
            method,
            target: target.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (kept in order; names are case-insensitive).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }
}

/// A response head and its body, streamed.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Body,
}

impl Response {
    /// The first value of header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The server's `Retry-After`, if it sent a valid one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after").and_then(parse_retry_after)
    }

    /// This response as a refusal: the failure a wire reports when the
    /// status is not what it asked for (HTTP status as the error code,
    /// with the server's `Retry-After`).
    pub fn refusal(&self, what: &str) -> HttpError {
        let reason = self.status.canonical_reason().unwrap_or("");
        HttpError {
            retry_after: self.retry_after(),
            ..HttpError::new(
                End::HandshakeStatus(self.status.as_u16()),
                i32::from(self.status.as_u16()),
                format!("{what}: HTTP {} {reason}", self.status.as_u16())
                    .trim_end()
                    .to_string(),
            )
        }
    }
}

/// A response body, read chunk by chunk as the server sends it.
pub(crate) struct Body {
    incoming: Incoming,
    /// The connection it came on: back to the pool at the body's end.
    connection: Option<(SendRequest<Full<Bytes>>, Arc<Pool>)>,
    ended: bool,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("ended", &self.ended).finish()
    }
}

impl Body {
    /// The next bytes of the body; `None` at its end. Cancel-safe:
    /// dropping the future loses nothing.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        while !self.ended {
            match self.incoming.frame().await {
                Some(Ok(frame)) => {
                    // Trailers carry nothing a wire reads.
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
                Some(Err(e)) => {
                    self.ended = true;
                    self.connection = None;
                    return Err(HttpError::lost(&e));
                }
                None => {
                    self.ended = true;
                    if let Some((sender, pool)) = self.connection.take() {
                        pool.put(sender);
                    }
                }
            }
        }
        Ok(None)
    }

    /// The whole body, failing (and closing the connection) once it would
    /// pass `limit` bytes.
    #[cfg_attr(not(test), allow(dead_code))] // for Engine.IO long-polling
    pub async fn read_to_end(mut self, limit: usize) -> Result<Bytes, HttpError> {
        let mut whole: Vec<u8> = Vec::new();
        let mut first: Option<Bytes> = None;
        while let Some(chunk) = self.chunk().await? {
            let total = first.as_ref().map_or(0, Bytes::len) + whole.len() + chunk.len();
            if total > limit {
                return Err(HttpError::too_big(limit));
            }
            // A body in one chunk is handed on without a copy.
            match first.take() {
                None if whole.is_empty() => first = Some(chunk),
                Some(earlier) => {
                    whole.extend_from_slice(&earlier);
                    whole.extend_from_slice(&chunk);
                }
                None => whole.extend_from_slice(&chunk),
            }
        }
        Ok(first.unwrap_or_else(|| whole.into()))
    }
}

/// Why a request failed, ready to be reported: the end it means for the
/// attempt, a Tether error code (or HTTP status) and a message free of
/// header values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HttpError {
    pub end: End,
    pub code: i32,
    pub message: String,
    /// A refusal's `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl HttpError {
    pub fn new(end: End, code: i32, message: String) -> HttpError {
        HttpError {
            end,
            code,
            message,
            retry_after: None,
        }
    }

    /// The connection failed while a request or response was under way.
    fn lost(error: &hyper::Error) -> HttpError {
        if error.is_parse() || error.is_parse_status() {
            return HttpError::new(
                End::Lost,
                error_code::HANDSHAKE,
                format!("the server's answer is not valid HTTP/1.1: {error}"),
            );
        }
        HttpError::new(
            End::Lost,
            error_code::CONNECTION_LOST,
            format!("connection lost: {error}"),
        )
    }

    #[cfg_attr(not(test), allow(dead_code))] // for Engine.IO long-polling
    fn too_big(limit: usize) -> HttpError {
        HttpError::new(
            End::ProtocolViolation,
            error_code::MESSAGE_TOO_BIG,
            format!("the response body exceeds the limit of {limit} bytes"),
        )
    }
}

/// How a failure to open the byte stream (TCP, proxy, TLS) ends an attempt.
pub(crate) fn connect_error(error: ConnectError, endpoint: &Endpoint) -> HttpError {
    match error {
        // Bad proxy credentials are configuration; anything else from the
        // proxy may pass.
        ConnectError::Proxy(message, Some(407)) => {
            HttpError::new(End::Configuration, error_code::PROXY, message)
        }
        ConnectError::Proxy(message, _) => {
            HttpError::new(End::ConnectFailed, error_code::PROXY, message)
        }
        // The server accepted, then reset before the connect was seen to
        // complete (a reset to the SYN itself is a refusal): the same loss
        // as a reset a moment later, in the handshake.
        ConnectError::Tcp(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            HttpError::new(
                End::Lost,
                error_code::CONNECTION_LOST,
                format!(
                    "connection lost: {}:{} reset it as it opened: {e}",
                    endpoint.host, endpoint.port
                ),
            )
        }
        ConnectError::Tcp(e) => HttpError::new(
            End::ConnectFailed,
            error_code::CONNECT,
            format!("cannot connect to {}:{}: {e}", endpoint.host, endpoint.port),
        ),
        ConnectError::Tls(e) => tls_error(e),
    }
}

/// How a failed TLS handshake ends an attempt: trust failures are
/// configuration (retrying cannot fix them), the rest may pass.
pub(crate) fn tls_error(error: std::io::Error) -> HttpError {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(e)) => {
            let (code, what) = crate::tls::classify_certificate_error(e);
            HttpError::new(End::Configuration, code, format!("TLS: {what} ({e:?})"))
        }
        Some(e) => HttpError::new(
            End::Lost,
            error_code::TLS,
            format!("TLS handshake failed: {e}"),
        ),
        None => HttpError::new(
            End::Lost,
            error_code::TLS,
            format!("TLS handshake failed: {error}"),
        ),
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). A
/// number too large for the clock is "as long as allowed" (the session
/// caps it); anything else unparsable (negative, text) is ignored.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The idle connections of one origin.
struct Pool {
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Pool {
    fn put(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(sender);
        }
    }

    fn take(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock();
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }
}

/// An HTTP/1.1 client bound to one origin (scheme, host, port). Cheap to
/// clone: clones share the pool, so requests may run at once from several
/// tasks.
#[derive(Clone)]
pub(crate) struct HttpClient {
    endpoint: Arc<Endpoint>,
    dialer: Arc<dyn Dialer>,
    pool: Arc<Pool>,
}

impl HttpClient {
    pub fn new(endpoint: Endpoint, dialer: Arc<dyn Dialer>) -> HttpClient {
        HttpClient {
            endpoint: Arc::new(endpoint),
            dialer,
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether connections go through an HTTP proxy (for logs).
    pub fn through_proxy(&self) -> bool {
        self.dialer.through_proxy()
    }

    /// Idle connections in the pool now (tests).
    #[cfg(test)]
    pub fn idle_connections(&self) -> usize {
        self.pool.idle.lock().len()
    }

    /// Sends `request` and waits for the response head. The body follows
    /// in [`Response::body`]. Not bounded in time: callers bound it (the
    /// session's connect timeout, a wire's own deadline).
    pub async fn send(&self, request: Request) -> Result<Response, HttpError> {
        let http_request = self.build(&request)?;
        // An idle connection the server closed meanwhile fails before our
        // request left: then one fresh connection gets it.
        if let Some(mut sender) = self.pool.take() {
            if sender.ready().await.is_ok() {
                match sender.try_send_request(http_request).await {
                    Ok(response) => return Ok(self.response(response, sender)),
                    Err(mut failed) => {
                        if failed.take_message().is_none() {
                            return Err(HttpError::lost(failed.error()));
                        }
                    }
                }
            }
            return self.send_fresh(self.build(&request)?).await;
        }
        self.send_fresh(http_request).await
    }

    async fn send_fresh(
        &self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Response, HttpError> {
        let mut sender = self.dial().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| HttpError::lost(&e))?;
        Ok(self.response(response, sender))
    }

    fn response(
        &self,
        response: hyper::Response<Incoming>,
        sender: SendRequest<Full<Bytes>>,
    ) -> Response {
        let (head, incoming) = response.into_parts();
        Response {
            status: head.status,
            headers: head.headers,
            body: Body {
                incoming,
                connection: Some((sender, self.pool.clone())),
                ended: false,
            },
        }
    }

    /// A new connection: the dialer's stream, hyper's handshake, and a
    /// task that drives the connection until both ends let go of it.
    async fn dial(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let transport = self
            .dialer
            .dial(&self.endpoint)
            .await
            .map_err(|e| connect_error(e, &self.endpoint))?;
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(MAX_HEAD_BYTES.max(8192))
            .handshake(TokioIo::new(transport))
            .await
            .map_err(|e| HttpError::lost(&e))?;
        tokio::spawn(async move {
            // Its error reaches the request or body that was using it.
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn build(&self, request: &Request) -> Result<hyper::Request<Full<Bytes>>, HttpError> {
        let invalid =
            |what: String| HttpError::new(End::Configuration, error_code::HANDSHAKE, what);
        let mut builder = hyper::Request::builder()
            .method(request.method.clone())
            .uri(request.target.as_str());
        let headers = builder
            .headers_mut()
            .ok_or_else(|| invalid("the request target is not a valid path".into()))?;
        headers.insert(
            hyper::header::HOST,
            HeaderValue::from_str(&self.endpoint.host_header())
                .map_err(|_| invalid("the host is not valid in a Host header".into()))?,
        );
        for (name, value) in &request.headers {
            // Messages name the header, never its value (it may be a secret).
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("{name:?} is not a valid header name")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the value of {name} is not valid in a header")))?;
            headers.append(name, value);
        }
        builder
            .body(Full::new(request.body.clone()))
            .map_err(|e| invalid(format!("cannot build the request: {e}")))
    }
}
