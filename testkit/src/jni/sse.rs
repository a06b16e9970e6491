//! JNI exports for `dev.tether.testkit.TetherTestSseServer`
//! (kotlin-multiplatform/testkit/, `internal/SseNative.kt`), with the
//! conventions of the parent module: every export in [`guard`], handles
//! as `Long`s freed once by Kotlin after every other call on them.

use std::panic::catch_unwind;

use ::jni::objects::{JByteArray, JClass, JString};
use ::jni::sys::{jboolean, jint, jlong, jobjectArray, JNI_TRUE};
use ::jni::JNIEnv;

use super::{
    borrow, free, guard, handle_or_zero, into_handle, invalid, millis, request_fields, string,
    Failure, ILLEGAL_STATE,
};
use crate::{Network, SseEvent, SseReply, SseStream, SseTestServer};

fn server<'a>(raw: jlong) -> Result<&'a SseTestServer, Failure> {
    // SAFETY: Kotlin passes its live server handle (see the module docs).
    unsafe { borrow::<SseTestServer>(raw) }
}

fn stream<'a>(raw: jlong) -> Result<&'a SseStream, Failure> {
    // SAFETY: Kotlin passes its live stream handle (see the module docs).
    unsafe { borrow::<SseStream>(raw) }
}

/// A server handle: `https://` if `tls`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_start(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    tls: jboolean,
) -> jlong {
    guard(&mut env, 0, |_| {
        let started = if tls == JNI_TRUE {
            SseTestServer::start_tls()
        } else {
            SseTestServer::start()
        };
        let server = started.map_err(|e| Failure(ILLEGAL_STATE, format!("cannot start: {e}")))?;
        Ok(into_handle(server))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_free(
    _: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) {
    // SAFETY: Kotlin frees its server handle once, after every other call.
    let _ = catch_unwind(|| unsafe { free::<SseTestServer>(raw) });
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_port(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) -> jint {
    guard(&mut env, 0, |_| Ok(jint::from(server(raw)?.port())))
}

/// A TLS server's CA (PEM); null on `http://`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_caPem<'local>(
    mut env: JNIEnv<'local>,
    _: JClass<'local>,
    raw: jlong,
) -> JString<'local> {
    guard(&mut env, JString::default(), |env| {
        Ok(match server(raw)?.ca_pem() {
            Some(pem) => env.new_string(pem)?,
            None => JString::default(),
        })
    })
}

/// `what`: 1 push a reply, 2 set the network (both JSON), 3 restart,
/// 4 kill the connections.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_control(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    what: jint,
    json: JString<'_>,
) {
    guard(&mut env, (), |env| {
        let s = server(raw)?;
        let json = string(env, &json)?;
        match what {
            1 => s
                .push_reply(SseReply::from_json(&json).map_err(invalid)?)
                .map_err(invalid),
            2 => {
                s.set_network(Network::from_json(&json).map_err(invalid)?);
                Ok(())
            }
            3 => s.restart().map_err(|e| Failure(ILLEGAL_STATE, e)),
            4 => s.kill_connections().map_err(|e| Failure(ILLEGAL_STATE, e)),
            _ => Err(invalid(format!("unknown control {what}"))),
        }
    })
}

/// The next request as `[connection, method, path, name1, value1, …]`, or
/// null after `timeout_ms`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_awaitRequest(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    timeout_ms: jlong,
) -> jobjectArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        match server(raw)?.await_request(millis(timeout_ms)) {
            Some(request) => request_fields(env, request),
            None => Ok(std::ptr::null_mut()),
        }
    })
}

/// The next stream's handle (free with `streamFree`), 0 after `timeout_ms`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_awaitStream(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    timeout_ms: jlong,
) -> jlong {
    guard(&mut env, 0, |_| {
        Ok(handle_or_zero(
            server(raw)?.await_stream(millis(timeout_ms)),
        ))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_streamId(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) -> jlong {
    guard(&mut env, 0, |_| Ok(stream(raw)?.id() as jlong))
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_streamFree(
    _: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) {
    // SAFETY: Kotlin frees each stream handle once, after every other call.
    let _ = catch_unwind(|| unsafe { free::<SseStream>(raw) });
}

/// One command on a stream; whether it was still open. `op`: 1 an event
/// (`text`: its JSON), 2 a comment (`text`), 3 raw bytes (`data`), 4 end,
/// 5 reset, 6 stall (`n` != 0) or resume (`n` == 0), 7 only whether it is
/// open.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_SseNative_streamCommand(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    op: jint,
    text: JString<'_>,
    data: JByteArray<'_>,
    n: jlong,
) -> jboolean {
    let done = guard(&mut env, false, |env| {
        let s = stream(raw)?;
        let text = string(env, &text)?;
        let data = if data.is_null() {
            Vec::new()
        } else {
            env.convert_byte_array(&data)?
        };
        Ok(match op {
            1 => s.send(&SseEvent::from_json(&text).map_err(invalid)?),
            2 => s.comment(&text),
            3 => s.send_raw(&data),
            4 => s.end(),
            5 => s.reset(),
            6 => s.set_stall(n != 0),
            7 => s.is_open(),
            _ => return Err(invalid(format!("unknown command {op}"))),
        })
    });
    if done {
        JNI_TRUE
    } else {
        0
    }
}
