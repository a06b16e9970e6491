//! JNI exports for the Kotlin binding (`kotlin-multiplatform/`, jvmMain):
//! the native methods of `dev.tether.internal.NativeBridge`.
//!
//! They call the same core as the C ABI ([`Client`]), not the C functions.
//! Every export runs inside [`boundary::guard`]: an error or a panic is
//! thrown as `dev.tether.internal.NativeException(status, message)` with
//! the `ws_status` numbering; nothing unwinds into the JVM.
//!
//! A client handle is a `jlong` pointing to a boxed [`handle::Handle`]
//! (the client and the event a batch could not fit). `free` releases it
//! exactly once; Kotlin's `NativeHandle` counts calls in flight so that
//! `free` never runs under another call, and a `Cleaner` frees what the app
//! forgot.
//!
//! Events cross in batches (`pollBatch`): as many as fit are encoded (see
//! [`wire`]) into a direct `ByteBuffer` the poller reuses, one JNI call per
//! batch and no Java allocation in Rust. A payload larger than the buffer
//! is fetched with `takePending` as one `byte[]`, copied once. `pollOne`
//! (one event, payload as a fresh `byte[]`) is the simpler crossing, kept
//! so that the Kotlin benchmark can compare the two.

mod boundary;
mod handle;
mod poll_set;
mod session;
mod sio;
mod sse;
mod wire;

use ::jni::objects::{JByteArray, JByteBuffer, JClass, JLongArray, JString, ReleaseMode};
use ::jni::sys::{jboolean, jbyteArray, jint, jlong, jstring, JNI_FALSE};
use ::jni::JNIEnv;
use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use crate::client::Client;
use crate::error::{ws_status, Error};
use crate::options::Options;
use boundary::{guard, Failure};
use handle::Handle;

/// `sendText`/`sendBinary`: queued.
const SENT: jint = ws_status::WS_OK as jint;

/// Reads a Java string argument; `None` for null.
fn optional_string(env: &mut JNIEnv<'_>, s: &JString<'_>) -> Result<Option<String>, Failure> {
    if s.is_null() {
        return Ok(None);
    }
    Ok(Some(env.get_string(s)?.into()))
}

fn required_string(
    env: &mut JNIEnv<'_>,
    s: &JString<'_>,
    what: &'static str,
) -> Result<String, Failure> {
    optional_string(env, s)?.ok_or(Failure::Core(Error::NullArgument(what)))
}

/// Opens a client for `url` with `optionsJson` (null: defaults) and starts
/// connecting. Returns the handle (never 0); throws on a bad URL or options.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_connect<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    url: JString<'l>,
    options_json: JString<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        let url = required_string(env, &url, "url")?;
        let options = Options::parse_json(optional_string(env, &options_json)?.as_deref())?;
        if options.max_message_bytes > i32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "options: max_message_bytes {} is above what a JVM array holds ({})",
                options.max_message_bytes,
                i32::MAX
            ))
            .into());
        }
        Ok(Handle::new(Client::connect(&url, options)?).into_raw())
    })
}

/// Releases a handle (0 is ignored). Called once, with no call in flight.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_free<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    guard(&mut env, (), |_| {
        // SAFETY: NativeHandle calls free once, after every other call on
        // this handle has returned (its in-flight counter reached zero).
        unsafe { Handle::free(handle) };
        Ok(())
    })
}

/// Fills the direct `buffer` (from position 0) with a batch of events,
/// waiting up to `timeoutMs` (-1: forever) for the first. Returns the bytes
/// written; 0 when nothing came in time. Throws `CLOSED` once the last
/// event (TERMINATED) has been returned.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollBatch<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    timeout_ms: jint,
    buffer: JByteBuffer<'l>,
) -> jint {
    guard(&mut env, 0, |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let timeout = handle::timeout(timeout_ms)?;
        let address = env.get_direct_buffer_address(&buffer)?;
        let capacity = env
            .get_direct_buffer_capacity(&buffer)?
            .min(i32::MAX as usize);
        // SAFETY: a direct buffer's memory is `capacity` bytes at `address`
        // and stays put while Kotlin holds the buffer, which it does for the
        // whole call (it is an argument). Only this poller writes it.
        let out = unsafe { std::slice::from_raw_parts_mut(address, capacity) };
        let written = handle.poll_batch(timeout, out)?;
        Ok(written as jint)
    })
}

