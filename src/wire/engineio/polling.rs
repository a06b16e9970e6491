//! Engine.IO's HTTP long-polling transport: one GET held open for what the
//! server sends, one POST at a time for what we send, packets joined by
//! `\x1e` in both directions (binary as `b` + base64).
//!
//! Each half keeps its request in flight inside itself, so dropping a
//! `next()` or `flush()` future (the driver does, whenever something else
//! needs it) loses nothing: the next call awaits the same request.

use std::collections::VecDeque;

use futures_util::future::BoxFuture;
use hyper::http::{Method, StatusCode};
use tokio_tungstenite::tungstenite::Bytes;

use super::packet::{self, Packet, Payload};
use super::EngineLink;
use crate::error::error_code;
use crate::http::{HttpClient, HttpError, Request};
use crate::state::End;
use crate::wire::{Ending, Incoming, Outbound, Violation};

/// What both halves send with every request.
#[derive(Clone)]
pub(crate) struct PollTarget {
    pub http: HttpClient,
    /// Path and query, with the session id.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl PollTarget {
    fn request(&self, method: Method) -> Request {
        let mut request = Request::new(method, self.target.clone());
        for (name, value) in &self.headers {
            request = request.header(name.clone(), value.clone());
        }
        request
    }
}

/// How a failed poll ends the connection: whatever the cause, the session
/// is lost (a 400 after a server restart means "unknown sid"), so the
/// driver reconnects.
pub(crate) fn lost(error: HttpError) -> Ending {
    let end = match error.end {
        End::ProtocolViolation => {
            return super::broken(Violation::TooBig, error.code, error.message);
        }
        End::Configuration => End::Configuration,
        _ => End::Lost,
    };
    let code = if error.code > 0 {
        error_code::CONNECTION_LOST
    } else {
        error.code
    };
    Ending {
        retry_after: error.retry_after,
        ..Ending::abnormal(end, code, format!("Engine.IO polling: {}", error.message))
    }
}

/// One GET: the payload the server answered with.
async fn get(target: PollTarget, limit: usize) -> Result<Bytes, HttpError> {
    let response = target.http.send(target.request(Method::GET)).await?;
    if response.status != StatusCode::OK {
        return Err(response.refusal("Engine.IO poll"));
    }
    response.body.read_to_end(limit).await
}

/// One POST of a payload; the server answers `ok` once it read it all.
async fn post(target: PollTarget, payload: Bytes) -> Result<(), HttpError> {
    let request = target
        .request(Method::POST)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(payload);
    let response = target.http.send(request).await?;
    if response.status != StatusCode::OK {
        return Err(response.refusal("Engine.IO post"));
    }
    // Small ("ok"); read to the end so the connection can be reused.
    response.body.read_to_end(1024).await.map(drop)
}

/// The handshake GET: the open packet and anything sent with it.
pub(crate) async fn handshake(target: PollTarget, limit: usize) -> Result<Payload, Ending> {
    let response = target
        .http
        .send(target.request(Method::GET))
        .await
        .map_err(handshake_failed)?;
    if response.status != StatusCode::OK {
        return Err(handshake_failed(response.refusal("Engine.IO handshake")));
    }
    let body = response
        .body
        .read_to_end(limit)
        .await
        .map_err(handshake_failed)?;
    Ok(Payload::new(body))
}

fn handshake_failed(error: HttpError) -> Ending {
    // A handshake answer over the size limit is as broken as a garbled
    // one: the attempt failed, the next may not.
    let end = match error.end {
        End::ProtocolViolation => End::ConnectFailed,
        other => other,
    };
    Ending {
        retry_after: error.retry_after,
        ..Ending::failed(end, error.code, error.message)
    }
}

pub(crate) struct PollingReader {
    target: PollTarget,
    limit: usize,
    get: Option<BoxFuture<'static, Result<Bytes, HttpError>>>,
    /// The last payload, decoded packet by packet as they are handed on.
    payload: Payload,
}

impl PollingReader {
    pub fn new(target: PollTarget, limit: usize) -> PollingReader {
        PollingReader {
            target,
            limit,
            get: None,
            payload: Payload::default(),
        }
    }

    /// The next packet from the server, polling for more as needed.
    pub async fn next_packet(&mut self, link: &EngineLink) -> Result<Packet, Incoming> {
        loop {
            if let Some(next) = self.payload.next() {
                return next.map_err(|e| {
                    Incoming::End(super::broken(Violation::Protocol, error_code::PROTOCOL, e))
                });
            }
            if link.close_done() {
                return Err(Incoming::End(Ending::peer_closed(1000, String::new())));
            }
            let get = self
                .get
                .get_or_insert_with(|| Box::pin(get(self.target.clone(), self.limit)));
            let result = tokio::select! {
                result = get => result,
                _ = link.close_done_notified() => continue,
            };
            self.get = None;
            match result {
                Ok(body) => self.payload = Payload::new(body),
                // Our close packet ended the session: the server answers
                // the pending GET any way it likes.
                Err(_) if link.closing() => {
                    return Err(Incoming::End(Ending::peer_closed(1000, String::new())))
                }
                Err(e) => return Err(Incoming::End(lost(e))),
            }
        }
    }
}

