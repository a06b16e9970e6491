//! Engine.IO v4 and Socket.IO v5 packets as a server reads and writes
//! them: the Engine.IO packet types, the long-polling payload (packets
//! joined by `\x1e`, binary as `b` + base64), and Socket.IO's
//! `<type>[<attachments>-][<nsp>,][<id>][<json>]`. Pure: no I/O.

use base64::Engine as _;
use serde_json::Value;

/// The record separator of long-polling payloads.
pub(crate) const SEP: char = '\x1e';

/// One Engine.IO packet: text (its type digit first) or binary (a
/// Socket.IO attachment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnginePacket {
    Text(String),
    Binary(Vec<u8>),
}

/// A long-polling payload: the packets joined by `\x1e`, binary ones as
/// `b` + base64.
pub(crate) fn encode_payload(packets: &[EnginePacket]) -> String {
    let parts: Vec<String> = packets
        .iter()
        .map(|p| match p {
            EnginePacket::Text(t) => t.clone(),
            EnginePacket::Binary(b) => {
                format!("b{}", base64::engine::general_purpose::STANDARD.encode(b))
            }
        })
        .collect();
    parts.join(&SEP.to_string())
}

/// The packets of a long-polling payload; `Err` if a binary one is not
/// base64 or the body is not UTF-8.
pub(crate) fn decode_payload(body: &[u8]) -> Result<Vec<EnginePacket>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the payload is not UTF-8".to_string())?;
    text.split(SEP)
        .map(|part| match part.strip_prefix('b') {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map(EnginePacket::Binary)
                .map_err(|e| format!("a binary packet is not base64: {e}")),
            None => Ok(EnginePacket::Text(part.to_string())),
        })
        .collect()
}

/// Socket.IO packet types (v5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Connect,
    Disconnect,
    Event,
    Ack,
    ConnectError,
    BinaryEvent,
    BinaryAck,
}

impl Kind {
    fn digit(self) -> char {
        match self {
            Kind::Connect => '0',
            Kind::Disconnect => '1',
            Kind::Event => '2',
            Kind::Ack => '3',
            Kind::ConnectError => '4',
            Kind::BinaryEvent => '5',
            Kind::BinaryAck => '6',
        }
    }

    fn from_digit(c: char) -> Option<Kind> {
        Some(match c {
            '0' => Kind::Connect,
            '1' => Kind::Disconnect,
            '2' => Kind::Event,
            '3' => Kind::Ack,
            '4' => Kind::ConnectError,
            '5' => Kind::BinaryEvent,
            '6' => Kind::BinaryAck,
            _ => return None,
        })
    }

    pub(crate) fn is_binary(self) -> bool {
        matches!(self, Kind::BinaryEvent | Kind::BinaryAck)
    }
}

/// A decoded Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SioPacket {
    pub kind: Kind,
    /// `/` when the packet named none.
    pub nsp: String,
    pub id: Option<u64>,
    /// Binary packets: how many attachments follow.
    pub attachments: usize,
    pub data: Option<Value>,
}

/// Decodes the text of a Socket.IO packet (the Engine.IO `4` stripped).
pub(crate) fn decode(text: &str) -> Result<SioPacket, String> {
    let mut chars = text.char_indices();
    let kind = chars
        .next()
        .and_then(|(_, c)| Kind::from_digit(c))
        .ok_or_else(|| format!("not a Socket.IO packet: {text:?}"))?;
    let mut rest = &text[1..];
    let mut attachments = 0;
    if kind.is_binary() {
        let (count, after) = rest
            .split_once('-')
            .ok_or("a binary packet without its attachment count")?;
        attachments = count
            .parse()
            .map_err(|_| format!("bad attachment count {count:?}"))?;
        rest = after;
    }
    let mut nsp = "/".to_string();
    if rest.starts_with('/') {
        let (name, after) = rest.split_once(',').unwrap_or((rest, ""));
        nsp = name.to_string();
        rest = after;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = match digits {
        0 => None,
        _ => Some(
            rest[..digits]
                .parse()
                .map_err(|_| "an ack id out of range".to_string())?,
        ),
    };
    rest = &rest[digits..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str(rest).map_err(|e| format!("bad packet JSON: {e}"))?)
    };
    if matches!(kind, Kind::Event | Kind::BinaryEvent)
        && !matches!(&data, Some(Value::Array(a)) if matches!(a.first(), Some(Value::String(_))))
    {
        return Err("an event packet without an event name".into());
    }
    if matches!(kind, Kind::Ack | Kind::BinaryAck) && !matches!(data, Some(Value::Array(_))) {
        return Err("an ack packet whose data is not an array".into());
    }
    Ok(SioPacket {
        kind,
        nsp,
        id,
        attachments,
        data,
    })
}

/// Encodes a Socket.IO packet (without the Engine.IO `4`).
pub(crate) fn encode(
    kind: Kind,
    nsp: &str,
    id: Option<u64>,
    attachments: usize,
    data: Option<&Value>,
) -> String {
    let mut out = String::new();
    out.push(kind.digit());
    if kind.is_binary() {
        out.push_str(&format!("{attachments}-"));
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    if let Some(data) = data {
        out.push_str(&data.to_string());
    }
    out
}

/// The placeholder of attachment `num`.
pub(crate) fn placeholder(num: usize) -> Value {
    serde_json::json!({"_placeholder": true, "num": num})
}

/// Namespaces start with `/` and hold no `,` nor control characters.
pub(crate) fn check_namespace(nsp: &str) -> Result<(), String> {
    if !nsp.starts_with('/') || nsp.contains(',') || nsp.chars().any(char::is_control) {
        return Err(format!(
            "namespace {nsp:?} must start with '/' and hold no ',' nor control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets_decode_with_namespace_id_attachments_and_data() {
        let p = decode(r#"2/chat,12["hi",1]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.id, p.data),
            (Kind::Event, "/chat", Some(12), Some(json!(["hi", 1])))
        );
        let p = decode(r#"51-["up",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.attachments),
            (Kind::BinaryEvent, "/", 1)
        );
        let p = decode(r#"0/admin,{"token":"t"}"#).unwrap();
        assert_eq!(
            (p.nsp.as_str(), p.data),
            ("/admin", Some(json!({"token": "t"})))
        );
        let p = decode("1/admin,").unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (Kind::Disconnect, "/admin", None)
        );
        assert_eq!(decode("0").unwrap().nsp, "/");
    }

    #[test]
    fn bad_packets_are_refused() {
        for bad in ["", "9", "2[1]", "3/a,1{}", "5[\"x\"]", "2[", "2"] {
            assert!(decode(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn packets_encode_back() {
        let args = json!(["x", {"_placeholder": true, "num": 0}]);
        let text = encode(Kind::BinaryEvent, "/a", Some(3), 1, Some(&args));
        assert_eq!(text, r#"51-/a,3["x",{"_placeholder":true,"num":0}]"#);
        assert_eq!(decode(&text).unwrap().data, Some(args));
        assert_eq!(encode(Kind::Disconnect, "/", None, 0, None), "1");
    }

    #[test]
    fn payloads_round_trip_text_and_binary() {
        let packets = vec![
            EnginePacket::Text("42[\"a\"]".into()),
            EnginePacket::Binary(vec![0, 1, 255]),
            EnginePacket::Text("2".into()),
        ];
        let body = encode_payload(&packets);
        assert_eq!(body, "42[\"a\"]\x1ebAAH/\x1e2");
        assert_eq!(decode_payload(body.as_bytes()).unwrap(), packets);
        assert!(decode_payload(b"b!!").is_err());
    }
}