/// The payload of the event whose header `pollBatch` flagged pending, as
/// one new `byte[]` (copied once).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_takePending<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let array = handle.take_pending(|bytes| env.byte_array_from_slice(bytes))??;
        Ok(array.into_raw())
    })
}

/// One event: fills `fields` with kind, state, close code, error code or
/// attempt, delay in ms, and returns the payload as a new `byte[]` (null
/// when the event has none). On timeout, `fields[0]` is -1.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pollOne<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    timeout_ms: jint,
    fields: JLongArray<'l>,
) -> jbyteArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let Some(event) = handle.poll_one(handle::timeout(timeout_ms)?)? else {
            env.set_long_array_region(&fields, 0, &[-1])?;
            return Ok(std::ptr::null_mut());
        };
        let (kind, state, close_code, code, delay) = wire::fields(&event);
        env.set_long_array_region(
            &fields,
            0,
            &[
                kind.into(),
                state.into(),
                close_code.into(),
                code.into(),
                delay,
            ],
        )?;
        let payload = wire::payload(&event);
        if payload.is_empty() && !matches!(event, crate::Event::Text(_) | crate::Event::Binary(_)) {
            return Ok(std::ptr::null_mut());
        }
        Ok(env.byte_array_from_slice(&payload)?.into_raw())
    })
}

/// Reads `data[offset, offset + length)` without copying it out of the
/// JVM, and hands it to `f` (which copies what it keeps).
fn with_bytes<R>(
    env: &mut JNIEnv<'_>,
    data: &JByteArray<'_>,
    offset: jint,
    length: jint,
    f: impl FnOnce(&[u8]) -> Result<R, Error>,
) -> Result<R, Failure> {
    if data.is_null() {
        return Err(Error::NullArgument("data").into());
    }
    let size = env.get_array_length(data)?;
    if offset < 0 || length < 0 || offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(Error::InvalidArgument(format!(
            "offset {offset} and length {length} are outside an array of {size} bytes"
        ))
        .into());
    }
    // SAFETY: `f` makes no JNI call while the critical section is held
    // (it only copies the bytes into the client's queue).
    let elements = unsafe { env.get_array_elements_critical(data, ReleaseMode::NoCopyBack)? };
    let all: &[i8] = &elements;
    // SAFETY: i8 and u8 have the same size and alignment; the range was
    // checked against the array length above.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            all.as_ptr().add(offset as usize).cast::<u8>(),
            length as usize,
        )
    };
    let result = f(bytes);
    drop(elements);
    Ok(result?)
}

/// The status of a send: `SENT`, or -3 (QUEUE_FULL) when the outgoing queue
/// is at its limit (nothing taken). Other failures throw.
fn send_status(result: Result<(), Error>) -> Result<jint, Failure> {
    match result {
        Ok(()) => Ok(SENT),
        Err(full @ Error::QueueFull(_)) => Ok(full.status()),
        Err(other) => Err(other.into()),
    }
}

/// The bytes of a text message, checked to be UTF-8.
fn utf8_text(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::InvalidArgument(format!(
            "text message is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// Queues `utf8[offset, offset + length)` as a text message (checked to be
/// UTF-8). Returns 0 (queued) or -3 (queue full, nothing taken).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_sendText<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    utf8: JByteArray<'l>,
    offset: jint,
    length: jint,
) -> jint {
    guard(&mut env, 0, |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let result = with_bytes(env, &utf8, offset, length, |bytes| {
            Ok(handle.client.send_text(utf8_text(bytes)?))
        })?;
        send_status(result)
    })
}

/// Queues `data[offset, offset + length)` as a binary message. Returns 0
/// (queued) or -3 (queue full, nothing taken).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_sendBinary<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    data: JByteArray<'l>,
    offset: jint,
    length: jint,
) -> jint {
    guard(&mut env, 0, |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let result = with_bytes(env, &data, offset, length, |bytes| {
            Ok(handle.client.send_binary(bytes))
        })?;
        send_status(result)
    })
}

/// The address of a direct `ByteBuffer`'s memory, asked once per buffer by
/// the Kotlin side for `sendDirect`.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_directAddress<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    buffer: JByteBuffer<'l>,
) -> jlong {
    guard(&mut env, 0, |env| {
        Ok(env.get_direct_buffer_address(&buffer)? as jlong)
    })
}

