//! The C API of the test kit (`include/tether_testkit.h`, generated from
//! this module by cbindgen with testkit/cbindgen.toml).
//!
//! The only place of the kit with `unsafe`. Every function checks its
//! pointers, catches panics (`boundary::guard`), writes out-parameters
//! only on success and records failures for `wst_last_error`.
#![allow(non_camel_case_types)]
// Entry points for C: they check every pointer they can (NULL) and state
// the rest of the contract in their docs, as C functions do.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod boundary;
mod sio;
mod sse;

use std::ffi::{c_char, CString};

pub use boundary::wst_status;
use boundary::{
    bytes, check_out, guard, guard_void, hand_out, handle, required_str, timeout, write_out,
    Failure,
};
pub use sio::*;
pub use sse::{wst_sse_server, wst_sse_stream};

use crate::{Connection, Faults, Message, MessageKind, Network, Reply, Request, TestServer};

/// Major version of this header; checked against testkit/Cargo.toml.
pub const TETHER_TESTKIT_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const TETHER_TESTKIT_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const TETHER_TESTKIT_VERSION_PATCH: u32 = 0;

/// Kind of a message: `wst_connection_send` takes it, `wst_message_kind`
/// gives it (`wst_message_get_kind`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wst_message_kind {
    /// UTF-8 text.
    WST_TEXT = 1,
    /// Arbitrary bytes.
    WST_BINARY = 2,
}

/// A WebSocket test server on 127.0.0.1 with its own thread.
///
/// Opaque. Thread-safe: any thread may call any `wst_server_*` function
/// on it, while others wait in `wst_server_await_*`. Created by
/// `wst_server_start`, released by `wst_server_free`.
pub struct wst_server {
    server: TestServer,
    /// NUL-terminated copies for `wst_server_ca_pem` and `wst_server_pin_sha256`.
    ca_pem: Option<CString>,
    pin_sha256: Option<CString>,
}

impl wst_server {
    fn new(server: TestServer) -> wst_server {
        wst_server {
            ca_pem: server.ca_pem().map(c_string),
            pin_sha256: server.pin_sha256().map(c_string),
            server,
        }
    }
}

/// The server side of one WebSocket connection.
///
/// Opaque. Thread-safe. Got from `wst_server_await_connection`, released
/// by `wst_connection_free` (which does not end the connection). It stays
/// usable after its server is freed: every call then returns
/// `WST_ERR_CLOSED`.
pub struct wst_connection {
    connection: Connection,
}

/// One recorded handshake request.
///
/// Opaque, immutable, safe to read from any thread. Got from
/// `wst_server_await_request` (or `wst_sse_server_await_request`),
/// released by `wst_request_free`.
pub struct wst_request {
    connection: u64,
    path: CString,
    headers: Vec<(String, CString)>,
}

impl From<Request> for wst_request {
    fn from(request: Request) -> wst_request {
        wst_request {
            connection: request.connection,
            path: c_string(&request.path),
            headers: request
                .headers
                .into_iter()
                .map(|(k, v)| (k, c_string(&v)))
                .collect(),
        }
    }
}

/// One recorded message a client sent (fragments joined).
///
/// Opaque, immutable, safe to read from any thread. Got from
/// `wst_server_await_message`, released by `wst_message_free`.
pub struct wst_message {
    message: Message,
}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

fn done(ok: bool) -> Result<wst_status, Failure> {
    if ok {
        Ok(wst_status::WST_OK)
    } else {
        Err(Failure::closed("the connection is gone"))
    }
}

/// Starts a test server on a free port of 127.0.0.1. It echoes text and
/// binary messages, answers handshakes with the replies queued by
/// `wst_server_push_reply` (then accepts, with the first subprotocol the
/// client offers), answers Pings and Closes.
///
/// On success `*out` is the new server, owned by the caller (free it with
/// `wst_server_free`).
#[no_mangle]
pub extern "C" fn wst_server_start(out: *mut *mut wst_server) -> wst_status {
    guard(|| {
        check_out(out, "out")?;
        let server =
            TestServer::start().map_err(|e| Failure::internal(format!("cannot start: {e}")))?;
        let boxed = Box::into_raw(Box::new(wst_server::new(server)));
        // SAFETY: `out` is non-NULL (checked) and the caller gives a
        // writable `wst_server *`.
        unsafe { write_out(out, boxed) };
        Ok(wst_status::WST_OK)
    })
}

