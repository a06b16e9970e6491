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
        // The app sees an event's id plus one (0 means none): the largest
        // u64 could not be answered with its own id.
        let id = text[at..at + digits]
            .parse::<u64>()
            .ok()
            .filter(|id| *id < u64::MAX)
            .ok_or_else(|| "an ack id out of range".to_string())?;
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
            "218446744073709551615[\"a\"]",
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

    mod fuzz {
        //! Property tests: whatever a server sends, the parsers answer with
        //! a packet or an error, never a panic; what we encode decodes to
        //! what it was.
        use super::*;
        use proptest::prelude::*;

        const KINDS: [Kind; 7] = [
            Kind::Connect,
            Kind::Disconnect,
            Kind::Event,
            Kind::Ack,
            Kind::ConnectError,
            Kind::BinaryEvent,
            Kind::BinaryAck,
        ];

        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                // Fractions that print exactly (serde_json's default float
                // parsing is not exact in the last digit for every f64).
                (-100_000i32..100_000).prop_map(|n| json!(f64::from(n) / 8.0)),
                "\\PC{0,8}".prop_map(Value::String),
                (0usize..3).prop_map(|n| json!({"_placeholder": true, "num": n})),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z_]{0,4}", inner, 0..4)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn namespace() -> impl Strategy<Value = String> {
            prop_oneof![Just("/".to_string()), "/[a-zA-Z0-9_/é{}\\[\\]\"-]{1,10}"]
        }

        /// A packet as a server may send it: kind, namespace, id,
        /// attachments and data of the shape its kind takes.
        fn well_formed() -> impl Strategy<Value = (Kind, String, Option<u64>, usize, Option<Value>)>
        {
            (
                prop::sample::select(KINDS.to_vec()),
                namespace(),
                prop::option::of(0u64..u64::MAX),
                0usize..=MAX_ATTACHMENTS,
                "\\PC{1,6}",
                prop::collection::vec(json(), 0..4),
                prop::collection::btree_map("[a-z]{1,4}", json(), 0..3),
            )
                .prop_map(|(kind, nsp, id, attachments, name, args, object)| {
                    let object = Value::Object(object.into_iter().collect());
                    let (id, data) = match kind {
                        Kind::Connect | Kind::ConnectError => (None, Some(object)),
                        Kind::Disconnect => (None, None),
                        Kind::Event | Kind::BinaryEvent => {
                            let mut items = vec![Value::String(name)];
                            items.extend(args);
                            (id, Some(Value::Array(items)))
                        }
                        Kind::Ack | Kind::BinaryAck => {
                            (Some(id.unwrap_or(0)), Some(Value::Array(args)))
                        }
                    };
                    let attachments = if kind.is_binary() { attachments } else { 0 };
                    (kind, nsp, id, attachments, data)
                })
        }

        /// Packet-shaped text: digits, dashes, namespaces, commas, JSON bits.
        fn packet_like() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                (0u8..10).prop_map(|d| char::from(b'0' + d).to_string()),
                Just("-".to_string()),
                Just("/".to_string()),
                Just(",".to_string()),
                Just("[".to_string()),
                Just("]".to_string()),
                Just("{\"_placeholder\":true,\"num\":0}".to_string()),
                Just("\"ev\"".to_string()),
                Just("18446744073709551615".to_string()),
                "\\PC{0,3}",
            ];
            prop::collection::vec(piece, 0..12).prop_map(|parts| parts.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn parse_header_and_decode_never_panic(text in any::<String>()) {
                let _ = parse_header(&text);
                let _ = decode(&text);
            }

            #[test]
            fn packet_like_text_parses_or_fails(text in packet_like()) {
                if let Ok((header, rest)) = parse_header(&text) {
                    prop_assert!(header.attachments <= MAX_ATTACHMENTS);
                    prop_assert!(header.id != Some(u64::MAX));
                    prop_assert!(text.ends_with(rest));
                    prop_assert!(header.nsp.starts_with('/'));
                }
                if let Ok(packet) = decode(&text) {
                    if matches!(packet.kind, Kind::Event | Kind::BinaryEvent) {
                        let first = packet.data.as_ref().and_then(|d| d.get(0));
                        prop_assert!(matches!(first, Some(Value::String(_))));
                    }
                }
            }

            #[test]
            fn encode_then_decode_round_trips(
                (kind, nsp, id, attachments, data) in well_formed()
            ) {
                let json = data.as_ref().map(Value::to_string);
                let text = encode(kind, &nsp, id, attachments, json.as_deref());
                let packet = decode(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
                prop_assert_eq!(packet.kind, kind);
                prop_assert_eq!(&packet.nsp, &nsp);
                prop_assert_eq!(packet.id, id);
                prop_assert_eq!(packet.attachments, attachments);
                prop_assert_eq!(packet.data, data);
            }

            #[test]
            fn referenced_attachments_never_panics(value in json(), count in 0usize..4) {
                if let Ok(seen) = referenced_attachments(&value, count) {
                    prop_assert_eq!(seen.len(), count);
                }
            }
        }
    }
}
