//! The options of an SSE client: the WebSocket client's that apply, and a
//! few of its own. The SSE keys are split off the JSON object first (so
//! that `ws_connect` keeps rejecting them), the rest goes through the
//! WebSocket options parser, and keys that only mean something to a
//! WebSocket are refused with a clear message.

use serde::Deserialize;

use crate::error::Error;
use crate::options::Options;

/// Keys of the WebSocket options that have no meaning for SSE.
const WEBSOCKET_ONLY: [&str; 7] = [
    "subprotocols",
    "ping_interval_ms",
    "pong_timeout_ms",
    "close_timeout_ms",
    "max_frame_bytes",
    "queue",
    "outbox",
];

/// The keys only SSE has.
const SSE_ONLY: [&str; 4] = ["method", "body", "last_event_id", "read_timeout_ms"];

/// Options of an SSE client (`sse_connect`).
#[derive(Debug, Clone)]
pub struct SseOptions {
    /// The WebSocket options that apply: headers, connect_timeout_ms,
    /// reconnect, tls, proxy, allow_insecure, max_message_bytes (per
    /// event), max_unpolled_bytes.
    pub common: Options,
    /// The request method (`GET` by default; `POST` for APIs that stream
    /// the answer to a request).
    pub method: String,
    /// The request body (text), sent on every connection.
    pub body: Option<String>,
    /// The event id in force before any event: sent as `Last-Event-ID` on
    /// the first connection too.
    pub last_event_id: Option<String>,
    /// No byte (comments included) within this many milliseconds means a
    /// dead stream: reconnect. 0 turns the check off.
    pub read_timeout_ms: u64,
}

impl Default for SseOptions {
    fn default() -> Self {
        SseOptions {
            common: Options::default(),
            method: "GET".into(),
            body: None,
            last_event_id: None,
            read_timeout_ms: 60_000,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct SseOnly {
    method: Option<String>,
    body: Option<String>,
    last_event_id: Option<String>,
    read_timeout_ms: Option<u64>,
}

impl SseOptions {
    /// Parses and checks the options JSON (`None` or empty: defaults).
    pub fn from_json(json: Option<&str>) -> Result<SseOptions, Error> {
        let options = SseOptions::parse_json(json)?;
        options.validate()?;
        Ok(options)
    }

    /// Parses the JSON; the values shared with WebSocket are checked when
    /// the client starts (as for `ws_connect`).
    pub(crate) fn parse_json(json: Option<&str>) -> Result<SseOptions, Error> {
        let text = json.map(str::trim).unwrap_or("");
        if text.is_empty() {
            return Ok(SseOptions::default());
        }
        let bad = |e: serde_json::Error| Error::InvalidArgument(format!("options JSON: {e}"));
        let value: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(Error::InvalidArgument(
                "options JSON: expected an object like {\"read_timeout_ms\": 30000}".into(),
            ));
        };
        if let Some(key) = WEBSOCKET_ONLY.iter().find(|k| object.contains_key(**k)) {
            return Err(Error::InvalidArgument(format!(
                "options: {key} is a WebSocket option; it does not apply to SSE clients"
            )));
        }
        let mut own = serde_json::Map::new();
        for key in SSE_ONLY {
            if let Some(v) = object.remove(key) {
                own.insert(key.to_string(), v);
            }
        }
        let own: SseOnly = serde_json::from_value(serde_json::Value::Object(own)).map_err(bad)?;
        let common = Options::parse_json(Some(&serde_json::Value::Object(object).to_string()))?;
        let defaults = SseOptions::default();
        Ok(SseOptions {
            common,
            method: own.method.unwrap_or(defaults.method),
            body: own.body,
            last_event_id: own.last_event_id,
            read_timeout_ms: own.read_timeout_ms.unwrap_or(defaults.read_timeout_ms),
        })
    }

    /// Checks every value (the shared ones as `ws_connect` does).
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_own()?;
        self.common.validate()
    }

    /// The checks of the SSE keys (and of headers SSE sets itself).
    pub(crate) fn validate_own(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::InvalidArgument(format!("options: {msg}")));
        let method = self.method.as_str();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return invalid(format!(
                "method {method:?} is not an HTTP method like \"GET\" or \"POST\" (upper case)"
            ));
        }
        if self.body.is_some() && matches!(method, "GET" | "HEAD") {
            return invalid(format!(
                "body needs a method that takes one, like \"POST\" (method is {method})"
            ));
        }
        if let Some(id) = &self.last_event_id {
            if id.contains(['\0', '\r', '\n']) {
                return invalid("last_event_id must not contain NUL, CR or LF".into());
            }
        }
        for name in self.common.headers.keys() {
            check_header(name)
                .map_err(|why| Error::InvalidArgument(format!("options: headers: {why}")))?;
        }
        Ok(())
    }
}

