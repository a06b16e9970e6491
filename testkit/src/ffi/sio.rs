//! The C API of the kit's Socket.IO server (`wst_sio_*`): the same
//! conventions as the WebSocket server's (statuses, `wst_last_error`,
//! out-parameters written only on success, every handle freed once).

use std::ffi::{c_char, CString};
use std::sync::OnceLock;

use serde_json::Value;

use super::boundary::{
    bytes, check_out, guard, guard_void, hand_out, handle, required_str, timeout, write_out,
    Failure,
};
use super::{c_string, done, wst_status};
use crate::{
    ConnectReply, NamespaceConnect, Network, PendingAck, ReceivedEvent, ServerSocket, SioTransport,
    SocketIoConfig, SocketIoTestServer,
};

/// An Engine.IO transport, as `wst_sio_socket_transport` gives it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum wst_sio_transport {
    /// HTTP long-polling.
    WST_SIO_POLLING = 1,
    /// WebSocket (from the start, or upgraded from polling).
    WST_SIO_WEBSOCKET = 2,
}

/// A Socket.IO (Engine.IO v4 + Socket.IO v5) test server on 127.0.0.1
/// with its own thread.
///
/// Opaque. Thread-safe: any thread may call any `wst_sio_server_*`
/// function on it, while others wait in `wst_sio_server_await_*`. Created
/// by `wst_sio_server_start`, released by `wst_sio_server_free`.
pub struct wst_sio_server {
    server: SocketIoTestServer,
}

/// One namespace CONNECT a client sent, and how it was answered.
///
/// Opaque, immutable, safe to read from any thread. Got from
/// `wst_sio_server_await_connect`, released by `wst_sio_connect_free`.
pub struct wst_sio_connect {
    connect: NamespaceConnect,
    nsp: CString,
    auth: Option<CString>,
}

/// One event a client emitted.
///
/// Opaque, immutable, safe to read from any thread. Got from
/// `wst_sio_server_await_event`, released by `wst_sio_event_free`.
pub struct wst_sio_event {
    event: ReceivedEvent,
    nsp: CString,
    name: CString,
    args: CString,
}

/// The server side of one client socket (a namespace joined on one
/// Engine.IO session).
///
/// Opaque. Thread-safe. Got from `wst_sio_server_await_socket`, released
/// by `wst_sio_socket_free` (which does not disconnect it). It stays
/// usable after its server is freed: commands then return
/// `WST_ERR_CLOSED`.
pub struct wst_sio_socket {
    socket: ServerSocket,
    nsp: CString,
    id: CString,
}

/// A server emit waiting for the client's ack.
///
/// Opaque. One thread at a time. Got from `wst_sio_socket_emit_with_ack`,
/// released by `wst_sio_ack_free`.
pub struct wst_sio_ack {
    pending: PendingAck,
    answer: OnceLock<CString>,
}

fn server<'a>(server: *const wst_sio_server) -> Result<&'a SocketIoTestServer, Failure> {
    // SAFETY: a live handle or NULL, per the calling function's contract.
    unsafe { handle(server, "server") }.map(|s| &s.server)
}

/// The JSON array `args_json` (NULL: no arguments).
fn args(args_json: *const c_char) -> Result<Vec<Value>, Failure> {
    if args_json.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: a NUL-terminated string, per the calling function's contract.
    let text = unsafe { required_str(args_json, "args_json") }?;
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => Ok(items),
        Ok(_) => Err(Failure::invalid("args_json must be a JSON array")),
        Err(e) => Err(Failure::invalid(format!("args_json is not JSON: {e}"))),
    }
}

fn event_name<'a>(event: *const c_char) -> Result<&'a str, Failure> {
    // SAFETY: NULL or a NUL-terminated string, per the calling function's contract.
    let name = unsafe { required_str(event, "event") }?;
    if name.is_empty() {
        return Err(Failure::invalid("event is empty"));
    }
    Ok(name)
}