/// The `length` bytes at `address`, where a small message waits in a
/// direct buffer: read with no JNI callback (a Java array costs three:
/// its length, and the critical section's start and end).
///
/// # Safety
/// `address` is what `directAddress` gave for a direct buffer that the
/// caller holds for the whole call (it is an argument of the export), and
/// `length` is at most that buffer's capacity: the Kotlin caller
/// (`SendBuffer` in JniBinding.kt) writes the message there first.
unsafe fn direct_bytes<'a>(address: jlong, length: jint) -> Result<&'a [u8], Error> {
    if address == 0 {
        return Err(Error::NullArgument("address"));
    }
    let length = usize::try_from(length)
        .map_err(|_| Error::InvalidArgument(format!("length {length} is negative")))?;
    // SAFETY: `length` bytes at `address` lie in a live direct buffer
    // that nothing writes during the call (this function's contract).
    Ok(unsafe { std::slice::from_raw_parts(address as *const u8, length) })
}

/// Queues the `length` bytes at `address` (in the direct `buffer`, see
/// `direct_bytes`) as a text message (`text`, checked to be UTF-8) or a
/// binary one. Returns 0 (queued) or -3 (queue full, nothing taken).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_sendDirect<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    _buffer: JByteBuffer<'l>,
    address: jlong,
    length: jint,
    text: jboolean,
) -> jint {
    guard(&mut env, 0, |_| {
        // SAFETY: the in-flight counter keeps the handle alive for this
        // call; the buffer is an argument, held by the caller, and the
        // caller wrote `length` bytes at its start (`direct_bytes`).
        let (handle, bytes) =
            unsafe { (Handle::from_raw(handle)?, direct_bytes(address, length)?) };
        let sent = if text != 0 {
            handle.client.send_text(utf8_text(bytes)?)
        } else {
            handle.client.send_binary(bytes)
        };
        send_status(sent)
    })
}

/// The result of a tracked send: the message's id (≥ 1: ids start at 1 and
/// are SQLite rowids, so they fit a `jlong`), or -3 (QUEUE_FULL) when the
/// outbox is at its limit (nothing taken). Other failures throw.
fn tracked_status(result: Result<u64, Error>) -> Result<jlong, Failure> {
    match result {
        Ok(id) => Ok(jlong::try_from(id)
            .map_err(|_| Error::Internal(format!("outbox id {id} does not fit a jlong")))?),
        Err(full @ Error::QueueFull(_)) => Ok(full.status().into()),
        Err(other) => Err(other.into()),
    }
}

/// Stores `utf8[offset, offset + length)` as a tracked text message in the
/// outbox (see `ws_send_tracked`): it stays until `ack`. Returns its id, or
/// -3 (outbox full, nothing taken).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_sendTrackedText<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    utf8: JByteArray<'l>,
    offset: jint,
    length: jint,
) -> jlong {
    guard(&mut env, 0, |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let result = with_bytes(env, &utf8, offset, length, |bytes| {
            let text = Message::Text(Utf8Bytes::from(utf8_text(bytes)?));
            Ok(handle.client.send_tracked(text))
        })?;
        tracked_status(result)
    })
}

/// Stores `data[offset, offset + length)` as a tracked binary message.
/// Returns its id, or -3 (outbox full, nothing taken).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_sendTrackedBinary<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    data: JByteArray<'l>,
    offset: jint,
    length: jint,
) -> jlong {
    guard(&mut env, 0, |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let result = with_bytes(env, &data, offset, length, |bytes| {
            let binary = Message::Binary(Bytes::copy_from_slice(bytes));
            Ok(handle.client.send_tracked(binary))
        })?;
        tracked_status(result)
    })
}

/// Starts the close handshake (see `ws_close`); the events then drain to
/// TERMINATED, which wakes the poller.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_close<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    code: jint,
    reason: JString<'l>,
) {
    guard(&mut env, (), |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let code = u16::try_from(code)
            .map_err(|_| Error::InvalidArgument(format!("close code {code} is out of range")))?;
        let reason = optional_string(env, &reason)?;
        Ok(handle.client.close(code, reason.as_deref().unwrap_or(""))?)
    })
}

