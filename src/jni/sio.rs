//! JNI exports for the Kotlin Socket.IO client: the native methods of
//! `dev.tether.internal.SioBridge`. Same rules as the WebSocket exports
//! (every body in [`guard`], the handle a boxed client freed once by the
//! Kotlin side's in-flight counter).
//!
//! Events cross one per `poll` call as a `byte[]` record (little-endian):
//! kind (`sio_event_kind`), state (`ws_state`, for STATE), recovered, 0,
//! error i32, ack id u64, attempt u32, delay ms u64, then the namespace,
//! the event name and the data (JSON text or a message), each as u32
//! length + UTF-8, then the attachment count u32 and each attachment as
//! u32 length + bytes. Socket.IO events are few next to WebSocket frames:
//! one crossing each keeps this simple.

use ::jni::objects::{JByteArray, JClass, JObjectArray, JString};
use ::jni::sys::{jboolean, jbyteArray, jint, jlong, JNI_FALSE};
use ::jni::JNIEnv;

use super::boundary::{guard, Failure};
use super::session::on;
use super::{optional_string, required_string};
use crate::error::{ws_status, Error};
use crate::event::{Event, SioEvent};
use crate::ffi::sio::sio_event_kind;
use crate::socketio::SocketIoClient;

/// `emit`: the emit asked for no ack.
const NO_ACK: jlong = 0;

/// Opens a Socket.IO client (see `sio_connect`); returns its handle.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_SioBridge_connect<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    url: JString<'l>,
    options_json: JString<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let url = required_string(env, &url, "url")?;
        let options = optional_string(env, &options_json)?;
        let client = SocketIoClient::connect(&url, options.as_deref())?;
        Ok(super::session::into_handle(client))
    })
}

/// The next event as a record (see the module docs), waiting up to
/// `timeoutMs` (-1: forever); null when none came. Throws `CLOSED` after
/// TERMINATED.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_SioBridge_poll<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    timeout_ms: jint,
) -> jbyteArray {
    on::<SocketIoClient, _>(&mut env, handle, std::ptr::null_mut(), |env, client| {
        let timeout = super::handle::timeout(timeout_ms)?;
        let Some(event) = client.poll_event(timeout)? else {
            return Ok(std::ptr::null_mut());
        };
        let record = encode(&event);
        Ok(env.byte_array_from_slice(&record)?.into_raw())
    })
}