/// Starts a `wss://` test server, like `wst_server_start` but over TLS,
/// with a certificate for `localhost` and `127.0.0.1` signed by a CA made
/// now: clients trust it with `"tls": {"extra_ca_pem": <wst_server_ca_pem>}`
/// and connect to `wss://localhost:PORT/…`. Its replies may also be
/// `"tls_failure"` and `"other_key"` (see `wst_server_push_reply`).
#[no_mangle]
pub extern "C" fn wst_server_start_tls(out: *mut *mut wst_server) -> wst_status {
    guard(|| {
        check_out(out, "out")?;
        let server =
            TestServer::start_tls().map_err(|e| Failure::internal(format!("cannot start: {e}")))?;
        let boxed = Box::into_raw(Box::new(wst_server::new(server)));
        // SAFETY: `out` is non-NULL (checked) and the caller gives a
        // writable `wst_server *`.
        unsafe { write_out(out, boxed) };
        Ok(wst_status::WST_OK)
    })
}

/// A TLS server's CA certificate (PEM, NUL-terminated), for the client's
/// `tls.extra_ca_pem`; NULL for a `ws://` server or a NULL argument. Valid
/// until `wst_server_free`.
#[no_mangle]
pub extern "C" fn wst_server_ca_pem(server: *const wst_server) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { server.as_ref() }
        .and_then(|s| s.ca_pem.as_ref())
        .map_or(std::ptr::null(), |p| p.as_ptr())
}

/// base64(SHA-256(SubjectPublicKeyInfo)) of a TLS server's certificate
/// (NUL-terminated), for the client's `tls.pin_sha256`; NULL for a `ws://`
/// server or a NULL argument. Valid until `wst_server_free`.
#[no_mangle]
pub extern "C" fn wst_server_pin_sha256(server: *const wst_server) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { server.as_ref() }
        .and_then(|s| s.pin_sha256.as_ref())
        .map_or(std::ptr::null(), |p| p.as_ptr())
}

/// The server's port on 127.0.0.1 (`ws://127.0.0.1:PORT/…`), in `*out_port`.
#[no_mangle]
pub extern "C" fn wst_server_port(server: *const wst_server, out_port: *mut u16) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        check_out(out_port, "out_port")?;
        // SAFETY: non-NULL (checked), writable per the contract.
        unsafe { write_out(out_port, s.server.port()) };
        Ok(wst_status::WST_OK)
    })
}

/// Turns the echo of text and binary messages on (non-zero, the default)
/// or off (0).
#[no_mangle]
pub extern "C" fn wst_server_set_echo(server: *const wst_server, echo: u8) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        s.server.set_echo(echo != 0);
        Ok(wst_status::WST_OK)
    })
}

/// Queues the answer to a coming handshake; each new connection takes the
/// next one; once the queue is empty, connections are accepted with the
/// first subprotocol the client offers. `reply_json` (UTF-8,
/// NUL-terminated, read during the call) is one of:
/// `{"accept": {"subprotocol": "chat", "headers": {"X-A": "1"}}}`,
/// `{"refuse": {"status": 503, "headers": {"Retry-After": "1"}, "body": ""}}`,
/// `"reset"` (RST after the request), `"silence"` (never answers),
/// `{"slow_headers": {"gap_ms": 20}}` (the 101 byte by byte), and on
/// servers from `wst_server_start_tls`: `"tls_failure"` (a fatal TLS alert
/// instead of the TLS handshake), `"other_key"` (a certificate of the same
/// CA with another key: a pin on `wst_server_pin_sha256` fails).
/// `WST_ERR_INVALID_ARGUMENT` for anything else (nothing queued).
#[no_mangle]
pub extern "C" fn wst_server_push_reply(
    server: *const wst_server,
    reply_json: *const c_char,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let json = unsafe { required_str(reply_json, "reply_json") }?;
        let reply = Reply::from_json(json).map_err(Failure::invalid)?;
        s.server.push_reply(reply).map_err(Failure::invalid)?;
        Ok(wst_status::WST_OK)
    })
}

/// Replaces the network conditions of every connection, current and new:
/// `{"latency_ms": 200, "bandwidth_bytes_per_s": 10000, "cut": true}`;
/// missing keys are off, so `"{}"` lifts every condition. A cut holds every
/// byte both ways (nothing closes); lifting it delivers them in order.
#[no_mangle]
pub extern "C" fn wst_server_set_network(
    server: *const wst_server,
    network_json: *const c_char,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let json = unsafe { required_str(network_json, "network_json") }?;
        s.server
            .set_network(Network::from_json(json).map_err(Failure::invalid)?);
        Ok(wst_status::WST_OK)
    })
}

