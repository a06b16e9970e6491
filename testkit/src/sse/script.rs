//! What an SSE test server is told to do: the answer to each request
//! ([`SseReply`]) and the events it writes ([`SseEvent`]). Plain values,
//! with a JSON form for the C and JNI layers, checked once here.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The server's answer to one request. Queued with
/// [`SseTestServer::push_reply`](crate::SseTestServer::push_reply); each
/// new request takes the next one; once the queue is empty, requests are
/// accepted.
///
/// JSON: `{"accept": {"headers": {"X-A": "1"}}}`,
/// `{"refuse": {"status": 503, "headers": {"Retry-After": "1"}, "body": ""}}`
/// (204 ends an EventSource client for good),
/// `{"wrong_content_type": {"content_type": "text/html"}}`, `"reset"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SseReply {
    /// `200 OK`, `Content-Type: text/event-stream`, a chunked body that
    /// stays open ([`SseStream`](crate::SseStream) writes it), with extra
    /// response headers.
    Accept {
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// Another answer (e.g. 503 with `Retry-After`, 204, 404) with
    /// `body`, then the connection closes.
    Refuse {
        status: u16,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: String,
    },
    /// `200 OK` with this `Content-Type` (not an event stream) and a short
    /// body, then the connection closes.
    WrongContentType { content_type: String },
    /// Reads the request, then resets the connection (RST).
    Reset,
}

impl SseReply {
    /// Accepts with no extra header.
    pub fn accept() -> SseReply {
        SseReply::Accept {
            headers: BTreeMap::new(),
        }
    }

    /// Accepts with these extra headers.
    pub fn accept_with(headers: &[(&str, &str)]) -> SseReply {
        SseReply::Accept {
            headers: pairs(headers),
        }
    }

    /// Answers `status` with these headers (e.g. `(503, &[("Retry-After",
    /// "1")])`, or `(204, &[])` to end the client) and no body.
    pub fn refuse(status: u16, headers: &[(&str, &str)]) -> SseReply {
        SseReply::Refuse {
            status,
            headers: pairs(headers),
            body: String::new(),
        }
    }

    /// `200 OK` with `content_type` instead of `text/event-stream`.
    pub fn wrong_content_type(content_type: &str) -> SseReply {
        SseReply::WrongContentType {
            content_type: content_type.to_string(),
        }
    }

    /// Parses the JSON form; the error says what is wrong.
    pub fn from_json(json: &str) -> Result<SseReply, String> {
        let reply: SseReply =
            serde_json::from_str(json).map_err(|e| format!("bad SSE reply JSON: {e}"))?;
        reply.check()?;
        Ok(reply)
    }

    /// Refuses what could not go on the wire.
    pub fn check(&self) -> Result<(), String> {
        match self {
            SseReply::Accept { headers } => check_headers(headers),
            SseReply::Refuse {
                status, headers, ..
            } => {
                if !(200..=599).contains(status) || *status == 200 {
                    return Err(format!(
                        "refuse: status {status} is not 201..=599 (accept answers 200)"
                    ));
                }
                check_headers(headers)
            }
            SseReply::WrongContentType { content_type } => {
                if content_type.is_empty() || content_type.contains(['\r', '\n']) {
                    return Err(format!(
                        "wrong_content_type: {content_type:?} is not a header value"
                    ));
                }
                Ok(())
            }
            SseReply::Reset => Ok(()),
        }
    }
}

fn pairs(headers: &[(&str, &str)]) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, value) in headers {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("header name {name:?} is not a token"));
        }
        if value.contains(['\r', '\n']) {
            return Err(format!("header {name}: the value holds a line break"));
        }
    }
    Ok(())
}

/// One event as the server writes it: `event:` (none: the client's
/// `"message"`), `id:`, `retry:` and one `data:` line per line of
/// [`SseEvent::data`] (split at `\n`, `\r\n` or `\r`; the client joins
/// them with `\n`), then a blank line.
///
/// JSON: `{"event": "tick", "id": "7", "data": "line 1\nline 2",
/// "retry_ms": 1000}` (all but `data` optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseEvent {
    #[serde(default)]
    pub event: Option<String>,
    /// `Some("")` writes an empty `id:` (which resets the client's id).
    #[serde(default)]
    pub id: Option<String>,
    pub data: String,
    /// The client's reconnection delay from then on, in milliseconds.
    #[serde(default, rename = "retry_ms")]
    pub retry: Option<u64>,
}

impl SseEvent {
    /// An event of type `message` with `data`, no id.
    pub fn data(data: &str) -> SseEvent {
        SseEvent {
            data: data.to_string(),
            ..SseEvent::default()
        }
    }

