//! JNI exports for `dev.tether.testkit.TetherTestSocketIoServer`
//! (`dev.tether.testkit.internal.SioNative`), a child of the `jni` module
//! for its helpers: every export runs in [`guard`], handles are Kotlin
//! `Long`s freed once after every other call on them (Kotlin's lock).

use std::panic::catch_unwind;

use ::jni::objects::{JByteArray, JClass, JObject, JString};
use ::jni::sys::{jboolean, jint, jlong, jobjectArray, JNI_TRUE};
use ::jni::JNIEnv;
use serde_json::Value;

use super::{
    borrow, free, guard, handle_or_zero, into_handle, invalid, millis, string, Failure,
    ILLEGAL_STATE,
};
use crate::{
    ConnectReply, Network, PendingAck, ServerSocket, SioTransport, SocketIoConfig,
    SocketIoTestServer,
};

fn server<'a>(raw: jlong) -> Result<&'a SocketIoTestServer, Failure> {
    // SAFETY: Kotlin passes its live server handle (see the module docs).
    unsafe { borrow::<SocketIoTestServer>(raw) }
}

fn socket<'a>(raw: jlong) -> Result<&'a ServerSocket, Failure> {
    // SAFETY: Kotlin passes its live socket handle (see the module docs).
    unsafe { borrow::<ServerSocket>(raw) }
}

fn pending<'a>(raw: jlong) -> Result<&'a PendingAck, Failure> {
    // SAFETY: Kotlin passes its live ack handle (see the module docs).
    unsafe { borrow::<PendingAck>(raw) }
}

/// A JSON array of arguments ("" or null: none).
fn args(json: &str) -> Result<Vec<Value>, Failure> {
    if json.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(json) {
        Ok(Value::Array(items)) => Ok(items),
        _ => Err(invalid(format!("arguments {json:?} are not a JSON array"))),
    }
}

/// A `java.lang.Object[]` of strings (null for `None`) and byte arrays.
enum Field {
    Text(Option<String>),
    Bytes(Vec<u8>),
}

fn object_array(env: &mut JNIEnv<'_>, fields: Vec<Field>) -> Result<jobjectArray, Failure> {
    let len = i32::try_from(fields.len()).map_err(|_| invalid("too many fields".into()))?;
    let array = env.new_object_array(len, "java/lang/Object", JObject::null())?;
    for (i, field) in fields.into_iter().enumerate() {
        let object: JObject<'_> = match field {
            Field::Text(None) => continue,
            Field::Text(Some(s)) => env.new_string(s)?.into(),
            Field::Bytes(b) => env.byte_array_from_slice(&b)?.into(),
        };
        env.set_object_array_element(&array, i as i32, &object)?;
        env.delete_local_ref(object)?;
    }
    Ok(array.into_raw())
}

/// A server handle; `config` is the JSON of `SocketIoConfig` (null: defaults).
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_start(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    config: JString<'_>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let json = string(env, &config)?;
        let config = if json.is_empty() {
            SocketIoConfig::default()
        } else {
            SocketIoConfig::from_json(&json).map_err(invalid)?
        };
        let server = SocketIoTestServer::start_with(config)
            .map_err(|e| Failure(ILLEGAL_STATE, format!("cannot start: {e}")))?;
        Ok(into_handle(server))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_free(
    _: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) {
    // SAFETY: Kotlin frees its server handle once, after every other call.
    let _ = catch_unwind(|| unsafe { free::<SocketIoTestServer>(raw) });
}

/// `what` 1: the port; 2: sessions opened so far.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_number(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    what: jint,
) -> jint {
    guard(&mut env, 0, |_| {
        let s = server(raw)?;
        Ok(match what {
            1 => jint::from(s.port()),
            _ => jint::try_from(s.session_count()).unwrap_or(jint::MAX),
        })
    })
}

/// `what`: 1 push a connect reply (`nsp` or null, `json`), 2 echo on
/// (`json` "true") or off, 3 restart, 4 kill the connections, 5 set the
/// network (`json`).
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_control(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    what: jint,
    nsp: JString<'_>,
    json: JString<'_>,
) {
    guard(&mut env, (), |env| {
        let s = server(raw)?;
        let json = string(env, &json)?;
        match what {
            1 => {
                let nsp = (!nsp.is_null()).then(|| string(env, &nsp)).transpose()?;
                let reply = ConnectReply::from_json(&json).map_err(invalid)?;
                s.push_connect_reply(nsp.as_deref(), reply).map_err(invalid)
            }
            2 => {
                s.set_echo(json == "true");
                Ok(())
            }
            3 => s.restart().map_err(|e| Failure(ILLEGAL_STATE, e)),
            4 => s.kill_connections().map_err(|e| Failure(ILLEGAL_STATE, e)),
            5 => {
                s.set_network(Network::from_json(&json).map_err(invalid)?);
                Ok(())
            }
            _ => Err(invalid(format!("unknown control {what}"))),
        }
    })
}

