//! The client side of the WebSocket opening handshake (RFC 6455 §4.1),
//! checked as the RFC words it: the request, then the server's answer
//! read with httparse and judged field by field. (tungstenite's client
//! handshake wants `Connection: Upgrade` as the whole header value, where
//! the RFC asks only for the token, and ignores extensions.)

use std::collections::BTreeMap;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::error::error_code;
use crate::state::End;
use crate::transport::Endpoint;
use crate::wire::Ending;

/// The most an answer's head may take: far beyond any real server's.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

/// A completed upgrade.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Upgraded {
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
    /// Bytes read past the answer's head: the first frames.
    pub leftover: Vec<u8>,
}

/// Sends the upgrade request on `stream` and judges the answer. Header
/// values are never put in an error.
pub(super) async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    endpoint: &Endpoint,
    subprotocols: &[String],
    headers: &BTreeMap<String, String>,
) -> Result<Upgraded, Ending> {
    let key = new_key()?;
    let request = request(endpoint, subprotocols, headers, &key);
    let lost = |e: std::io::Error| {
        Ending::failed(
            End::Lost,
            error_code::CONNECTION_LOST,
            format!("connection lost during the upgrade: {e}"),
        )
    };
    stream.write_all(request.as_bytes()).await.map_err(lost)?;
    stream.flush().await.map_err(lost)?;

    let mut buf = Vec::with_capacity(1024);
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.map_err(lost)?;
        if n == 0 {
            return Err(Ending::failed(
                End::Lost,
                error_code::CONNECTION_LOST,
                "the server closed the connection during the upgrade".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(upgraded) = judge(&buf, &key, subprotocols)? {
            return Ok(upgraded);
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(bad_answer(format!(
                "the answer's headers pass {MAX_HEAD_BYTES} bytes"
            )));
        }
    }
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes, base64.
fn new_key() -> Result<String, Ending> {
    let mut nonce = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(|_| {
        Ending::failed(
            End::Lost,
            error_code::HANDSHAKE,
            "no random bytes for the WebSocket key".into(),
        )
    })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(nonce))
}

fn request(
    endpoint: &Endpoint,
    subprotocols: &[String],
    headers: &BTreeMap<String, String>,
    key: &str,
) -> String {
    let target = endpoint
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let target = if target.is_empty() {
        "/".into()
    } else {
        target
    };
    let host = match endpoint.uri.authority() {
        Some(authority) => authority.as_str().to_string(),
        None => endpoint.host.clone(),
    };
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    if !subprotocols.is_empty() {
        request.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            subprotocols.join(", ")
        ));
    }
    // Names and values were validated with the options (no CR or LF).
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

fn bad_answer(why: String) -> Ending {
    Ending::failed(
        End::ProtocolViolation,
        error_code::HANDSHAKE,
        format!("the WebSocket upgrade failed: {why}"),
    )
}

fn subprotocol_error(why: &str) -> Ending {
    Ending::failed(
        End::Configuration,
        error_code::SUBPROTOCOL,
        format!("subprotocol negotiation failed: {why}"),
    )
}

/// Judges the answer in `buf`: `None` while its head is incomplete.
fn judge(buf: &[u8], key: &str, subprotocols: &[String]) -> Result<Option<Upgraded>, Ending> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut fields);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(bad_answer(format!("more than {MAX_HEADERS} header fields")))
        }
        Err(e) => return Err(bad_answer(format!("the answer is not HTTP ({e})"))),
    };
    let status = response.code.unwrap_or(0);
    let values = |name: &'static str| {
        response
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if !(100..=599).contains(&status) {
        return Err(bad_answer(format!("HTTP status {status} does not exist")));
    }
    if status != 101 {
        let reason = StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let message = format!("the server refused the WebSocket upgrade: HTTP {status} {reason}");
        return Err(Ending {
            retry_after: values("retry-after")
                .next()
                .and_then(|v| super::parse_retry_after(&v)),
            ..Ending::failed(
                End::HandshakeStatus(status),
                i32::from(status),
                message.trim_end().to_string(),
            )
        });
    }
    if !values("upgrade").any(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(bad_answer("no \"Upgrade: websocket\" header".into()));
    }
    let has_token = |value: &str, token: &str| {
        value
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !values("connection").any(|v| has_token(&v, "upgrade")) {
        return Err(bad_answer("no \"Connection: upgrade\" header".into()));
    }
    let expected = derive_accept_key(key.as_bytes());
    if !values("sec-websocket-accept").any(|v| v == expected) {
        return Err(bad_answer(
            "Sec-WebSocket-Accept does not match the key".into(),
        ));
    }
    // We offer no extension: an answer naming one must fail the
    // connection, or its frames would be misread.
    if let Some(named) = values("sec-websocket-extensions").find(|v| !v.is_empty()) {
        let shown: String = named.chars().take(64).collect();
        return Err(bad_answer(format!(
            "the server accepted an extension the client did not offer: {shown:?}"
        )));
    }
    let chosen: Vec<String> = values("sec-websocket-protocol").collect();
    let protocol = match (chosen.as_slice(), subprotocols.is_empty()) {
        ([], true) => None,
        ([], false) => {
            return Err(subprotocol_error(
                "the server chose none of the offered subprotocols",
            ))
        }
        ([_, ..], true) => {
            return Err(subprotocol_error(
                "the server chose a subprotocol, but none was offered",
            ))
        }
        ([one], false) if subprotocols.contains(one) => Some(one.clone()),
        _ => {
            return Err(subprotocol_error(
                "the server chose a subprotocol that was not offered",
            ))
        }
    };
    Ok(Some(Upgraded {
        protocol,
        leftover: buf[head_len..].to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn answer(extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn judged(buf: &[u8], offered: &[&str]) -> Result<Option<Upgraded>, Ending> {
        let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
        judge(buf, KEY, &offered)
    }

    #[test]
    fn the_rfc_example_answer_upgrades_and_keeps_early_frames() {
        let mut buf = answer("");
        buf.extend_from_slice(b"\x81\x02hi");
        let upgraded = judged(&buf, &[]).unwrap().unwrap();
        assert_eq!(upgraded.leftover, b"\x81\x02hi");
        assert_eq!(upgraded.protocol, None);
        assert_eq!(judged(&buf[..20], &[]).unwrap(), None, "incomplete head");
    }

    #[test]
    fn connection_is_a_token_list_and_names_any_case() {
        let buf = b"HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: keep-alive, Upgrade\r\n\
                    sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert!(judged(buf, &[]).unwrap().is_some());
    }

    #[test]
    fn each_missing_or_wrong_field_fails_with_handshake() {
        for bad in [
            "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: close\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: wrong=\r\n\r\n",
            "HTTP/1.1 101 OK\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            "SSH-2.0-OpenSSH_9.6\r\n\r\n",
        ] {
            let ending = judged(bad.as_bytes(), &[]).unwrap_err();
            assert_eq!(ending.end, End::ProtocolViolation, "{bad}");
            assert_eq!(ending.error.unwrap().0, error_code::HANDSHAKE, "{bad}");
        }
        let ending = judged(
            &answer("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(ending.error.unwrap().0, error_code::HANDSHAKE);
        assert!(judged(&answer("Sec-WebSocket-Extensions: \r\n"), &[]).is_ok());
    }

    #[test]
    fn refusals_carry_the_status_and_retry_after() {
        let ending = judged(b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\n\r\n", &[]).unwrap_err();
        assert_eq!(ending.end, End::HandshakeStatus(503));
        assert_eq!(ending.error.as_ref().unwrap().0, 503);
        assert_eq!(ending.retry_after, Some(Duration::from_secs(7)));
        assert!(ending.error.unwrap().1.contains("503 Service Unavailable"));
        let ending = judged(b"HTTP/1.1 200 OK\r\n\r\n", &[]).unwrap_err();
        assert_eq!(ending.end, End::HandshakeStatus(200));
        // Not a status HTTP has: a broken answer, not "try again later".
        let ending = judged(b"HTTP/1.1 902 Huh\r\n\r\n", &[]).unwrap_err();
        assert_eq!(ending.end, End::ProtocolViolation);
    }

    #[test]
    fn subprotocols_must_be_one_that_was_offered() {
        let chat = answer("Sec-WebSocket-Protocol: chat\r\n");
        assert_eq!(
            judged(&chat, &["chat", "v2"])
                .unwrap()
                .unwrap()
                .protocol
                .as_deref(),
            Some("chat")
        );
        for (buf, offered) in [
            (chat.clone(), &[][..]),
            (answer("Sec-WebSocket-Protocol: other\r\n"), &["chat"][..]),
            (answer(""), &["chat"][..]),
        ] {
            let ending = judged(&buf, offered).unwrap_err();
            assert_eq!(ending.end, End::Configuration);
            assert_eq!(ending.error.unwrap().0, error_code::SUBPROTOCOL);
        }
    }

    #[test]
    fn the_request_carries_the_key_protocols_and_headers() {
        let endpoint = Endpoint::parse("ws://example.test:8080/chat?room=1").unwrap();
        let headers = BTreeMap::from([("Authorization".to_string(), "Bearer t".to_string())]);
        let text = request(&endpoint, &["chat".into(), "v2".into()], &headers, KEY);
        assert!(text.starts_with("GET /chat?room=1 HTTP/1.1\r\nHost: example.test:8080\r\n"));
        assert!(text.contains(&format!("Sec-WebSocket-Key: {KEY}\r\n")));
        assert!(text.contains("Sec-WebSocket-Protocol: chat, v2\r\n"));
        assert!(text.contains("Authorization: Bearer t\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        let root = Endpoint::parse("ws://example.test").unwrap();
        assert!(request(&root, &[], &BTreeMap::new(), KEY).starts_with("GET / HTTP/1.1\r\n"));
        assert_ne!(new_key().unwrap(), new_key().unwrap());
    }
}