    /// With this `id:`.
    pub fn id(mut self, id: &str) -> SseEvent {
        self.id = Some(id.to_string());
        self
    }

    /// With this `event:` type.
    pub fn event(mut self, event_type: &str) -> SseEvent {
        self.event = Some(event_type.to_string());
        self
    }

    /// With this `retry:` (milliseconds).
    pub fn retry(mut self, ms: u64) -> SseEvent {
        self.retry = Some(ms);
        self
    }

    /// Parses the JSON form; the error says what is wrong.
    pub fn from_json(json: &str) -> Result<SseEvent, String> {
        let event: SseEvent =
            serde_json::from_str(json).map_err(|e| format!("bad SSE event JSON: {e}"))?;
        event.check()?;
        Ok(event)
    }

    /// Refuses fields that would break the stream (a line break in
    /// `event` or `id`, a NUL in `id`).
    pub fn check(&self) -> Result<(), String> {
        if let Some(t) = &self.event {
            if t.contains(['\r', '\n']) {
                return Err(format!("event type {t:?} holds a line break"));
            }
        }
        if let Some(id) = &self.id {
            if id.contains(['\r', '\n', '\0']) {
                return Err(format!("id {id:?} holds a line break or NUL"));
            }
        }
        Ok(())
    }

    /// The event's bytes on the stream (after [`SseEvent::check`]).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = String::new();
        if let Some(t) = &self.event {
            out.push_str(&format!("event: {t}\n"));
        }
        if let Some(id) = &self.id {
            out.push_str(&format!("id: {id}\n"));
        }
        if let Some(ms) = self.retry {
            out.push_str(&format!("retry: {ms}\n"));
        }
        for line in self.data.replace("\r\n", "\n").split(['\n', '\r']) {
            out.push_str(&format!("data: {line}\n"));
        }
        out.push('\n');
        out.into_bytes()
    }
}

/// A comment line (`: text`), one per line of `text`: clients ignore it,
/// it only keeps a stream alive.
pub fn comment(text: &str) -> Vec<u8> {
    let mut out = String::new();
    for line in text.replace("\r\n", "\n").split(['\n', '\r']) {
        out.push_str(&format!(": {line}\n"));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_written_field_by_field_with_one_data_line_per_line() {
        let event = SseEvent::data("one\ntwo\r\nthree")
            .id("7")
            .event("tick")
            .retry(250);
        assert_eq!(
            String::from_utf8(event.to_wire()).unwrap(),
            "event: tick\nid: 7\nretry: 250\ndata: one\ndata: two\ndata: three\n\n"
        );
        assert_eq!(SseEvent::data("").to_wire(), b"data: \n\n");
        assert_eq!(comment("a\nb"), b": a\n: b\n");
    }

    #[test]
    fn replies_and_events_parse_from_json_and_bad_ones_are_refused() {
        assert_eq!(
            SseReply::from_json(r#"{"refuse":{"status":503,"headers":{"Retry-After":"1"}}}"#),
            Ok(SseReply::refuse(503, &[("Retry-After", "1")]))
        );
        assert_eq!(
            SseReply::from_json(r#"{"accept":{}}"#),
            Ok(SseReply::accept())
        );
        assert_eq!(SseReply::from_json("\"reset\""), Ok(SseReply::Reset));
        assert_eq!(
            SseReply::from_json(r#"{"wrong_content_type":{"content_type":"text/html"}}"#),
            Ok(SseReply::wrong_content_type("text/html"))
        );
        for bad in [
            r#"{"refuse":{"status":200}}"#,
            r#"{"refuse":{"status":600}}"#,
            r#"{"accept":{"headers":{"A":"1\r\nB: 2"}}}"#,
            r#"{"accept":{"subprotocol":"x"}}"#,
            r#"{"wrong_content_type":{"content_type":""}}"#,
            "\"silence\"",
            "[",
        ] {
            assert!(SseReply::from_json(bad).is_err(), "{bad} was taken");
        }
        assert_eq!(
            SseEvent::from_json(r#"{"event":"t","id":"1","data":"d","retry_ms":5}"#),
            Ok(SseEvent::data("d").id("1").event("t").retry(5))
        );
        for bad in [
            r#"{"id":"1\n2","data":""}"#,
            r#"{"event":"a\rb","data":""}"#,
            r#"{"id":"1"}"#,
            r#"{"data":"","extra":1}"#,
        ] {
            assert!(SseEvent::from_json(bad).is_err(), "{bad} was taken");
        }
    }
}
