//! The Server-Sent Events wire: a receive-only wire over the HTTP client.
//!
//! Each attempt sends one request (GET, or the configured method and
//! body) with `Accept: text/event-stream`, `Cache-Control: no-store` and
//! the last event id delivered so far as `Last-Event-ID`, then parses the
//! body as an event stream ([`parser`]). What ends an attempt, and so
//! whether the driver retries, follows the EventSource rules: 200 with
//! `text/event-stream` opens; 204 ends the client for good; other 4xx, a
//! wrong Content-Type or a TLS trust failure are errors without retry; 5xx
//! and 429 retry with `Retry-After`; a stream that ends, breaks or stays
//! silent past the read timeout reconnects. The stream's `retry:` field
//! becomes the delay the backoff grows from.

mod options;
mod parser;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::http::{Method, StatusCode};
use parking_lot::Mutex;

pub(crate) use options::check_header;
pub use options::SseOptions;
use parser::{Parsed, Parser, TooBig};

use super::{Ending, HeartbeatPolicy, Incoming, Opened, Outbound, Wire, WireReader, WireWriter};
use crate::error::error_code;
use crate::http::{Body, HttpClient, Request};
use crate::state::End;

/// What lives across the attempts of one SSE client.
#[derive(Debug)]
struct Resume {
    parser: Parser,
    /// The id in force after the last event handed to the driver: what
    /// the next connection sends as `Last-Event-ID` (an event parsed but
    /// never delivered must come again).
    delivered_id: Option<String>,
    /// The stream's last `retry:`.
    retry: Option<Duration>,
}

/// Opens event streams from one URL.
pub(crate) struct SseWire {
    http: HttpClient,
    method: Method,
    body: Bytes,
    heartbeat: HeartbeatPolicy,
    resume: Arc<Mutex<Resume>>,
}

impl SseWire {
    /// `options` were validated (the method is a token).
    pub fn new(http: HttpClient, options: &SseOptions) -> SseWire {
        let heartbeat = if options.read_timeout_ms == 0 {
            HeartbeatPolicy::Off
        } else {
            HeartbeatPolicy::PeerPings {
                silence: Duration::from_millis(options.read_timeout_ms),
            }
        };
        let max_event_bytes = options.common.max_message_bytes;
        SseWire {
            http,
            method: Method::from_bytes(options.method.as_bytes()).unwrap_or(Method::GET),
            body: options.body.clone().map(Bytes::from).unwrap_or_default(),
            heartbeat,
            resume: Arc::new(Mutex::new(Resume {
                parser: Parser::new(max_event_bytes, options.last_event_id.clone()),
                delivered_id: options.last_event_id.clone(),
                retry: None,
            })),
        }
    }

    fn request(&self, headers: &BTreeMap<String, String>) -> Request {
        let mut request = Request::new(self.method.clone(), self.http.endpoint().target())
            .body(self.body.clone());
        let has = |name: &str| headers.keys().any(|k| k.eq_ignore_ascii_case(name));
        if !has("accept") {
            request = request.header("Accept", "text/event-stream");
        }
        if !has("cache-control") {
            request = request.header("Cache-Control", "no-store");
        }
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let resume = self.resume.lock();
        if let Some(id) = resume.delivered_id.as_deref().filter(|id| !id.is_empty()) {
            request = request.header("Last-Event-ID", id);
        }
        request
    }
}

impl Wire for SseWire {
    type Reader = SseReader;
    type Writer = SseWriter;

    async fn open(
        &mut self,
        headers: &BTreeMap<String, String>,
    ) -> Result<Opened<SseReader, SseWriter>, Ending> {
        let request = self.request(headers);
        let response = self.http.send(request).await?;
        match response.status {
            StatusCode::OK => {}
            // "No content": the server wants this client gone for good.
            StatusCode::NO_CONTENT => return Err(Ending::quiet(End::HandshakeStatus(204))),
            _ => {
                return Err(response
                    .refusal("the server refused the event stream")
                    .into())
            }
        }
        let content_type = response.header("content-type").unwrap_or("");
        if !is_event_stream(content_type) {
            let shown: String = content_type.chars().take(64).collect();
            return Err(Ending::failed(
                End::Configuration,
                error_code::HANDSHAKE,
                format!("the server answered with Content-Type {shown:?}, not text/event-stream"),
            ));
        }
        {
            let mut resume = self.resume.lock();
            let id = resume.delivered_id.clone();
            resume.parser.restart(id);
        }
        Ok(Opened {
            reader: SseReader {
                body: response.body,
                resume: self.resume.clone(),
                ready: VecDeque::new(),
                failed: None,
            },
            writer: SseWriter,
            protocol: None,
            heartbeat: self.heartbeat,
        })
    }