pub(crate) struct PollingWriter {
    target: PollTarget,
    /// The server's maxPayload: a POST body stays under it when it can.
    max_payload: usize,
    /// Full payloads waiting for their POST, then the one being filled.
    batches: VecDeque<Vec<u8>>,
    filling: Vec<u8>,
    post: Option<BoxFuture<'static, Result<(), HttpError>>>,
    /// Our close packet was taken: once it is posted, the session is over.
    close_taken: bool,
}

impl PollingWriter {
    pub fn new(target: PollTarget, max_payload: usize) -> PollingWriter {
        PollingWriter {
            target,
            max_payload: max_payload.max(1),
            batches: VecDeque::new(),
            filling: Vec::new(),
            post: None,
            close_taken: false,
        }
    }

    fn append(&mut self, packet: &Packet) {
        let mut encoded = Vec::new();
        packet::append_to_payload(&mut encoded, packet);
        if !self.filling.is_empty() && self.filling.len() + 1 + encoded.len() > self.max_payload {
            self.batches.push_back(std::mem::take(&mut self.filling));
        }
        if !self.filling.is_empty() {
            self.filling.push(packet::SEPARATOR);
        }
        self.filling.extend_from_slice(&encoded);
    }

    pub fn backlog(&self) -> usize {
        self.batches.len()
    }

    pub fn start(&mut self, frame: Outbound, link: &EngineLink) {
        match frame {
            Outbound::Message(message) => self.append(&Packet::Message(message)),
            // Engine.IO v4 clients do not ping.
            Outbound::Ping(_) => {}
            Outbound::Close { .. } => {
                self.append(&Packet::Close);
                self.close_taken = true;
                link.set_closing();
            }
        }
    }

    /// Posts everything taken (pongs first), one POST at a time.
    pub async fn flush(&mut self, link: &EngineLink) -> Result<(), Ending> {
        loop {
            if let Some(post) = &mut self.post {
                let result = post.await;
                self.post = None;
                if let Err(e) = result {
                    if link.closing() {
                        link.set_close_done();
                        return Ok(());
                    }
                    return Err(lost(e));
                }
            }
            // The pong owed is taken only when its POST can start: pings
            // that come while a POST is in flight are answered by that
            // one pong, not by one POST each. It goes ahead of data.
            let pong = link.take_pongs().into_iter().next();
            let payload = match (pong, self.batches.pop_front()) {
                (Some(pong), batch) => {
                    if let Some(batch) = batch {
                        self.batches.push_front(batch);
                    }
                    let mut payload = Vec::new();
                    packet::append_to_payload(&mut payload, &Packet::Pong(pong));
                    payload
                }
                (None, Some(payload)) => payload,
                (None, None) if !self.filling.is_empty() => std::mem::take(&mut self.filling),
                (None, None) => break,
            };
            self.post = Some(Box::pin(post(self.target.clone(), Bytes::from(payload))));
        }
        if self.close_taken {
            link.set_close_done();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Message;
    use std::sync::Arc;

    fn writer(max_payload: usize) -> PollingWriter {
        let endpoint = crate::transport::Endpoint::parse_http("http://127.0.0.1:9/").unwrap();
        let dialer = crate::transport::NetDialer {
            proxy: None,
            tls: None,
        };
        let target = PollTarget {
            http: HttpClient::new(endpoint, Arc::new(dialer)),
            target: "/socket.io/?EIO=4&transport=polling&sid=x".into(),
            headers: Vec::new(),
        };
        PollingWriter::new(target, max_payload)
    }

    #[test]
    fn payloads_stay_under_the_servers_max_payload() {
        let link = EngineLink::default();
        let mut w = writer(10);
        for text in ["aaaa", "bbbb", "cccc"] {
            w.start(Outbound::Message(Message::text(text)), &link);
        }
        // "4aaaa\x1e4bbbb" is 11 bytes: the second packet starts a new one.
        assert_eq!(
            w.batches,
            VecDeque::from([b"4aaaa".to_vec(), b"4bbbb".to_vec()])
        );
        assert_eq!(w.filling, b"4cccc".to_vec());
        let mut w = writer(100);
        w.start(Outbound::Message(Message::text("a")), &link);
        w.start(
            Outbound::Message(Message::Binary(Bytes::from_static(&[1, 2, 3]))),
            &link,
        );
        assert_eq!(w.filling, b"4a\x1ebAQID".to_vec());
        // One packet larger than the limit still goes, alone.
        let mut w = writer(3);
        w.start(Outbound::Message(Message::text("toolong")), &link);
        assert_eq!(w.filling, b"4toolong".to_vec());
    }
}