/// Like a server restart: kills every connection (no Close frame), closes
/// the listener and binds the same port again before returning.
#[no_mangle]
pub extern "C" fn wst_server_restart(server: *const wst_server) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        s.server.restart().map_err(Failure::internal)?;
        Ok(wst_status::WST_OK)
    })
}

/// Kills every connection (no Close frame) and keeps listening.
#[no_mangle]
pub extern "C" fn wst_server_kill_connections(server: *const wst_server) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        s.server.kill_connections().map_err(Failure::internal)?;
        Ok(wst_status::WST_OK)
    })
}

/// Takes the next recorded handshake request nobody has taken, waiting at
/// most `timeout_ms` (-1: without limit) for one. `WST_TIMEOUT` if none
/// came. On `WST_OK`, `*out` is owned by the caller (`wst_request_free`).
#[no_mangle]
pub extern "C" fn wst_server_await_request(
    server: *const wst_server,
    timeout_ms: i32,
    out: *mut *mut wst_request,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        check_out(out, "out")?;
        let found = s.server.await_request(timeout(timeout_ms)?);
        // SAFETY: non-NULL (checked), writable per the contract.
        Ok(unsafe { hand_out(out, found.map(wst_request::from)) })
    })
}

/// The request target (e.g. `/chat?room=1`), NUL-terminated; NULL if
/// `request` is NULL. Valid until `wst_request_free`.
#[no_mangle]
pub extern "C" fn wst_request_path(request: *const wst_request) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    match unsafe { request.as_ref() } {
        Some(r) => r.path.as_ptr(),
        None => std::ptr::null(),
    }
}

/// The first value of header `name` (case-insensitive), NUL-terminated;
/// NULL if the request has none (or an argument is NULL or not UTF-8).
/// Valid until `wst_request_free`.
#[no_mangle]
pub extern "C" fn wst_request_header(
    request: *const wst_request,
    name: *const c_char,
) -> *const c_char {
    let mut found = std::ptr::null();
    guard_void(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let Ok(r) = (unsafe { handle(request, "request") }) else {
            return;
        };
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let Ok(name) = (unsafe { required_str(name, "name") }) else {
            return;
        };
        if let Some((_, value)) = r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            found = value.as_ptr();
        }
    });
    found
}

/// The id of the connection the request came on (from 1, in accept
/// order; the same as `wst_connection_id`); 0 if `request` is NULL.
#[no_mangle]
pub extern "C" fn wst_request_connection(request: *const wst_request) -> u64 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { request.as_ref() }.map_or(0, |r| r.connection)
}

/// Releases a request. Calling with NULL is fine. Must not be called twice.
#[no_mangle]
pub extern "C" fn wst_request_free(request: *mut wst_request) {
    if !request.is_null() {
        // SAFETY: a handle from `wst_server_await_request`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(request) }));
    }
}

/// Takes the next message a client sent that nobody has taken, waiting at
/// most `timeout_ms` (-1: without limit). `WST_TIMEOUT` if none came. On
/// `WST_OK`, `*out` is owned by the caller (`wst_message_free`).
#[no_mangle]
pub extern "C" fn wst_server_await_message(
    server: *const wst_server,
    timeout_ms: i32,
    out: *mut *mut wst_message,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        check_out(out, "out")?;
        let found = s.server.await_message(timeout(timeout_ms)?);
        // SAFETY: non-NULL (checked), writable per the contract.
        Ok(unsafe { hand_out(out, found.map(|message| wst_message { message })) })
    })
}

/// `WST_TEXT` or `WST_BINARY` (`WST_BINARY` if `message` is NULL).
#[no_mangle]
pub extern "C" fn wst_message_get_kind(message: *const wst_message) -> wst_message_kind {
    // SAFETY: a live handle or NULL, per this function's contract.
    match unsafe { message.as_ref() }.map(|m| m.message.kind) {
        Some(MessageKind::Text) => wst_message_kind::WST_TEXT,
        _ => wst_message_kind::WST_BINARY,
    }
}