    fn describe(&self) -> String {
        let endpoint = self.http.endpoint();
        let via = if self.http.through_proxy() {
            " through the proxy"
        } else {
            ""
        };
        format!("{}:{} (SSE){via}", endpoint.host, endpoint.port)
    }

    fn reconnect_delay(&self) -> Option<Duration> {
        self.resume.lock().retry
    }
}

/// Whether a Content-Type is `text/event-stream` (any parameters).
fn is_event_stream(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("text/event-stream")
}

/// The body of one event stream, parsed as it arrives.
pub(crate) struct SseReader {
    body: Body,
    resume: Arc<Mutex<Resume>>,
    /// Events parsed from the last chunk and not handed out yet (at most
    /// one chunk's worth: the driver stops asking while the app lags).
    ready: VecDeque<Parsed>,
    /// The stream broke a limit: reported after the events before it.
    failed: Option<Ending>,
}

impl WireReader for SseReader {
    async fn next(&mut self) -> Incoming {
        loop {
            if let Some(parsed) = self.ready.pop_front() {
                if let Parsed::Event(event) = parsed {
                    self.resume.lock().delivered_id = event.id.clone();
                    return Incoming::Event(crate::event::Event::from(event));
                }
                if let Parsed::LastEventId(id) = parsed {
                    self.resume.lock().delivered_id = id;
                }
                continue;
            }
            if let Some(ending) = self.failed.take() {
                return Incoming::End(ending);
            }
            // Cancel-safe: a chunk is parsed in the same poll it arrives.
            let chunk = match self.body.chunk().await {
                Ok(Some(chunk)) => chunk,
                // The server ended the response: the stream reconnects.
                Ok(None) => return Incoming::End(Ending::quiet(End::Lost)),
                Err(e) => return Incoming::End(e.into()),
            };
            let mut resume = self.resume.lock();
            if let Err(TooBig { limit }) = resume.parser.feed(&chunk, &mut self.ready) {
                self.failed = Some(Ending::failed(
                    End::ProtocolViolation,
                    error_code::MESSAGE_TOO_BIG,
                    format!(
                        "an event or line of the stream exceeds max_message_bytes ({limit} bytes)"
                    ),
                ));
            }
            let retry = self.ready.iter().rev().find_map(|p| match p {
                Parsed::Retry(delay) => Some(*delay),
                _ => None,
            });
            if retry.is_some() {
                resume.retry = retry;
                self.ready.retain(|p| !matches!(p, Parsed::Retry(_)));
            }
            drop(resume);
            if self.ready.is_empty() && self.failed.is_none() {
                // Bytes without an event (a comment, half an event): proof
                // of life for the read timeout.
                return Incoming::Control;
            }
        }
    }
}

/// SSE is receive-only: the driver never has data for it (an SSE client
/// has no send); a close just hangs up.
pub(crate) struct SseWriter;

impl WireWriter for SseWriter {
    async fn ready(&mut self) -> Result<(), Ending> {
        Ok(())
    }

    fn start(&mut self, frame: Outbound) -> Result<(), Ending> {
        match frame {
            // No heartbeat of ours: the read timeout watches the stream.
            Outbound::Ping(_) => Ok(()),
            Outbound::Close { .. } => Err(Ending::quiet(End::UserClose)),
            Outbound::Message(_) => Err(Ending::failed(
                End::Configuration,
                error_code::PROTOCOL,
                "an SSE stream is receive-only: nothing can be sent on it".into(),
            )),
        }
    }

    async fn flush(&mut self) -> Result<(), Ending> {
        Ok(())
    }
}