/// Starts a Socket.IO test server on a free port of 127.0.0.1; clients
/// connect to `http://127.0.0.1:PORT` (path `/socket.io/`). `config_json`
/// (UTF-8, NUL-terminated, read during the call; NULL for the defaults):
/// `{"transports": ["polling", "websocket"], "ping_interval_ms": 1000,
/// "ping_timeout_ms": 1000, "max_payload": 1000000, "path": "/socket.io/",
/// "echo": true}` (missing keys keep these defaults). Echo on: every event
/// is emitted back, and one asking for an ack is answered with its
/// arguments. CONNECTs are accepted unless `wst_sio_server_push_connect_reply`
/// queued otherwise.
///
/// On success `*out` is the new server, owned by the caller (free it with
/// `wst_sio_server_free`).
#[no_mangle]
pub extern "C" fn wst_sio_server_start(
    config_json: *const c_char,
    out: *mut *mut wst_sio_server,
) -> wst_status {
    guard(|| {
        check_out(out, "out")?;
        let config = if config_json.is_null() {
            SocketIoConfig::default()
        } else {
            // SAFETY: a NUL-terminated string, per the contract.
            let json = unsafe { required_str(config_json, "config_json") }?;
            SocketIoConfig::from_json(json).map_err(Failure::invalid)?
        };
        let server = SocketIoTestServer::start_with(config)
            .map_err(|e| Failure::internal(format!("cannot start: {e}")))?;
        let boxed = Box::into_raw(Box::new(wst_sio_server { server }));
        // SAFETY: `out` is non-NULL (checked) and the caller gives a
        // writable `wst_sio_server *`.
        unsafe { write_out(out, boxed) };
        Ok(wst_status::WST_OK)
    })
}

/// The server's port on 127.0.0.1, in `*out_port`.
#[no_mangle]
pub extern "C" fn wst_sio_server_port(
    server: *const wst_sio_server,
    out_port: *mut u16,
) -> wst_status {
    guard(|| {
        let s = self::server(server)?;
        check_out(out_port, "out_port")?;
        // SAFETY: non-NULL (checked), writable per the contract.
        unsafe { write_out(out_port, s.port()) };
        Ok(wst_status::WST_OK)
    })
}

/// Turns the echo of events and acks on (non-zero, the default) or off (0).
#[no_mangle]
pub extern "C" fn wst_sio_server_set_echo(server: *const wst_sio_server, echo: u8) -> wst_status {
    guard(|| {
        self::server(server)?.set_echo(echo != 0);
        Ok(wst_status::WST_OK)
    })
}

/// Queues the answer to a coming CONNECT of namespace `nsp` (UTF-8,
/// NUL-terminated; NULL: of any namespace); first queued, first used; once
/// none is left for a namespace, its CONNECTs are accepted. `reply_json`:
/// `"accept"` or `{"refuse": <data>}` (a CONNECT_ERROR with that JSON,
/// e.g. `{"message": "not authorized"}`). Both are read during the call.
#[no_mangle]
pub extern "C" fn wst_sio_server_push_connect_reply(
    server: *const wst_sio_server,
    nsp: *const c_char,
    reply_json: *const c_char,
) -> wst_status {
    guard(|| {
        let s = self::server(server)?;
        let nsp = match nsp.is_null() {
            true => None,
            // SAFETY: a NUL-terminated string, per the contract.
            false => Some(unsafe { required_str(nsp, "nsp") }?),
        };
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let json = unsafe { required_str(reply_json, "reply_json") }?;
        let reply = ConnectReply::from_json(json).map_err(Failure::invalid)?;
        s.push_connect_reply(nsp, reply).map_err(Failure::invalid)?;
        Ok(wst_status::WST_OK)
    })
}

/// Replaces the network conditions of every connection, current and new:
/// `{"latency_ms": 200, "bandwidth_bytes_per_s": 10000, "cut": true}` as
/// for `wst_server_set_network` (`"{}"` lifts them). A round trip longer
/// than the server's `ping_timeout_ms` looks like a dead link to clients.
#[no_mangle]
pub extern "C" fn wst_sio_server_set_network(
    server: *const wst_sio_server,
    network_json: *const c_char,
) -> wst_status {
    guard(|| {
        let s = self::server(server)?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let json = unsafe { required_str(network_json, "network_json") }?;
        s.set_network(Network::from_json(json).map_err(Failure::invalid)?);
        Ok(wst_status::WST_OK)
    })
}

/// Like a server restart: kills every connection, forgets every session,
/// closes the listener and binds the same port again before returning.
#[no_mangle]
pub extern "C" fn wst_sio_server_restart(server: *const wst_sio_server) -> wst_status {
    guard(|| {
        self::server(server)?.restart().map_err(Failure::internal)?;
        Ok(wst_status::WST_OK)
    })
}

