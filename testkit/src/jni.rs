//! JNI exports for `dev.tether.testkit.TetherTestServer`
//! (kotlin-multiplatform/testkit/), behind the `jni` feature. The only
//! other place of the kit with `unsafe`: the handles Kotlin holds as
//! `Long`s. Every export runs in [`guard`]: an error or a panic becomes a
//! thrown Java exception, never an unwind into the JVM.
//!
//! Kotlin's `TetherTestServer` frees each handle once, after every other
//! call on it has returned (a read-write lock around the calls).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use ::jni::objects::{JByteArray, JClass, JObject, JString};
use ::jni::sys::{jboolean, jbyteArray, jint, jlong, jobjectArray, JNI_TRUE};
use ::jni::JNIEnv;

use crate::{Connection, Faults, MessageKind, Network, Reply, Request, TestServer};

// `dev.tether.testkit.TetherTestSseServer`'s exports.
mod sse;

// The Socket.IO server's exports (`SioNative`), with the helpers here.
mod sio;

/// Why an export failed: thrown as this Java class with this message.
struct Failure(&'static str, String);

const ILLEGAL_ARGUMENT: &str = "java/lang/IllegalArgumentException";
const ILLEGAL_STATE: &str = "java/lang/IllegalStateException";

impl From<::jni::errors::Error> for Failure {
    fn from(error: ::jni::errors::Error) -> Self {
        Failure(ILLEGAL_STATE, format!("JNI call failed: {error}"))
    }
}

fn invalid(message: String) -> Failure {
    Failure(ILLEGAL_ARGUMENT, message)
}

/// Runs `body`; on `Err` or panic, throws (unless a Java exception is
/// already pending) and returns `fallback`.
fn guard<'local, R>(
    env: &mut JNIEnv<'local>,
    fallback: R,
    body: impl FnOnce(&mut JNIEnv<'local>) -> Result<R, Failure>,
) -> R {
    let Failure(class, message) = match catch_unwind(AssertUnwindSafe(|| body(&mut *env))) {
        Ok(Ok(value)) => return value,
        Ok(Err(failure)) => failure,
        Err(_) => Failure(
            ILLEGAL_STATE,
            "tether-testkit: internal error (panic)".into(),
        ),
    };
    if !env.exception_check().unwrap_or(true) {
        let _ = env.throw_new(class, message);
    }
    fallback
}

/// # Safety
/// `raw` is 0 or came from `Box::into_raw` of a `T` not freed yet, and is
/// not freed during the call (Kotlin's lock guarantees it).
unsafe fn borrow<'a, T>(raw: jlong) -> Result<&'a T, Failure> {
    if raw == 0 {
        return Err(Failure(ILLEGAL_STATE, "the handle is closed".into()));
    }
    // SAFETY: non-zero and live for the call, by this function's contract.
    Ok(unsafe { &*(raw as *const T) })
}

/// # Safety
/// `raw` is 0 or came from `Box::into_raw` of a `T`, freed only once, with
/// no call on it in flight or to follow.
unsafe fn free<T>(raw: jlong) {
    if raw != 0 {
        // SAFETY: a pointer from `Box::into_raw`, freed once (the contract).
        drop(unsafe { Box::from_raw(raw as *mut T) });
    }
}

/// A handle Kotlin holds (and frees once with the type's `free`).
fn into_handle<T>(value: T) -> jlong {
    Box::into_raw(Box::new(value)) as jlong
}

/// The handle of what an await found; 0 when nothing came.
fn handle_or_zero<T>(found: Option<T>) -> jlong {
    found.map_or(0, into_handle)
}

fn server<'a>(raw: jlong) -> Result<&'a TestServer, Failure> {
    // SAFETY: Kotlin passes its live server handle (see the module docs).
    unsafe { borrow::<TestServer>(raw) }
}

fn connection<'a>(raw: jlong) -> Result<&'a Connection, Failure> {
    // SAFETY: Kotlin passes its live connection handle (see the module docs).
    unsafe { borrow::<Connection>(raw) }
}

fn string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<String, Failure> {
    if s.is_null() {
        return Ok(String::new());
    }
    Ok(env.get_string(s)?.into())
}

fn millis(timeout_ms: jlong) -> Duration {
    Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0)).min(crate::MAX_DELAY)
}

/// A server handle: over TLS if `tls`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_start(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    tls: jboolean,
) -> jlong {
    guard(&mut env, 0, |_| {
        let started = if tls == JNI_TRUE {
            TestServer::start_tls()
        } else {
            TestServer::start()
        };
        let server = started.map_err(|e| Failure(ILLEGAL_STATE, format!("cannot start: {e}")))?;
        Ok(into_handle(server))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_free(
    _: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) {
    // SAFETY: Kotlin frees its server handle once, after every other call.
    let _ = catch_unwind(|| unsafe { free::<TestServer>(raw) });
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_port(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) -> jint {
    guard(&mut env, 0, |_| Ok(jint::from(server(raw)?.port())))
}

/// A TLS server's CA (PEM) with `what` 1, its pin with 2; null on `ws://`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_tlsIdentity<'local>(
    mut env: JNIEnv<'local>,
    _: JClass<'local>,
    raw: jlong,
    what: jint,
) -> JString<'local> {
    guard(&mut env, JString::default(), |env| {
        let s = server(raw)?;
        let value = if what == 1 {
            s.ca_pem()
        } else {
            s.pin_sha256()
        };
        Ok(match value {
            Some(v) => env.new_string(v)?,
            None => JString::default(),
        })
    })
}

/// `what`: 1 push a reply, 2 set the network (both JSON), 3 echo on
/// ("true") or off, 4 restart, 5 kill the connections.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_control(
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
                .push_reply(Reply::from_json(&json).map_err(invalid)?)
                .map_err(invalid),
            2 => {
                s.set_network(Network::from_json(&json).map_err(invalid)?);
                Ok(())
            }
            3 => {
                s.set_echo(json == "true");
                Ok(())
            }
            4 => s.restart().map_err(|e| Failure(ILLEGAL_STATE, e)),
            5 => s.kill_connections().map_err(|e| Failure(ILLEGAL_STATE, e)),
            _ => Err(invalid(format!("unknown control {what}"))),
        }
    })
}

