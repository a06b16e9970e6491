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
    // The type is one ASCII digit: anything else (a multi-byte character
    // first) is no packet, and must not be sliced inside a character.
    let Some(data) = text.get(1..).filter(|_| kind.is_ascii_digit()) else {
        return Err(format!(
            "unknown Engine.IO packet type {:?}",
            text.chars().next().unwrap_or_default()
        ));
    };
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

/// The packets of a polling payload, decoded one at a time as they are
/// read: a payload may hold `max_message_bytes` of 2-byte packets, and
/// decoded at once those would take some fifty times their size.
#[derive(Debug, Default)]
pub(crate) struct Payload {
    body: Bytes,
    /// Where the next packet starts; `None` once all were read.
    at: Option<usize>,
}

impl Payload {
    pub fn new(body: Bytes) -> Payload {
        Payload { body, at: Some(0) }
    }
}

impl Iterator for Payload {
    type Item = Result<Packet, String>;

    fn next(&mut self) -> Option<Result<Packet, String>> {
        let start = self.at?;
        let rest = self.body.get(start..).unwrap_or_default();
        let (part, next) = match rest.iter().position(|b| *b == SEPARATOR) {
            Some(i) => (&rest[..i], Some(start + i + 1)),
            None => (rest, None),
        };
        self.at = next;
        Some(decode_part(part))
    }
}

/// One packet of a payload (between separators).
fn decode_part(part: &[u8]) -> Result<Packet, String> {
    if let Some(encoded) = part.strip_prefix(b"b") {
        let data = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| format!("bad base64 in a binary Engine.IO packet: {e}"))?;
        return Ok(Packet::Message(Message::Binary(Bytes::from(data))));
    }
    let text = std::str::from_utf8(part)
        .map_err(|_| "an Engine.IO payload that is not UTF-8".to_string())?;
    decode_text(text)
}

/// Splits a polling payload into its packets, all at once (tests).
#[cfg(test)]
pub(crate) fn decode_payload(body: &[u8]) -> Result<Vec<Packet>, String> {
    Payload::new(Bytes::copy_from_slice(body)).collect()
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
        Packet::Message(masked @ Message::Masked(_)) => {
            encode_text(&Packet::Message(masked.clone().unmasked()))
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
        // A multi-byte character where the type digit goes.
        assert!(decode_text("ö4").is_err());
        assert!(decode_payload("ét\x1e4a".as_bytes()).is_err());
    }

    mod fuzz {
        //! Property tests: whatever a server sends, the decoders answer
        //! with packets or an error, never a panic; what we encode decodes
        //! to what it was.
        use super::*;
        use proptest::prelude::*;

        /// Text without the payload separator (JSON never holds it raw:
        /// serialisers escape control characters).
        fn text() -> impl Strategy<Value = String> {
            "[^\u{1e}]{0,40}"
        }

        fn packet() -> impl Strategy<Value = Packet> {
            prop_oneof![
                Just(Packet::Close),
                text().prop_map(Packet::Ping),
                text().prop_map(Packet::Pong),
                text().prop_map(|t| Packet::Message(Message::text(&t))),
                prop::collection::vec(any::<u8>(), 0..64)
                    .prop_map(|b| Packet::Message(Message::Binary(Bytes::from(b)))),
                Just(Packet::Upgrade),
                Just(Packet::Noop),
            ]
        }

        /// Payload-shaped bytes: type digits, `b`, separators, JSON bits.
        fn payload_like() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"\x1e".to_vec()),
                Just(b"0{\"sid\":\"a\",\"pingInterval\":1,\"pingTimeout\":1}".to_vec()),
                Just(b"b".to_vec()),
                Just(b"AQID".to_vec()),
                Just(b"=".to_vec()),
                (0u8..10).prop_map(|d| vec![b'0' + d]),
                prop::collection::vec(any::<u8>(), 0..8),
                "[a-z{}\\[\\]\":,0-9 ]{0,8}".prop_map(String::into_bytes),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|parts| parts.concat())
        }

        fn open_json() -> impl Strategy<Value = String> {
            let number = prop_oneof![
                Just("0".to_string()),
                Just("18446744073709551615".to_string()),
                Just("18446744073709551616".to_string()),
                Just("-1".to_string()),
                Just("1.5".to_string()),
                Just("1e400".to_string()),
                Just("null".to_string()),
                Just("\"25000\"".to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
            ];
            let sid = prop_oneof![
                Just("\"\"".to_string()),
                Just("1".to_string()),
                "[a-zA-Z0-9 &%/]{1,300}".prop_map(|s| format!("{s:?}")),
            ];
            (
                sid,
                number.clone(),
                number.clone(),
                number,
                prop::option::of(Just("\"upgrades\":[\"websocket\",1],")),
            )
                .prop_map(|(sid, interval, timeout, max, upgrades)| {
                    format!(
                        "{{{}\"sid\":{sid},\"pingInterval\":{interval},\"pingTimeout\":{timeout},\"maxPayload\":{max}}}",
                        upgrades.unwrap_or("")
                    )
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn decode_text_never_panics(text in any::<String>()) {
                let _ = decode_text(&text);
            }

            #[test]
            fn decode_payload_never_panics(body in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = decode_payload(&body);
            }

            #[test]
            fn decode_payload_of_payload_like_bytes_never_panics(body in payload_like()) {
                if let Ok(packets) = decode_payload(&body) {
                    // As many packets as parts.
                    let parts = body.split(|b| *b == SEPARATOR).count();
                    prop_assert_eq!(packets.len(), parts);
                }
            }

            #[test]
            fn open_packets_parse_or_fail_and_timers_stay_bounded(json in open_json()) {
                if let Ok(Packet::Open(h)) = decode_text(&format!("0{json}")) {
                    prop_assert!(!h.sid.is_empty() && h.sid.len() <= 256);
                    prop_assert!(h.silence_limit() <= MAX_HEARTBEAT * 2);
                    prop_assert!(h.max_payload > 0 || json.contains("\"maxPayload\":0"));
                }
            }

            #[test]
            fn payloads_round_trip(packets in prop::collection::vec(packet(), 1..8)) {
                let mut body = Vec::new();
                for p in &packets {
                    append_to_payload(&mut body, p);
                }
                prop_assert_eq!(decode_payload(&body).unwrap(), packets);
            }

            #[test]
            fn text_packets_round_trip(packet in packet(), raw in "[\\PC\u{1e}]{0,20}") {
                // Over WebSocket a text frame holds one packet, separator
                // or not.
                let packet = match packet {
                    Packet::Message(Message::Binary(_)) => Packet::Message(Message::text(&raw)),
                    Packet::Ping(_) => Packet::Ping(raw),
                    other => other,
                };
                prop_assert_eq!(decode_text(&encode_text(&packet)).unwrap(), packet);
            }
        }
    }
}