/// Kills every connection and forgets every session; keeps listening.
#[no_mangle]
pub extern "C" fn wst_sio_server_kill_connections(server: *const wst_sio_server) -> wst_status {
    guard(|| {
        self::server(server)?
            .kill_connections()
            .map_err(Failure::internal)?;
        Ok(wst_status::WST_OK)
    })
}

/// The number of Engine.IO sessions opened so far, in `*out_count`.
#[no_mangle]
pub extern "C" fn wst_sio_server_session_count(
    server: *const wst_sio_server,
    out_count: *mut usize,
) -> wst_status {
    guard(|| {
        let s = self::server(server)?;
        check_out(out_count, "out_count")?;
        // SAFETY: non-NULL (checked), writable per the contract.
        unsafe { write_out(out_count, s.session_count()) };
        Ok(wst_status::WST_OK)
    })
}

/// Takes the next namespace CONNECT nobody has taken (accepted or
/// refused), waiting at most `timeout_ms` (-1: without limit).
/// `WST_TIMEOUT` if none came. On `WST_OK`, `*out` is owned by the caller
/// (`wst_sio_connect_free`).
#[no_mangle]
pub extern "C" fn wst_sio_server_await_connect(
    server: *const wst_sio_server,
    timeout_ms: i32,
    out: *mut *mut wst_sio_connect,
) -> wst_status {
    guard(|| {
        let s = self::server(server)?;
        check_out(out, "out")?;
        let found = s
            .await_connect(timeout(timeout_ms)?)
            .map(|connect| wst_sio_connect {
                nsp: c_string(&connect.nsp),
                auth: connect.auth.as_ref().map(|a| c_string(&a.to_string())),
                connect,
            });
        // SAFETY: non-NULL (checked), writable per the contract.
        Ok(unsafe { hand_out(out, found) })
    })
}

/// The namespace (NUL-terminated, `/` for the main one); NULL if
/// `connect` is NULL. Valid until `wst_sio_connect_free`.
#[no_mangle]
pub extern "C" fn wst_sio_connect_nsp(connect: *const wst_sio_connect) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { connect.as_ref() }.map_or(std::ptr::null(), |c| c.nsp.as_ptr())
}

/// The CONNECT's `auth` payload as compact JSON text (NUL-terminated);
/// NULL if it carried none (or `connect` is NULL). Valid until
/// `wst_sio_connect_free`.
#[no_mangle]
pub extern "C" fn wst_sio_connect_auth(connect: *const wst_sio_connect) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { connect.as_ref() }
        .and_then(|c| c.auth.as_ref())
        .map_or(std::ptr::null(), |a| a.as_ptr())
}

/// 1 if the CONNECT was accepted, 0 if refused (or `connect` is NULL).
#[no_mangle]
pub extern "C" fn wst_sio_connect_accepted(connect: *const wst_sio_connect) -> u8 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { connect.as_ref() }.map_or(0, |c| u8::from(c.connect.accepted))
}

/// The Engine.IO session it came on (from 1, per server); 0 if NULL.
#[no_mangle]
pub extern "C" fn wst_sio_connect_session(connect: *const wst_sio_connect) -> u64 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { connect.as_ref() }.map_or(0, |c| c.connect.session)
}

/// Releases a CONNECT record. Calling with NULL is fine. Must not be
/// called twice.
#[no_mangle]
pub extern "C" fn wst_sio_connect_free(connect: *mut wst_sio_connect) {
    if !connect.is_null() {
        // SAFETY: a handle from `wst_sio_server_await_connect`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(connect) }));
    }
}

/// Takes the next event a client emitted that nobody has taken, waiting
/// at most `timeout_ms` (-1: without limit). `WST_TIMEOUT` if none came.
/// On `WST_OK`, `*out` is owned by the caller (`wst_sio_event_free`).
#[no_mangle]
pub extern "C" fn wst_sio_server_await_event(
    server: *const wst_sio_server,
    timeout_ms: i32,
    out: *mut *mut wst_sio_event,
) -> wst_status {
    guard(|| {
        let s = self::server(server)?;
        check_out(out, "out")?;
        let found = s
            .await_event(timeout(timeout_ms)?)
            .map(|event| wst_sio_event {
                nsp: c_string(&event.nsp),
                name: c_string(&event.name),
                args: c_string(&Value::Array(event.args.clone()).to_string()),
                event,
            });
        // SAFETY: non-NULL (checked), writable per the contract.
        Ok(unsafe { hand_out(out, found) })
    })
}

