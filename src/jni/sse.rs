//! JNI exports for the Kotlin Server-Sent Events client: the native
//! methods of `dev.tether.internal.SseBridge`, over
//! [`crate::client::SseClient`]. Same rules as the WebSocket and Socket.IO
//! exports (every body in [`guard`], the handle a boxed client freed once
//! by the Kotlin side's in-flight counter).
//!
//! Events cross one per `poll` call as a `byte[]` record (little-endian):
//! kind (`sse_event_kind`), state (`ws_state`, for STATE), has-id (1 when
//! the event carries an id, which may be empty), 0, error i32, attempt
//! u32, delay ms u64, then the event type, the id and the data (or an
//! error's message), each as u32 length + UTF-8. A record per event keeps
//! the crossing simple; batching is what the WebSocket path needs for its
//! frame rates, and can come here too if token streams show the cost.

use ::jni::objects::{JClass, JString};
use ::jni::sys::{jbyteArray, jint, jlong};
use ::jni::JNIEnv;

use super::boundary::guard;
use super::session::on;
use super::{optional_string, required_string};
use crate::client::SseClient;
use crate::event::Event;
use crate::ffi::sse::sse_event_kind;

/// Bytes of a record before its three strings.
const HEADER: usize = 20;

/// Opens a Server-Sent Events client (see `sse_connect`); returns its
/// handle.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_SseBridge_connect<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    url: JString<'l>,
    options_json: JString<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let url = required_string(env, &url, "url")?;
        let options = optional_string(env, &options_json)?;
        let options = crate::wire::sse::SseOptions::parse_json(options.as_deref())?;
        let client = SseClient::connect(&url, options)?;
        Ok(super::session::into_handle(client))
    })
}

/// The next event as a record (see the module docs), waiting up to
/// `timeoutMs` (-1: forever); null when none came. Throws `CLOSED` after
/// TERMINATED.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_SseBridge_poll<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    timeout_ms: jint,
) -> jbyteArray {
    on::<SseClient, _>(&mut env, handle, std::ptr::null_mut(), |env, client| {
        let timeout = super::handle::timeout(timeout_ms)?;
        loop {
            let Some(event) = client.poll_event(timeout)? else {
                return Ok(std::ptr::null_mut());
            };
            // Events an SSE client never reports are skipped, as in
            // `sse_poll_event`.
            if let Some(record) = encode(&event) {
                return Ok(env.byte_array_from_slice(&record)?.into_raw());
            }
        }
    })
}

/// One event as its record; `None` for events an SSE client does not
/// report.
pub(crate) fn encode(event: &Event) -> Option<Vec<u8>> {
    let (mut state, mut has_id, mut error) = (0u8, 0u8, 0i32);
    let (mut attempt, mut delay_ms) = (0u32, 0u64);
    let (mut event_type, mut id, mut data): (&str, &str, &str) = ("", "", "");
    let kind = match event {
        Event::State(s) => {
            state = crate::ffi::ffi_state(*s) as u8;
            sse_event_kind::SSE_EVENT_STATE
        }
        Event::Open { .. } => sse_event_kind::SSE_EVENT_OPEN,
        Event::ServerSent(message) => {
            event_type = &message.event_type;
            if let Some(last) = &message.id {
                has_id = 1;
                id = last;
            }
            data = &message.data;
            sse_event_kind::SSE_EVENT_MESSAGE
        }
        Event::Reconnecting { attempt: a, delay } => {
            attempt = *a;
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            sse_event_kind::SSE_EVENT_RECONNECTING
        }
        Event::Error { code, message } => {
            error = *code;
            data = message;
            sse_event_kind::SSE_EVENT_ERROR
        }
        Event::Terminated => sse_event_kind::SSE_EVENT_TERMINATED,
        // No close handshake, no sending, no Socket.IO on an SSE client.
        Event::Closed { .. }
        | Event::Resent { .. }
        | Event::Text(_)
        | Event::Binary(_)
        | Event::SocketIo(_) => return None,
    };
    let mut out = Vec::with_capacity(HEADER + 12 + event_type.len() + id.len() + data.len());
    out.extend_from_slice(&[kind as u8, state, has_id, 0]);
    out.extend_from_slice(&error.to_le_bytes());
    out.extend_from_slice(&attempt.to_le_bytes());
    out.extend_from_slice(&delay_ms.to_le_bytes());
    for text in [event_type, id, data] {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ServerSentEvent;

    /// The three strings of a record, after its header.
    fn strings(r: &[u8]) -> Vec<&[u8]> {
        let mut at = HEADER;
        let mut out = Vec::new();
        for _ in 0..3 {
            let len = u32::from_le_bytes(r[at..at + 4].try_into().unwrap()) as usize;
            out.push(&r[at + 4..at + 4 + len]);
            at += 4 + len;
        }
        assert_eq!(at, r.len());
        out
    }

    #[test]
    fn records_carry_every_field() {
        let event = Event::from(ServerSentEvent {
            event_type: "tick".into(),
            id: Some("7".into()),
            data: "a\nb".into(),
        });
        let r = encode(&event).unwrap();
        assert_eq!(r[0], sse_event_kind::SSE_EVENT_MESSAGE as u8);
        assert_eq!(r[2], 1);
        assert_eq!(strings(&r), [&b"tick"[..], b"7", b"a\nb"]);

        let reconnecting = Event::Reconnecting {
            attempt: 3,
            delay: std::time::Duration::from_millis(250),
        };
        let r = encode(&reconnecting).unwrap();
        assert_eq!(r[0], sse_event_kind::SSE_EVENT_RECONNECTING as u8);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(r[12..20].try_into().unwrap()), 250);
    }

    #[test]
    fn an_empty_id_is_told_from_none() {
        let with = |id: Option<&str>| {
            encode(&Event::from(ServerSentEvent {
                event_type: "message".into(),
                id: id.map(Into::into),
                data: String::new(),
            }))
            .unwrap()
        };
        assert_eq!(with(Some(""))[2], 1);
        assert_eq!(with(None)[2], 0);
    }

    #[test]
    fn events_an_sse_client_never_reports_have_no_record() {
        assert!(encode(&Event::Text("x".into())).is_none());
    }
}
