//! Engine.IO v4 packets: one type digit and its data. Over WebSocket a
//! text frame holds one packet and a binary frame one binary message;
//! over HTTP long-polling a payload joins packets with `\x1e`, binary
//! ones as `b` + base64.

use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::queue::Message;

/// The record separator between packets of a polling payload.
pub(crate) const SEPARATOR: u8 = 0x1e;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Packet {
    Open(Handshake),
    Close,
    Ping(String),
    Pong(String),
    Message(Message),
    Upgrade,
    Noop,
}

/// The server's open packet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Handshake {
    pub sid: String,
    pub upgrades: Vec<String>,
    /// The server pings this often…
    pub ping_interval: Duration,
    /// …and waits this long for our pong.
    pub ping_timeout: Duration,
    /// The largest payload (polling body, WebSocket frame) it takes.
    pub max_payload: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OpenJson {
    sid: String,
    #[serde(default)]
    upgrades: Vec<String>,
    ping_interval: u64,
    ping_timeout: u64,
    #[serde(default = "default_max_payload")]
    max_payload: u64,
}

fn default_max_payload() -> u64 {
    1_000_000
}

/// Heartbeat figures above this are treated as this (a hostile server
/// cannot overflow a timer; a day of silence is dead enough).
const MAX_HEARTBEAT: Duration = Duration::from_secs(24 * 3600);

impl Handshake {
    fn parse(json: &str) -> Result<Handshake, String> {
        let open: OpenJson =
            serde_json::from_str(json).map_err(|e| format!("bad Engine.IO open packet: {e}"))?;
        if open.sid.is_empty() || open.sid.len() > 256 {
            return Err("bad Engine.IO open packet: no usable sid".into());
        }
        let ms = |v: u64| Duration::from_millis(v).min(MAX_HEARTBEAT);
        Ok(Handshake {
            sid: open.sid,
            upgrades: open.upgrades,
            ping_interval: ms(open.ping_interval),
            ping_timeout: ms(open.ping_timeout),
            max_payload: usize::try_from(open.max_payload).unwrap_or(usize::MAX),
        })
    }

    /// No packet within this long means the link is dead: the server pings
    /// every interval and gives us the timeout to answer.
    pub fn silence_limit(&self) -> Duration {
        self.ping_interval + self.ping_timeout
    }
}

/// Decodes one text packet (a WebSocket text frame, or one element of a
/// polling payload that is not binary).
pub(crate) fn decode_text(text: &str) -> Result<Packet, String> {
    let Some(kind) = text.as_bytes().first() else {
        return Err("an empty Engine.IO packet".into());
    };
    let data = &text[1..];
    Ok(match kind {
        b'0' => Packet::Open(Handshake::parse(data)?),
        b'1' => Packet::Close,
        b'2' => Packet::Ping(data.to_string()),
        b'3' => Packet::Pong(data.to_string()),
        b'4' => Packet::Message(Message::Text(Utf8Bytes::from(data.to_string()))),
        b'5' => Packet::Upgrade,
        b'6' => Packet::Noop,
        _ => return Err(format!("unknown Engine.IO packet type {:?}", *kind as char)),
    })
}

/// Splits a polling payload into its packets.
pub(crate) fn decode_payload(body: &[u8]) -> Result<Vec<Packet>, String> {
    let mut packets = Vec::new();
    for part in body.split(|b| *b == SEPARATOR) {
        if let Some(encoded) = part.strip_prefix(b"b") {
            let data = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("bad base64 in a binary Engine.IO packet: {e}"))?;
            packets.push(Packet::Message(Message::Binary(Bytes::from(data))));
        } else {
            let text = std::str::from_utf8(part)
                .map_err(|_| "an Engine.IO payload that is not UTF-8".to_string())?;
            packets.push(decode_text(text)?);
        }
    }
    Ok(packets)
}

/// Appends one packet to a polling payload.
pub(crate) fn append_to_payload(payload: &mut Vec<u8>, packet: &Packet) {
    if !payload.is_empty() {
        payload.push(SEPARATOR);
    }
    match packet {
        Packet::Message(Message::Binary(data)) => {
            payload.push(b'b');
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            payload.extend_from_slice(encoded.as_bytes());
        }
        other => payload.extend_from_slice(encode_text(other).as_bytes()),
    }
}

/// One packet as text (a WebSocket text frame). Binary messages are not
/// text: over WebSocket they go as binary frames.
pub(crate) fn encode_text(packet: &Packet) -> String {
    match packet {
        Packet::Open(_) => "0".into(),
        Packet::Close => "1".into(),
        Packet::Ping(data) => format!("2{data}"),
        Packet::Pong(data) => format!("3{data}"),
        Packet::Message(Message::Text(text)) => {
            let mut out = String::with_capacity(1 + text.len());
            out.push('4');
            out.push_str(text);
            out
        }
        Packet::Message(Message::Binary(data)) => {
            let encoded = base64::engine::general_purpose::STANDARD.encode(data);
            format!("b{encoded}")
        }
        Packet::Upgrade => "5".into(),
        Packet::Noop => "6".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packet_is_read() {
        let p = decode_text(r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#).unwrap();
        let Packet::Open(h) = p else { panic!("{p:?}") };
        assert_eq!(h.sid, "abc");
        assert_eq!(h.upgrades, vec!["websocket".to_string()]);
        assert_eq!(h.silence_limit(), Duration::from_secs(45));
        assert_eq!(h.max_payload, 1_000_000);
    }

    #[test]
    fn hostile_open_packets_are_errors_or_capped() {
        assert!(decode_text("0{}").is_err());
        assert!(decode_text(r#"0{"sid":"","pingInterval":1,"pingTimeout":1}"#).is_err());
        let p = decode_text(r#"0{"sid":"a","pingInterval":18446744073709551615,"pingTimeout":18446744073709551615}"#).unwrap();
        let Packet::Open(h) = p else { panic!() };
        assert_eq!(h.silence_limit(), MAX_HEARTBEAT * 2);
    }

    #[test]
    fn payloads_split_and_join() {
        let body = b"4hello\x1e2\x1ebAQID\x1e6";
        let packets = decode_payload(body).unwrap();
        assert_eq!(
            packets,
            vec![
                Packet::Message(Message::text("hello")),
                Packet::Ping(String::new()),
                Packet::Message(Message::Binary(Bytes::from_static(&[1, 2, 3]))),
                Packet::Noop,
            ]
        );
        let mut out = Vec::new();
        for p in &packets {
            append_to_payload(&mut out, p);
        }
        assert_eq!(out, body);
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(decode_payload(b"").is_err());
        assert!(decode_payload(b"4a\x1e").is_err());
        assert!(decode_payload(b"b!!!").is_err());
        assert!(decode_payload(b"9").is_err());
        assert!(decode_payload(&[b'4', 0xff]).is_err());
    }
}