/// The event's namespace (NUL-terminated); NULL if `event` is NULL. Valid
/// until `wst_sio_event_free`.
#[no_mangle]
pub extern "C" fn wst_sio_event_nsp(event: *const wst_sio_event) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { event.as_ref() }.map_or(std::ptr::null(), |e| e.nsp.as_ptr())
}

/// The event's name (NUL-terminated); NULL if `event` is NULL. Valid until
/// `wst_sio_event_free`.
#[no_mangle]
pub extern "C" fn wst_sio_event_name(event: *const wst_sio_event) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { event.as_ref() }.map_or(std::ptr::null(), |e| e.name.as_ptr())
}

/// The arguments after the name as a compact JSON array (NUL-terminated;
/// binary ones as `{"_placeholder":true,"num":i}`); NULL if `event` is
/// NULL. Valid until `wst_sio_event_free`.
#[no_mangle]
pub extern "C" fn wst_sio_event_args(event: *const wst_sio_event) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { event.as_ref() }.map_or(std::ptr::null(), |e| e.args.as_ptr())
}

/// 1 if the client asked for an ack (its id in `*out_id`, if not NULL),
/// 0 if not (or `event` is NULL; nothing written).
#[no_mangle]
pub extern "C" fn wst_sio_event_ack_id(event: *const wst_sio_event, out_id: *mut u64) -> u8 {
    // SAFETY: a live handle or NULL, per this function's contract.
    let Some(id) = unsafe { event.as_ref() }.and_then(|e| e.event.ack_id) else {
        return 0;
    };
    if !out_id.is_null() {
        // SAFETY: non-NULL (checked), writable per the contract.
        unsafe { write_out(out_id, id) };
    }
    1
}

/// The number of binary attachments (0 if `event` is NULL).
#[no_mangle]
pub extern "C" fn wst_sio_event_attachment_count(event: *const wst_sio_event) -> usize {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { event.as_ref() }.map_or(0, |e| e.event.attachments.len())
}

/// Attachment `index`'s bytes, their count in `*out_len`; valid until
/// `wst_sio_event_free`. NULL (nothing written) if an argument is NULL or
/// `index` is out of range; an empty attachment gives a non-NULL pointer
/// and 0.
#[no_mangle]
pub extern "C" fn wst_sio_event_attachment(
    event: *const wst_sio_event,
    index: usize,
    out_len: *mut usize,
) -> *const u8 {
    // SAFETY: a live handle or NULL, per this function's contract.
    let Some(data) = unsafe { event.as_ref() }.and_then(|e| e.event.attachments.get(index)) else {
        return std::ptr::null();
    };
    if out_len.is_null() {
        return std::ptr::null();
    }
    // SAFETY: non-NULL (checked), writable per the contract.
    unsafe { write_out(out_len, data.len()) };
    if data.is_empty() {
        std::ptr::NonNull::<u8>::dangling().as_ptr()
    } else {
        data.as_ptr()
    }
}

/// The Engine.IO session the event came on (from 1); 0 if NULL.
#[no_mangle]
pub extern "C" fn wst_sio_event_session(event: *const wst_sio_event) -> u64 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { event.as_ref() }.map_or(0, |e| e.event.session)
}

/// Releases an event record. Calling with NULL is fine. Must not be
/// called twice.
#[no_mangle]
pub extern "C" fn wst_sio_event_free(event: *mut wst_sio_event) {
    if !event.is_null() {
        // SAFETY: a handle from `wst_sio_server_await_event`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(event) }));
    }
}

/// Takes the next socket (an accepted namespace CONNECT) nobody has taken,
/// waiting at most `timeout_ms` (-1: without limit). `WST_TIMEOUT` if none
/// came. On `WST_OK`, `*out` is owned by the caller (`wst_sio_socket_free`).
#[no_mangle]
pub extern "C" fn wst_sio_server_await_socket(
    server: *const wst_sio_server,
    timeout_ms: i32,
    out: *mut *mut wst_sio_socket,
) -> wst_status {
    guard(|| {
        let s = self::server(server)?;
        check_out(out, "out")?;
        let found = s
            .await_socket(timeout(timeout_ms)?)
            .map(|socket| wst_sio_socket {
                nsp: c_string(socket.nsp()),
                id: c_string(socket.id()),
                socket,
            });
        // SAFETY: non-NULL (checked), writable per the contract.
        Ok(unsafe { hand_out(out, found) })
    })
}