/// The next request as `[connection, method, path, name1, value1, …]`, or
/// null after `timeout_ms`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_awaitRequest(
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

/// `request` as `[connection, method, path, name1, value1, …]`.
fn request_fields(env: &mut JNIEnv<'_>, request: Request) -> Result<jobjectArray, Failure> {
    let mut fields = vec![request.connection.to_string(), request.method, request.path];
    for (name, value) in request.headers {
        fields.push(name);
        fields.push(value);
    }
    let len = i32::try_from(fields.len()).map_err(|_| invalid("too many headers".into()))?;
    let array = env.new_object_array(len, "java/lang/String", JObject::null())?;
    for (i, field) in fields.iter().enumerate() {
        let s = env.new_string(field)?;
        env.set_object_array_element(&array, i as i32, &s)?;
        env.delete_local_ref(s)?;
    }
    Ok(array.into_raw())
}

/// The next message as bytes: kind (1 text, 2 binary), the connection id
/// (8 bytes, big-endian), then the payload; null after `timeout_ms`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_awaitMessage(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    timeout_ms: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let Some(message) = server(raw)?.await_message(millis(timeout_ms)) else {
            return Ok(std::ptr::null_mut());
        };
        let mut bytes = Vec::with_capacity(9 + message.data.len());
        bytes.push(if message.kind == MessageKind::Text {
            1
        } else {
            2
        });
        bytes.extend_from_slice(&message.connection.to_be_bytes());
        bytes.extend_from_slice(&message.data);
        Ok(env.byte_array_from_slice(&bytes)?.into_raw())
    })
}

/// The next connection's handle (free with `connectionFree`), 0 after
/// `timeout_ms`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_awaitConnection(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    timeout_ms: jlong,
) -> jlong {
    guard(&mut env, 0, |_| {
        Ok(handle_or_zero(
            server(raw)?.await_connection(millis(timeout_ms)),
        ))
    })
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_connectionId(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) -> jlong {
    guard(&mut env, 0, |_| Ok(connection(raw)?.id() as jlong))
}

#[no_mangle]
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_connectionFree(
    _: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
) {
    // SAFETY: Kotlin frees each connection handle once, after every other call.
    let _ = catch_unwind(|| unsafe { free::<Connection>(raw) });
}

/// One command on a connection; whether it was still open. `op`: 1 text,
/// 2 binary (`data`), 3 ping (`data`), 4 close (`code`, `text`), 5 close
/// without TCP close, 6 drop, 7 reset, 8 reset mid-frame (`n` bytes),
/// 9 half-close, 10 oversize (`n`), 11 fragmented (`text`, `n` pieces),
/// 12 faults (`text`: JSON).
#[no_mangle]
#[allow(clippy::too_many_arguments)] // one JNI entry for every command
pub extern "system" fn Java_dev_tether_testkit_internal_TestkitNative_command(
    mut env: JNIEnv<'_>,
    _: JClass<'_>,
    raw: jlong,
    op: jint,
    code: jint,
    text: JString<'_>,
    data: JByteArray<'_>,
    n: jlong,
) -> jboolean {
    let done = guard(&mut env, false, |env| {
        let c = connection(raw)?;
        let text = string(env, &text)?;
        let data = if data.is_null() {
            Vec::new()
        } else {
            env.convert_byte_array(&data)?
        };
        let code = u16::try_from(code)
            .map_err(|_| invalid(format!("close code {code} is not 0..=65535")))?;
        let n = u64::try_from(n).map_err(|_| invalid(format!("{n} is below 0")))?;
        let count = usize::try_from(n.min(1 << 20)).unwrap_or(1 << 20);
        Ok(match op {
            1 => c.send_text(&text),
            2 => c.send_binary(&data),
            3 => c.ping(&data),
            4 => c.close(code, &text),
            5 => c.close_without_tcp_close(code, &text),
            6 => c.drop_connection(),
            7 => c.reset(),
            8 => c.reset_mid_frame(&vec![0; count]),
            9 => c.half_close(),
            10 => c.send_oversize(n),
            11 => c.send_fragmented(&text, count),
            12 => c.set_faults(Faults::from_json(&text).map_err(invalid)?),
            _ => return Err(invalid(format!("unknown command {op}"))),
        })
    });
    if done {
        JNI_TRUE
    } else {
        0
    }
}