/// One event as its record.
pub(crate) fn encode(event: &Event) -> Vec<u8> {
    let mut kind = sio_event_kind::SIO_EVENT_ERROR;
    let (mut state, mut recovered, mut error) = (0u8, 0u8, 0i32);
    let (mut ack_id, mut attempt, mut delay_ms) = (0u64, 0u32, 0u64);
    let (mut nsp, mut name, mut data): (&str, &str, &str) = ("", "", "");
    let mut attachments: &[tokio_tungstenite::tungstenite::Bytes] = &[];
    match event {
        Event::State(s) => {
            kind = sio_event_kind::SIO_EVENT_STATE;
            state = crate::ffi::ffi_state(*s) as u8;
        }
        Event::Reconnecting { attempt: a, delay } => {
            kind = sio_event_kind::SIO_EVENT_RECONNECTING;
            attempt = *a;
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        }
        Event::Error { code, message } => {
            error = *code;
            data = message;
        }
        Event::Terminated => kind = sio_event_kind::SIO_EVENT_TERMINATED,
        Event::SocketIo(sio) => match sio.as_ref() {
            SioEvent::Connect {
                nsp: n,
                recovered: r,
            } => {
                kind = sio_event_kind::SIO_EVENT_CONNECT;
                nsp = n;
                recovered = u8::from(*r);
            }
            SioEvent::ConnectError { nsp: n, data: d } => {
                kind = sio_event_kind::SIO_EVENT_CONNECT_ERROR;
                (nsp, data) = (n, d);
            }
            SioEvent::Disconnect { nsp: n, reason } => {
                kind = sio_event_kind::SIO_EVENT_DISCONNECT;
                (nsp, data) = (n, reason);
            }
            SioEvent::Event {
                nsp: n,
                name: e,
                args,
                ack_id: id,
                attachments: a,
            } => {
                kind = sio_event_kind::SIO_EVENT_EVENT;
                (nsp, name, data, ack_id, attachments) = (n, e, args, *id, a);
            }
            SioEvent::Ack {
                nsp: n,
                ack_id: id,
                args,
                attachments: a,
                error: e,
            } => {
                kind = sio_event_kind::SIO_EVENT_ACK;
                (nsp, data, ack_id, attachments, error) = (n, args, *id, a, *e);
            }
        },
        // A Socket.IO client never hands these on.
        Event::Open { .. }
        | Event::Text(_)
        | Event::Binary(_)
        | Event::Closed { .. }
        | Event::Resent { .. }
        | Event::ServerSent(_) => {
            error = ws_status::WS_ERR_INTERNAL as i32;
            data = "an unexpected event on a Socket.IO client";
        }
    }
    let size = 32
        + nsp.len()
        + name.len()
        + data.len()
        + 16
        + attachments.iter().map(|a| 4 + a.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&[kind as u8, state, recovered, 0]);
    out.extend_from_slice(&error.to_le_bytes());
    out.extend_from_slice(&ack_id.to_le_bytes());
    out.extend_from_slice(&attempt.to_le_bytes());
    out.extend_from_slice(&delay_ms.to_le_bytes());
    for text in [nsp, name, data] {
        put_bytes(&mut out, text.as_bytes());
    }
    out.extend_from_slice(&(attachments.len() as u32).to_le_bytes());
    for attachment in attachments {
        put_bytes(&mut out, attachment);
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Copies a Java `byte[][]` (null: none) out of the JVM.
fn attachments(env: &mut JNIEnv<'_>, array: &JObjectArray<'_>) -> Result<Vec<Vec<u8>>, Failure> {
    if array.is_null() {
        return Ok(Vec::new());
    }
    let count = env.get_array_length(array)?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for i in 0..count {
        let element = JByteArray::from(env.get_object_array_element(array, i)?);
        if element.is_null() {
            return Err(Error::NullArgument("attachment").into());
        }
        out.push(env.convert_byte_array(&element)?);
    }
    Ok(out)
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_SioBridge_join<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    nsp: JString<'l>,
    auth_json: JString<'l>,
) {
    on::<SocketIoClient, _>(&mut env, handle, (), |env, client| {
        let nsp = required_string(env, &nsp, "nsp")?;
        let auth = optional_string(env, &auth_json)?;
        Ok(client.join(&nsp, auth.as_deref())?)
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_SioBridge_leave<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    nsp: JString<'l>,
) {
    on::<SocketIoClient, _>(&mut env, handle, (), |env, client| {
        let nsp = required_string(env, &nsp, "nsp")?;
        Ok(client.leave(&nsp)?)
    })
}

/// Emits; returns the ack id (≥ 1) when `wantAck`, else 0; -3 when the
/// queue is full (nothing taken). Other failures throw.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // one per Kotlin parameter
pub extern "system" fn Java_dev_tether_internal_SioBridge_emit<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    nsp: JString<'l>,
    event: JString<'l>,
    args_json: JString<'l>,
    binary: JObjectArray<'l>,
    want_ack: jboolean,
) -> jlong {
    on::<SocketIoClient, _>(&mut env, handle, NO_ACK, |env, client| {
        let nsp = required_string(env, &nsp, "nsp")?;
        let event = required_string(env, &event, "event")?;
        let args = required_string(env, &args_json, "argsJson")?;
        let binary = attachments(env, &binary)?;
        let refs: Vec<&[u8]> = binary.iter().map(Vec::as_slice).collect();
        match client.emit_binary(&nsp, &event, &args, &refs, want_ack != JNI_FALSE) {
            Ok(id) => Ok(id.map_or(NO_ACK, |id| id as jlong)),
            Err(full @ Error::QueueFull(_)) => Ok(jlong::from(full.status())),
            Err(other) => Err(other.into()),
        }
    })
}

/// Answers the server's event `ackId`; 0, or -3 when the queue is full.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_SioBridge_ack<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    nsp: JString<'l>,
    ack_id: jlong,
    args_json: JString<'l>,
    binary: JObjectArray<'l>,
) -> jint {
    on::<SocketIoClient, _>(&mut env, handle, 0, |env, client| {
        let nsp = required_string(env, &nsp, "nsp")?;
        let args = required_string(env, &args_json, "argsJson")?;
        let binary = attachments(env, &binary)?;
        let refs: Vec<&[u8]> = binary.iter().map(Vec::as_slice).collect();
        let id = u64::try_from(ack_id)
            .map_err(|_| Error::InvalidArgument(format!("ack id {ack_id} is negative")))?;
        match client.ack_binary(&nsp, id, &args, &refs) {
            Ok(()) => Ok(0),
            Err(full @ Error::QueueFull(_)) => Ok(full.status()),
            Err(other) => Err(other.into()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_carry_every_field() {
        let event = Event::from(SioEvent::Event {
            nsp: "/a".into(),
            name: "ev".into(),
            args: "[1]".into(),
            ack_id: 7,
            attachments: vec![tokio_tungstenite::tungstenite::Bytes::from_static(&[9, 8])],
        });
        let r = encode(&event);
        assert_eq!(r[0], sio_event_kind::SIO_EVENT_EVENT as u8);
        assert_eq!(u64::from_le_bytes(r[8..16].try_into().unwrap()), 7);
        // nsp, name, data, then one attachment of 2 bytes.
        let mut at = 28;
        for want in [&b"/a"[..], b"ev", b"[1]"] {
            let len = u32::from_le_bytes(r[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(&r[at + 4..at + 4 + len], want);
            at += 4 + len;
        }
        assert_eq!(u32::from_le_bytes(r[at..at + 4].try_into().unwrap()), 1);
        assert_eq!(&r[at + 4..], &[2, 0, 0, 0, 9, 8]);
    }
}