/// The message's bytes (text is UTF-8, not NUL-terminated), their count in
/// `*out_len`. Valid until `wst_message_free`. NULL (and no length
/// written) if an argument is NULL; an empty message gives a non-NULL
/// pointer and 0.
#[no_mangle]
pub extern "C" fn wst_message_data(message: *const wst_message, out_len: *mut usize) -> *const u8 {
    // SAFETY: a live handle or NULL, per this function's contract.
    let Some(m) = (unsafe { message.as_ref() }) else {
        return std::ptr::null();
    };
    if out_len.is_null() {
        return std::ptr::null();
    }
    // SAFETY: non-NULL (checked), writable per the contract.
    unsafe { write_out(out_len, m.message.data.len()) };
    let data = &m.message.data;
    if data.is_empty() {
        std::ptr::NonNull::<u8>::dangling().as_ptr()
    } else {
        data.as_ptr()
    }
}

/// The id of the connection the message came on; 0 if `message` is NULL.
#[no_mangle]
pub extern "C" fn wst_message_connection(message: *const wst_message) -> u64 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { message.as_ref() }.map_or(0, |m| m.message.connection)
}

/// Releases a message. Calling with NULL is fine. Must not be called twice.
#[no_mangle]
pub extern "C" fn wst_message_free(message: *mut wst_message) {
    if !message.is_null() {
        // SAFETY: a handle from `wst_server_await_message`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(message) }));
    }
}

/// Takes the next accepted WebSocket connection nobody has taken, waiting
/// at most `timeout_ms` (-1: without limit). `WST_TIMEOUT` if none came.
/// On `WST_OK`, `*out` is owned by the caller (`wst_connection_free`).
#[no_mangle]
pub extern "C" fn wst_server_await_connection(
    server: *const wst_server,
    timeout_ms: i32,
    out: *mut *mut wst_connection,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        check_out(out, "out")?;
        let found = s.server.await_connection(timeout(timeout_ms)?);
        // SAFETY: non-NULL (checked), writable per the contract.
        Ok(unsafe { hand_out(out, found.map(|connection| wst_connection { connection })) })
    })
}

/// The connection's id (from 1, in accept order); 0 if NULL.
#[no_mangle]
pub extern "C" fn wst_connection_id(connection: *const wst_connection) -> u64 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { connection.as_ref() }.map_or(0, |c| c.connection.id())
}

/// Runs `act` on the connection behind a handle.
fn on_connection(
    connection: *const wst_connection,
    act: impl FnOnce(&Connection) -> Result<wst_status, Failure>,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per the calling function's contract.
        let c = unsafe { handle(connection, "connection") }?;
        act(&c.connection)
    })
}

/// Sends a message of `kind` (`WST_TEXT`: `data` must be UTF-8). `data`
/// (`len` bytes, NULL if 0) is copied during the call. `WST_ERR_CLOSED` if
/// the connection is gone. Like every command, it is queued in order with
/// the others and the connection's answers, and returns at once.
#[no_mangle]
pub extern "C" fn wst_connection_send(
    connection: *const wst_connection,
    kind: i32,
    data: *const u8,
    len: usize,
) -> wst_status {
    on_connection(connection, |c| {
        // SAFETY: NULL or `len` readable bytes, per the contract.
        let data = unsafe { bytes(data, len, "data") }?;
        match kind {
            1 => {
                let text =
                    std::str::from_utf8(data).map_err(|_| Failure::invalid("text is not UTF-8"))?;
                done(c.send_text(text))
            }
            2 => done(c.send_binary(data)),
            _ => Err(Failure::invalid(format!(
                "kind {kind} is neither WST_TEXT nor WST_BINARY"
            ))),
        }
    })
}

/// Sends a Ping with `len` bytes of payload (at most 125 are sent).
#[no_mangle]
pub extern "C" fn wst_connection_ping(
    connection: *const wst_connection,
    data: *const u8,
    len: usize,
) -> wst_status {
    on_connection(connection, |c| {
        // SAFETY: NULL or `len` readable bytes, per the contract.
        let data = unsafe { bytes(data, len, "data") }?;
        done(c.ping(data))
    })
}

/// Starts the close handshake with any `code` (even one a server must not
/// send) and `reason` (UTF-8, NUL-terminated; NULL for none); the
/// connection ends once the client answered, or after 10 s.
#[no_mangle]
pub extern "C" fn wst_connection_close(
    connection: *const wst_connection,
    code: u16,
    reason: *const c_char,
) -> wst_status {
    on_connection(connection, |c| {
        let reason = match reason.is_null() {
            true => "",
            // SAFETY: a NUL-terminated string, per the contract.
            false => unsafe { required_str(reason, "reason") }?,
        };
        done(c.close(code, reason))
    })
}

