//! Socket.IO v5 packets: `<type>[<attachments>-][<nsp>,][<ack id>][<JSON>]`.
//!
//! Pure text in, text out; binary attachments travel as separate Engine.IO
//! messages after their packet (`BINARY_EVENT`/`BINARY_ACK`), referred to
//! from the JSON by `{"_placeholder":true,"num":i}`.

use serde_json::Value;

/// The seven packet types, by their digit.
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
    fn from_digit(d: u8) -> Option<Kind> {
        Some(match d {
            b'0' => Kind::Connect,
            b'1' => Kind::Disconnect,
            b'2' => Kind::Event,
            b'3' => Kind::Ack,
            b'4' => Kind::ConnectError,
            b'5' => Kind::BinaryEvent,
            b'6' => Kind::BinaryAck,
            _ => return None,
        })
    }

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

    fn is_binary(self) -> bool {
        matches!(self, Kind::BinaryEvent | Kind::BinaryAck)
    }
}

/// Everything before a packet's JSON: enough to route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header<'a> {
    pub kind: Kind,
    pub nsp: &'a str,
    pub id: Option<u64>,
    /// Binary messages that follow this packet.
    pub attachments: usize,
}

/// Attachments a packet may announce: far more than any app sends, few
/// enough that a hostile count cannot make us wait for or hold millions.
pub(crate) const MAX_ATTACHMENTS: usize = 1024;

/// Splits a packet into its header and its JSON text (possibly empty).
pub(crate) fn parse_header(text: &str) -> Result<(Header<'_>, &str), String> {
    let bytes = text.as_bytes();
    let kind = bytes
        .first()
        .and_then(|d| Kind::from_digit(*d))
        .ok_or_else(|| "unknown Socket.IO packet type".to_string())?;
    let mut at = 1;
    let mut attachments = 0;
    if kind.is_binary() {
        let dash = text[at..]
            .find('-')
            .ok_or("a binary packet without its attachment count")?;
        attachments = text[at..at + dash]
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_ATTACHMENTS)
            .ok_or("a bad attachment count")?;
        at += dash + 1;
    }
    let mut nsp = "/";
    if bytes.get(at) == Some(&b'/') {
        let end = text[at..].find(',').map_or(text.len(), |i| at + i);
        nsp = &text[at..end];
        at = (end + 1).min(text.len());
    }
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let id = if digits > 0 {
        let id = text[at..at + digits]
            .parse::<u64>()
            .map_err(|_| "an ack id out of range".to_string())?;
        at += digits;
        Some(id)
    } else {
        None
    };
    Ok((
        Header {
            kind,
            nsp,
            id,
            attachments,
        },
        &text[at..],
    ))
}

/// A decoded packet from the server.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Packet {
    pub kind: Kind,
    pub nsp: String,
    pub id: Option<u64>,
    pub attachments: usize,
    pub data: Option<Value>,
}

pub(crate) fn decode(text: &str) -> Result<Packet, String> {
    let (header, json) = parse_header(text)?;
    let data = if json.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(json).map_err(|e| format!("bad packet JSON: {e}"))?)
    };
    let needs_array = matches!(
        header.kind,
        Kind::Event | Kind::BinaryEvent | Kind::Ack | Kind::BinaryAck
    );
    if needs_array && !matches!(data, Some(Value::Array(_))) {
        return Err("an event or ack packet whose data is not an array".into());
    }
    if matches!(header.kind, Kind::Event | Kind::BinaryEvent)
        && !matches!(&data, Some(Value::Array(a)) if matches!(a.first(), Some(Value::String(_))))
    {
        return Err("an event packet without an event name".into());
    }
    Ok(Packet {
        kind: header.kind,
        nsp: header.nsp.to_string(),
        id: header.id,
        attachments: header.attachments,
        data,
    })
}