/// Runs `f` on the client behind `handle` and returns its value, throwing
/// its error (Kotlin then never sees `fallback`).
fn with_client<R>(
    env: &mut JNIEnv<'_>,
    handle: jlong,
    fallback: R,
    f: impl FnOnce(&Client) -> Result<R, Error>,
) -> R {
    guard(env, fallback, |_| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        Ok(f(&handle.client)?)
    })
}

/// Runs `f` on the client behind `handle`, throwing its error.
fn on_client(env: &mut JNIEnv<'_>, handle: jlong, f: impl FnOnce(&Client) -> Result<(), Error>) {
    with_client(env, handle, (), f)
}

/// A Kotlin `Long` outbox id as the core's; outbox ids start at 1.
fn outbox_id(id: jlong) -> Result<u64, Error> {
    u64::try_from(id).map_err(|_| {
        Error::InvalidArgument(format!("no message with id {id} is pending in the outbox"))
    })
}

/// A count for Kotlin, saturating at `Long.MAX_VALUE`.
fn long(v: u64) -> jlong {
    jlong::try_from(v).unwrap_or(jlong::MAX)
}

/// The server confirmed the tracked message `id` (see `ws_ack`); an id
/// that is not pending throws INVALID_ARGUMENT.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_ack<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    id: jlong,
) {
    on_client(&mut env, handle, |client| client.ack(outbox_id(id)?))
}

/// Messages in the outbox (see `ws_outbox_pending`): not yet proven read
/// by the server, or tracked and not acked.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_outboxPending<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) -> jlong {
    with_client(&mut env, handle, 0, |client| {
        Ok(long(client.outbox_pending()?))
    })
}

/// The app went to the background (see `Client::pause`).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_pause<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    on_client(&mut env, handle, Client::pause)
}

/// Ends a pause or a backoff wait: connect now (see `Client::resume`).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_resume<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    on_client(&mut env, handle, Client::resume)
}

/// Network hint from the OS (see `Client::network_changed`).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_networkChanged<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    available: jboolean,
) {
    on_client(&mut env, handle, |client| {
        client.network_changed(available != JNI_FALSE)
    })
}

/// Drops the current connection and connects again now.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_reconnect<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    on_client(&mut env, handle, Client::reconnect)
}

/// Lets a held backlog go out (`"queue": {"flush": "manual"}`).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_flush<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
) {
    on_client(&mut env, handle, Client::flush)
}

/// Sets (`value` non-null) or removes a header of the next handshakes.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_setHeader<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    name: JString<'l>,
    value: JString<'l>,
) {
    guard(&mut env, (), |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let name = required_string(env, &name, "name")?;
        let value = optional_string(env, &value)?;
        Ok(handle.client.set_header(&name, value.as_deref())?)
    })
}

/// Fills `out` (at least 10 longs) with: queued messages, queued bytes,
/// reconnects, last RTT in µs (0: none yet), bytes in, bytes out, messages
/// in, messages out, dropped messages, unpolled bytes.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_stats<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    handle: jlong,
    out: JLongArray<'l>,
) {
    guard(&mut env, (), |env| {
        // SAFETY: the in-flight counter keeps the handle alive for this call.
        let handle = unsafe { Handle::from_raw(handle)? };
        let s = handle.client.stats();
        let rtt = s
            .last_rtt
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        env.set_long_array_region(
            &out,
            0,
            &[
                long(s.queued_messages),
                long(s.queued_bytes),
                long(s.reconnects),
                long(rtt),
                long(s.bytes_in),
                long(s.bytes_out),
                long(s.messages_in),
                long(s.messages_out),
                long(s.dropped_messages),
                long(s.unpolled_bytes),
            ],
        )?;
        Ok(())
    })
}

/// Clients alive in this process (created and not yet freed): the leak
/// check of the Kotlin tests.
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_liveCount<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jlong {
    guard(&mut env, 0, |_| {
        Ok(jlong::try_from(Client::live_count()).unwrap_or(jlong::MAX))
    })
}

/// The library version (Cargo.toml).
#[no_mangle]
pub extern "system" fn Java_dev_tether_internal_NativeBridge_version<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jstring {
    guard(&mut env, std::ptr::null_mut(), |env| {
        Ok(env.new_string(crate::VERSION)?.into_raw())
    })
}