/// The socket's namespace (NUL-terminated); NULL if `socket` is NULL.
/// Valid until `wst_sio_socket_free`.
#[no_mangle]
pub extern "C" fn wst_sio_socket_nsp(socket: *const wst_sio_socket) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { socket.as_ref() }.map_or(std::ptr::null(), |s| s.nsp.as_ptr())
}

/// The Socket.IO socket id the CONNECT was answered with (NUL-terminated);
/// NULL if `socket` is NULL. Valid until `wst_sio_socket_free`.
#[no_mangle]
pub extern "C" fn wst_sio_socket_id(socket: *const wst_sio_socket) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { socket.as_ref() }.map_or(std::ptr::null(), |s| s.id.as_ptr())
}

/// The Engine.IO session of the socket (from 1); 0 if NULL.
#[no_mangle]
pub extern "C" fn wst_sio_socket_session(socket: *const wst_sio_socket) -> u64 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { socket.as_ref() }.map_or(0, |s| s.socket.session())
}

/// The session's transport now (`WST_SIO_WEBSOCKET` once upgraded);
/// `WST_SIO_POLLING` if `socket` is NULL.
#[no_mangle]
pub extern "C" fn wst_sio_socket_transport(socket: *const wst_sio_socket) -> wst_sio_transport {
    // SAFETY: a live handle or NULL, per this function's contract.
    match unsafe { socket.as_ref() }.map(|s| s.socket.transport()) {
        Some(SioTransport::WebSocket) => wst_sio_transport::WST_SIO_WEBSOCKET,
        _ => wst_sio_transport::WST_SIO_POLLING,
    }
}

/// 1 if the session lives and the namespace is still joined, else 0.
#[no_mangle]
pub extern "C" fn wst_sio_socket_is_connected(socket: *const wst_sio_socket) -> u8 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { socket.as_ref() }.map_or(0, |s| u8::from(s.socket.is_connected()))
}

/// Runs `act` on the socket behind a handle.
fn on_socket(
    socket: *const wst_sio_socket,
    act: impl FnOnce(&ServerSocket) -> Result<wst_status, Failure>,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per the calling function's contract.
        let s = unsafe { handle(socket, "socket") }?;
        act(&s.socket)
    })
}

/// Emits `event` (UTF-8, NUL-terminated, not empty) with `args_json` (a
/// JSON array; NULL: no arguments), both read during the call.
/// `WST_ERR_CLOSED` if the socket is gone. Like every command, it is
/// queued in order and returns at once.
#[no_mangle]
pub extern "C" fn wst_sio_socket_emit(
    socket: *const wst_sio_socket,
    event: *const c_char,
    args_json: *const c_char,
) -> wst_status {
    on_socket(socket, |s| {
        let (name, args) = (event_name(event)?, args(args_json)?);
        done(s.emit(name, &args))
    })
}

/// Emits `event` with `args_json` and one binary attachment of `len`
/// bytes at `data` (NULL if 0; copied during the call). If `args_json`
/// holds no `{"_placeholder":true,"num":0}`, the attachment is appended as
/// the last argument.
#[no_mangle]
pub extern "C" fn wst_sio_socket_emit_binary(
    socket: *const wst_sio_socket,
    event: *const c_char,
    args_json: *const c_char,
    data: *const u8,
    len: usize,
) -> wst_status {
    on_socket(socket, |s| {
        let (name, args) = (event_name(event)?, args(args_json)?);
        // SAFETY: NULL or `len` readable bytes, per the contract.
        let data = unsafe { bytes(data, len, "data") }?;
        done(s.emit_binary(name, &args, &[data.to_vec()]))
    })
}