/// Encodes a packet; `json` is already-serialised data (or nothing).
pub(crate) fn encode(
    kind: Kind,
    nsp: &str,
    id: Option<u64>,
    attachments: usize,
    json: Option<&str>,
) -> String {
    let mut out = String::with_capacity(8 + nsp.len() + json.map_or(0, str::len));
    out.push(kind.digit());
    if kind.is_binary() {
        out.push_str(&attachments.to_string());
        out.push('-');
    }
    if nsp != "/" {
        out.push_str(nsp);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    if let Some(json) = json {
        out.push_str(json);
    }
    out
}

/// Whether `value` is a binary placeholder, and which attachment.
fn placeholder_num(value: &Value) -> Option<u64> {
    let object = value.as_object()?;
    if object.get("_placeholder")? != &Value::Bool(true) {
        return None;
    }
    object.get("num")?.as_u64()
}

/// Checks that every placeholder in `value` names one of `count`
/// attachments; returns which ones are referenced.
pub(crate) fn referenced_attachments(value: &Value, count: usize) -> Result<Vec<bool>, String> {
    let mut seen = vec![false; count];
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        if let Some(num) = placeholder_num(v) {
            let i = usize::try_from(num)
                .ok()
                .filter(|i| *i < count)
                .ok_or_else(|| {
                    format!("placeholder {num} names no attachment (there are {count})")
                })?;
            seen[i] = true;
            continue;
        }
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    Ok(seen)
}

/// The placeholder JSON for attachment `num`.
pub(crate) fn placeholder(num: usize) -> Value {
    serde_json::json!({"_placeholder": true, "num": num})
}

/// Socket.IO namespaces start with `/` and hold no `,` (it ends the
/// namespace in a packet).
pub(crate) fn validate_namespace(nsp: &str) -> Result<(), String> {
    if !nsp.starts_with('/') {
        return Err(format!("namespace {nsp:?} must start with '/'"));
    }
    if nsp.contains(',') || nsp.chars().any(char::is_control) {
        return Err(format!(
            "namespace {nsp:?} must not contain ',' or control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn headers_of_every_shape() {
        let (h, rest) = parse_header("0").unwrap();
        assert_eq!((h.kind, h.nsp, h.id, rest), (Kind::Connect, "/", None, ""));
        let (h, rest) = parse_header("0/admin,{\"token\":1}").unwrap();
        assert_eq!((h.nsp, rest), ("/admin", "{\"token\":1}"));
        let (h, rest) = parse_header("213[\"hi\"]").unwrap();
        assert_eq!((h.kind, h.id, rest), (Kind::Event, Some(13), "[\"hi\"]"));
        let (h, rest) = parse_header("52-/up,7[\"f\",{\"_placeholder\":true,\"num\":0}]").unwrap();
        assert_eq!(
            (h.kind, h.attachments, h.nsp, h.id),
            (Kind::BinaryEvent, 2, "/up", Some(7))
        );
        assert!(rest.starts_with('['));
        let (h, _) = parse_header("1/chat,").unwrap();
        assert_eq!((h.kind, h.nsp), (Kind::Disconnect, "/chat"));
        // A namespace without its comma runs to the end.
        let (h, rest) = parse_header("1/chat").unwrap();
        assert_eq!((h.nsp, rest), ("/chat", ""));
    }

    #[test]
    fn hostile_headers_are_errors() {
        for bad in [
            "",
            "9",
            "x",
            "5",
            "5x-[]",
            "599999999999999999999-[\"a\"]",
            "52000-[\"a\"]",
            "299999999999999999999999[\"a\"]",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn decode_checks_data_shapes() {
        let p = decode("2/a,[\"ev\",1,{\"k\":true}]").unwrap();
        assert_eq!(p.data, Some(json!(["ev", 1, {"k": true}])));
        assert!(decode("2[1,2]").is_err(), "an event needs a name");
        assert!(decode("2{}").is_err());
        assert!(decode("3[").is_err());
        assert!(decode("31").is_err(), "an ack needs its array");
        let p = decode("4{\"message\":\"no\"}").unwrap();
        assert_eq!(p.kind, Kind::ConnectError);
    }

    #[test]
    fn encode_round_trips() {
        let text = encode(Kind::Event, "/", Some(3), 0, Some("[\"a\"]"));
        assert_eq!(text, "23[\"a\"]");
        let text = encode(
            Kind::BinaryEvent,
            "/x",
            None,
            1,
            Some("[\"a\",{\"_placeholder\":true,\"num\":0}]"),
        );
        assert_eq!(text, "51-/x,[\"a\",{\"_placeholder\":true,\"num\":0}]");
        let p = decode(&text).unwrap();
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.attachments),
            (Kind::BinaryEvent, "/x", 1)
        );
        assert_eq!(encode(Kind::Disconnect, "/x", None, 0, None), "1/x,");
        assert_eq!(encode(Kind::Connect, "/", None, 0, None), "0");
    }

    #[test]
    fn placeholders_must_name_attachments() {
        let v = json!(["a", {"_placeholder": true, "num": 1}, [{"_placeholder": true, "num": 0}]]);
        assert_eq!(
            referenced_attachments(&v, 3).unwrap(),
            vec![true, true, false]
        );
        assert!(referenced_attachments(&v, 1).is_err());
        let not = json!([{"_placeholder": "yes", "num": 5}]);
        assert_eq!(referenced_attachments(&not, 0).unwrap(), Vec::<bool>::new());
    }

    #[test]
    fn namespaces_are_checked() {
        assert!(validate_namespace("/").is_ok());
        assert!(validate_namespace("/admin").is_ok());
        assert!(validate_namespace("admin").is_err());
        assert!(validate_namespace("/a,b").is_err());
        assert!(validate_namespace("/a\nb").is_err());
    }
}