/// The next record of `what` (1 CONNECT, 2 event, 3 client DISCONNECT) as
/// an `Object[]`, or null after `timeout_ms`. CONNECT: `[session, nsp,
/// "true"/"false", auth JSON or null]`; event: `[session, nsp, name, args
/// JSON, ack id or null, attachment bytes…]`; DISCONNECT: `[session, nsp]`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_awaitRecord(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    what: jint,
    timeout_ms: jlong,
) -> jobjectArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let s = server(raw)?;
        let timeout = millis(timeout_ms);
        let text = |s: String| Field::Text(Some(s));
        let fields = match what {
            1 => s.await_connect(timeout).map(|c| {
                vec![
                    text(c.session.to_string()),
                    text(c.nsp),
                    text(c.accepted.to_string()),
                    Field::Text(c.auth.map(|a| a.to_string())),
                ]
            }),
            2 => s.await_event(timeout).map(|e| {
                let mut fields = vec![
                    text(e.session.to_string()),
                    text(e.nsp),
                    text(e.name),
                    text(Value::Array(e.args).to_string()),
                    Field::Text(e.ack_id.map(|id| id.to_string())),
                ];
                fields.extend(e.attachments.into_iter().map(Field::Bytes));
                fields
            }),
            3 => s
                .await_disconnect(timeout)
                .map(|d| vec![text(d.session.to_string()), text(d.nsp)]),
            _ => return Err(invalid(format!("unknown record {what}"))),
        };
        match fields {
            Some(fields) => object_array(env, fields),
            None => Ok(std::ptr::null_mut()),
        }
    })
}

/// The next socket's handle (free with `socketFree`), 0 after `timeout_ms`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_awaitSocket(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    timeout_ms: jlong,
) -> jlong {
    guard(&mut env, 0, |_| {
        Ok(handle_or_zero(
            server(raw)?.await_socket(millis(timeout_ms)),
        ))
    })
}

/// `[session, nsp, socket id]`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_socketInfo(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) -> jobjectArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let s = socket(raw)?;
        let fields = [
            s.session().to_string(),
            s.nsp().to_string(),
            s.id().to_string(),
        ];
        object_array(
            env,
            fields.into_iter().map(|f| Field::Text(Some(f))).collect(),
        )
    })
}

/// 0: gone; 1: connected over polling; 2: connected over WebSocket.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_socketState(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) -> jint {
    guard(&mut env, 0, |_| {
        let s = socket(raw)?;
        Ok(match (s.is_connected(), s.transport()) {
            (false, _) => 0,
            (true, SioTransport::Polling) => 1,
            (true, SioTransport::WebSocket) => 2,
        })
    })
}

/// One command on a socket; whether it was still there. `op`: 1 emit
/// (`event`, `args` JSON; with `data`: one attachment), 2 disconnect,
/// 3 close the session, 4 drop the transport, 5 heartbeat off, 6 on.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_socketCommand(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    op: jint,
    event: JString<'_>,
    args_json: JString<'_>,
    data: JByteArray<'_>,
) -> jboolean {
    let done = guard(&mut env, false, |env| {
        let s = socket(raw)?;
        Ok(match op {
            1 => {
                let event = string(env, &event)?;
                if event.is_empty() {
                    return Err(invalid("the event name is empty".into()));
                }
                let args = args(&string(env, &args_json)?)?;
                if data.is_null() {
                    s.emit(&event, &args)
                } else {
                    s.emit_binary(&event, &args, &[env.convert_byte_array(&data)?])
                }
            }
            2 => s.disconnect(),
            3 => s.close_session(),
            4 => s.drop_transport(),
            5 => s.set_heartbeat(false),
            6 => s.set_heartbeat(true),
            _ => return Err(invalid(format!("unknown command {op}"))),
        })
    });
    if done {
        JNI_TRUE
    } else {
        0
    }
}

/// Emits asking for an ack: the pending ack's handle (free with
/// `ackFree`), 0 if the socket is gone.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_emitWithAck(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    event: JString<'_>,
    args_json: JString<'_>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let s = socket(raw)?;
        let event = string(env, &event)?;
        if event.is_empty() {
            return Err(invalid("the event name is empty".into()));
        }
        let args = args(&string(env, &args_json)?)?;
        Ok(handle_or_zero(s.emit_with_ack(&event, &args)))
    })
}

/// The client's answer as a JSON array, or null after `timeout_ms` (or
/// once the session ended).
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_ackAwait<'local>(
    mut env: JNIEnv<'local>,
    _: JClass<'local>,
    raw: jlong,
    timeout_ms: jlong,
) -> JString<'local> {
    guard(&mut env, JString::default(), |env| {
        Ok(match pending(raw)?.wait(millis(timeout_ms)) {
            Some(answer) => env.new_string(Value::Array(answer.args).to_string())?,
            None => JString::default(),
        })
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_socketFree(
    _: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) {
    // SAFETY: Kotlin frees each socket handle once, after every other call.
    let _ = catch_unwind(|| unsafe { free::<ServerSocket>(raw) });
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SioNative_ackFree(
    _: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) {
    // SAFETY: Kotlin frees each ack handle once, after every other call.
    let _ = catch_unwind(|| unsafe { free::<PendingAck>(raw) });
}