/// Headers an SSE client sets itself: an app value would break the
/// request (its framing, or the resume).
pub(crate) fn check_header(name: &str) -> Result<(), String> {
    if name.eq_ignore_ascii_case("last-event-id") {
        return Err("Last-Event-ID is set by the client itself; use option last_event_id".into());
    }
    if ["content-length", "transfer-encoding"]
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "{name} is set by the client itself (from the body)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_contracts() {
        let o = SseOptions::from_json(None).unwrap();
        assert_eq!(o.method, "GET");
        assert_eq!(o.read_timeout_ms, 60_000);
        assert_eq!((o.body, o.last_event_id), (None, None));
        assert_eq!(
            o.common.max_message_bytes,
            Options::default().max_message_bytes
        );
    }

    #[test]
    fn sse_keys_and_shared_keys_are_read_together() {
        let o = SseOptions::from_json(Some(
            r#"{"method": "POST", "body": "{\"q\":1}", "last_event_id": "41",
                "read_timeout_ms": 5000, "headers": {"Authorization": "Bearer t"},
                "reconnect": {"initial_delay_ms": 10}, "max_message_bytes": 1024}"#,
        ))
        .unwrap();
        assert_eq!(o.method, "POST");
        assert_eq!(o.body.as_deref(), Some("{\"q\":1}"));
        assert_eq!(o.last_event_id.as_deref(), Some("41"));
        assert_eq!(o.read_timeout_ms, 5000);
        assert_eq!(o.common.reconnect.initial_delay_ms, 10);
        assert_eq!(o.common.max_message_bytes, 1024);
        assert_eq!(o.common.headers.len(), 1);
    }

    #[test]
    fn websocket_only_keys_are_refused_by_name() {
        for key in WEBSOCKET_ONLY {
            let json = format!("{{\"{key}\": null}}");
            let Err(Error::InvalidArgument(msg)) = SseOptions::from_json(Some(&json)) else {
                panic!("{key} accepted");
            };
            assert!(msg.contains(key) && msg.contains("WebSocket"), "{msg}");
        }
    }

    #[test]
    fn the_websocket_options_keep_refusing_the_sse_keys() {
        for key in SSE_ONLY {
            let json = format!("{{\"{key}\": \"x\"}}");
            assert!(Options::from_json(Some(&json)).is_err(), "{key}");
        }
    }

    #[test]
    fn bad_values_get_clear_errors() {
        for bad in [
            r#"{"method": "get"}"#,
            r#"{"method": ""}"#,
            r#"{"method": "PO ST"}"#,
            r#"{"body": "x"}"#,
            r#"{"method": 1}"#,
            r#"{"read_timeout_ms": -1}"#,
            r#"{"last_event_id": "a\nb"}"#,
            r#"{"headers": {"Last-Event-ID": "1"}}"#,
            r#"{"headers": {"content-length": "1"}}"#,
            r#"{"unknown": 1}"#,
            r#"{"connect_timeout_ms": 0}"#,
            "[]",
            "{",
        ] {
            assert!(
                matches!(
                    SseOptions::from_json(Some(bad)),
                    Err(Error::InvalidArgument(_))
                ),
                "{bad} accepted"
            );
        }
    }
}