/// Sends a Close frame (`code`, `reason` as for `wst_connection_close`),
/// then ignores the client and keeps TCP open until the client hangs up.
#[no_mangle]
pub extern "C" fn wst_connection_close_without_tcp_close(
    connection: *const wst_connection,
    code: u16,
    reason: *const c_char,
) -> wst_status {
    on_connection(connection, |c| {
        let reason = match reason.is_null() {
            true => "",
            // SAFETY: a NUL-terminated string, per the contract.
            false => unsafe { required_str(reason, "reason") }?,
        };
        done(c.close_without_tcp_close(code, reason))
    })
}

/// Hangs up without a close handshake (a FIN once queued bytes are out).
#[no_mangle]
pub extern "C" fn wst_connection_drop(connection: *const wst_connection) -> wst_status {
    on_connection(connection, |c| done(c.drop_connection()))
}

/// Resets the connection (RST) once queued bytes are out.
#[no_mangle]
pub extern "C" fn wst_connection_reset(connection: *const wst_connection) -> wst_status {
    on_connection(connection, |c| done(c.reset()))
}

/// Writes the first half of a binary frame of `len` zero bytes, then resets.
#[no_mangle]
pub extern "C" fn wst_connection_reset_mid_frame(
    connection: *const wst_connection,
    len: usize,
) -> wst_status {
    on_connection(connection, |c| {
        done(c.reset_mid_frame(&vec![0; len.min(1 << 20)]))
    })
}

/// Shuts the server's write side (FIN) and keeps reading.
#[no_mangle]
pub extern "C" fn wst_connection_half_close(connection: *const wst_connection) -> wst_status {
    on_connection(connection, |c| done(c.half_close()))
}

/// Sends a binary frame announcing `len` bytes (and up to 1 MiB of them).
#[no_mangle]
pub extern "C" fn wst_connection_send_oversize(
    connection: *const wst_connection,
    len: u64,
) -> wst_status {
    on_connection(connection, |c| done(c.send_oversize(len)))
}

/// Sends `text` (UTF-8, NUL-terminated) as a message of `pieces` frames.
#[no_mangle]
pub extern "C" fn wst_connection_send_fragmented(
    connection: *const wst_connection,
    text: *const c_char,
    pieces: usize,
) -> wst_status {
    on_connection(connection, |c| {
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let text = unsafe { required_str(text, "text") }?;
        done(c.send_fragmented(text, pieces))
    })
}

/// Replaces the connection's faults: `{"black_hole": true}` (nothing moves
/// either way, nothing closes), `{"stall": true}` (the server stops
/// reading: no echo, no Pong), `{"drop_pongs": true}`, `{"delay_ms": 100}`
/// (each frame the server writes goes out that much later); missing keys
/// are off, so `"{}"` lifts them all and held bytes flow again in order.
#[no_mangle]
pub extern "C" fn wst_connection_set_faults(
    connection: *const wst_connection,
    faults_json: *const c_char,
) -> wst_status {
    on_connection(connection, |c| {
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let json = unsafe { required_str(faults_json, "faults_json") }?;
        done(c.set_faults(Faults::from_json(json).map_err(Failure::invalid)?))
    })
}

/// Releases the handle; the connection itself goes on. Calling with NULL
/// is fine. Must not be called twice, nor while another call on the
/// handle runs.
#[no_mangle]
pub extern "C" fn wst_connection_free(connection: *mut wst_connection) {
    if !connection.is_null() {
        // SAFETY: a handle from `wst_server_await_connection`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(connection) }));
    }
}

/// Stops the server: kills every connection, joins its thread. Calling with
/// NULL is fine. Must not be called twice, and only after every other call
/// on this server has returned (a thread blocked in `wst_server_await_*`
/// must have come back).
#[no_mangle]
pub extern "C" fn wst_server_free(server: *mut wst_server) {
    if !server.is_null() {
        // SAFETY: a handle from `wst_server_start`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(server) }));
    }
}

/// This thread's last failure message (NUL-terminated UTF-8), or NULL if no
/// `wst_*` call failed on this thread. Valid until the next failing call on
/// this thread. Separate from tether.h's `ws_last_error`.
#[no_mangle]
pub extern "C" fn wst_last_error() -> *const c_char {
    boundary::last_error()
}