/// Emits `event` with `args_json` asking for an ack. On `WST_OK`, `*out`
/// is the pending ack, owned by the caller: wait for the client's answer
/// with `wst_sio_ack_await`, release it with `wst_sio_ack_free`.
#[no_mangle]
pub extern "C" fn wst_sio_socket_emit_with_ack(
    socket: *const wst_sio_socket,
    event: *const c_char,
    args_json: *const c_char,
    out: *mut *mut wst_sio_ack,
) -> wst_status {
    on_socket(socket, |s| {
        check_out(out, "out")?;
        let (name, args) = (event_name(event)?, args(args_json)?);
        let Some(pending) = s.emit_with_ack(name, &args) else {
            return Err(Failure::closed("the socket is gone"));
        };
        let ack = wst_sio_ack {
            pending,
            answer: OnceLock::new(),
        };
        // SAFETY: non-NULL (checked), writable per the contract.
        unsafe { write_out(out, Box::into_raw(Box::new(ack))) };
        Ok(wst_status::WST_OK)
    })
}

/// Waits at most `timeout_ms` (-1: without limit) for the client's answer
/// to the emit. On `WST_OK`, `*out_args` is its arguments as a compact
/// JSON array (NUL-terminated), valid until `wst_sio_ack_free`; a later
/// call gives the same answer at once. `WST_TIMEOUT` if none came in time
/// or the session ended first (nothing written). Must not be called from
/// the thread that has to answer the event (it would wait for itself).
#[no_mangle]
pub extern "C" fn wst_sio_ack_await(
    ack: *const wst_sio_ack,
    timeout_ms: i32,
    out_args: *mut *const c_char,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let a = unsafe { handle(ack, "ack") }?;
        check_out(out_args, "out_args")?;
        if a.answer.get().is_none() {
            let Some(answer) = a.pending.wait(timeout(timeout_ms)?) else {
                return Ok(wst_status::WST_TIMEOUT);
            };
            let _ = a
                .answer
                .set(c_string(&Value::Array(answer.args).to_string()));
        }
        let text = a.answer.get().map_or(std::ptr::null(), |c| c.as_ptr());
        // SAFETY: non-NULL (checked), writable per the contract.
        unsafe { write_out(out_args, text) };
        Ok(wst_status::WST_OK)
    })
}

/// Releases a pending ack (an answer coming later is dropped). Calling
/// with NULL is fine. Must not be called twice.
#[no_mangle]
pub extern "C" fn wst_sio_ack_free(ack: *mut wst_sio_ack) {
    if !ack.is_null() {
        // SAFETY: a handle from `wst_sio_socket_emit_with_ack`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(ack) }));
    }
}

/// Kicks the client out of the namespace (a server DISCONNECT: the client
/// does not rejoin it by itself).
#[no_mangle]
pub extern "C" fn wst_sio_socket_disconnect(socket: *const wst_sio_socket) -> wst_status {
    on_socket(socket, |s| done(s.disconnect()))
}

/// Closes the socket's whole Engine.IO session (the close packet, then
/// the transport closes); the client reconnects with a new session.
#[no_mangle]
pub extern "C" fn wst_sio_socket_close_session(socket: *const wst_sio_socket) -> wst_status {
    on_socket(socket, |s| done(s.close_session()))
}

/// Drops the transport: every TCP connection of the session is reset
/// (RST) and the session is forgotten.
#[no_mangle]
pub extern "C" fn wst_sio_socket_drop_transport(socket: *const wst_sio_socket) -> wst_status {
    on_socket(socket, |s| done(s.drop_transport()))
}

/// Stops (0) or restarts (non-zero) the server's pings on the socket's
/// session: stopped, the client finds the link dead after `pingInterval +
/// pingTimeout` of silence.
#[no_mangle]
pub extern "C" fn wst_sio_socket_set_heartbeat(
    socket: *const wst_sio_socket,
    on: u8,
) -> wst_status {
    on_socket(socket, |s| done(s.set_heartbeat(on != 0)))
}

/// Releases the handle; the socket itself goes on. Calling with NULL is
/// fine. Must not be called twice, nor while another call on the handle
/// runs.
#[no_mangle]
pub extern "C" fn wst_sio_socket_free(socket: *mut wst_sio_socket) {
    if !socket.is_null() {
        // SAFETY: a handle from `wst_sio_server_await_socket`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(socket) }));
    }
}

/// Stops the server: kills every connection, joins its thread. Calling
/// with NULL is fine. Must not be called twice, and only after every other
/// call on this server has returned.
#[no_mangle]
pub extern "C" fn wst_sio_server_free(server: *mut wst_sio_server) {
    if !server.is_null() {
        // SAFETY: a handle from `wst_sio_server_start`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(server) }));
    }
}
