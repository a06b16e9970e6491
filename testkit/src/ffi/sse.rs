//! The C API of the SSE personality (`wst_sse_*`): an HTTP/1.1
//! Server-Sent Events test server and its streams, with the conventions of
//! the rest of `tether_testkit.h` (statuses, `wst_last_error`, handles
//! freed once, out-parameters written only on success).

use std::ffi::{c_char, CString};

use super::boundary::{
    bytes, check_out, guard, guard_void, hand_out, handle, required_str, timeout, write_out,
    Failure,
};
use super::{c_string, done, wst_request, wst_status};
use crate::{Network, SseEvent, SseReply, SseStream, SseTestServer};

/// A Server-Sent Events test server on 127.0.0.1 with its own thread.
///
/// Opaque. Thread-safe: any thread may call any `wst_sse_server_*`
/// function on it, while others wait in `wst_sse_server_await_*`. Created
/// by `wst_sse_server_start`, released by `wst_sse_server_free`.
pub struct wst_sse_server {
    server: SseTestServer,
    /// NUL-terminated copy for `wst_sse_server_ca_pem`.
    ca_pem: Option<CString>,
}

/// The server side of one open event stream.
///
/// Opaque. Thread-safe. Got from `wst_sse_server_await_stream`, released
/// by `wst_sse_stream_free` (which does not end the stream). It stays
/// usable after its server is freed: every call then returns
/// `WST_ERR_CLOSED`.
pub struct wst_sse_stream {
    stream: SseStream,
}

fn start(tls: bool, out: *mut *mut wst_sse_server) -> wst_status {
    guard(|| {
        check_out(out, "out")?;
        let server = if tls {
            SseTestServer::start_tls()
        } else {
            SseTestServer::start()
        }
        .map_err(|e| Failure::internal(format!("cannot start: {e}")))?;
        let ca_pem = server.ca_pem().map(c_string);
        let boxed = Box::into_raw(Box::new(wst_sse_server { server, ca_pem }));
        // SAFETY: `out` is non-NULL (checked) and the caller gives a
        // writable `wst_sse_server *`.
        unsafe { write_out(out, boxed) };
        Ok(wst_status::WST_OK)
    })
}

/// Starts a Server-Sent Events test server on a free port of 127.0.0.1
/// (`http://127.0.0.1:PORT/…`). It answers each request with the reply
/// queued by `wst_sse_server_push_reply`, or, once none is left, accepts
/// it (`200`, `Content-Type: text/event-stream`, a chunked body that stays
/// open: `wst_sse_server_await_stream` gives its handle).
///
/// On success `*out` is the new server, owned by the caller (free it with
/// `wst_sse_server_free`).
#[no_mangle]
pub extern "C" fn wst_sse_server_start(out: *mut *mut wst_sse_server) -> wst_status {
    start(false, out)
}

/// Starts an `https://` SSE test server, like `wst_sse_server_start` but
/// over TLS, with a certificate for `localhost` and `127.0.0.1` signed by a
/// CA made now: clients trust it with
/// `"tls": {"extra_ca_pem": <wst_sse_server_ca_pem>}` and connect to
/// `https://localhost:PORT/…`.
#[no_mangle]
pub extern "C" fn wst_sse_server_start_tls(out: *mut *mut wst_sse_server) -> wst_status {
    start(true, out)
}

/// A TLS server's CA certificate (PEM, NUL-terminated); NULL for an
/// `http://` server or a NULL argument. Valid until `wst_sse_server_free`.
#[no_mangle]
pub extern "C" fn wst_sse_server_ca_pem(server: *const wst_sse_server) -> *const c_char {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { server.as_ref() }
        .and_then(|s| s.ca_pem.as_ref())
        .map_or(std::ptr::null(), |p| p.as_ptr())
}

/// The server's port on 127.0.0.1, in `*out_port`.
#[no_mangle]
pub extern "C" fn wst_sse_server_port(
    server: *const wst_sse_server,
    out_port: *mut u16,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        check_out(out_port, "out_port")?;
        // SAFETY: non-NULL (checked), writable per the contract.
        unsafe { write_out(out_port, s.server.port()) };
        Ok(wst_status::WST_OK)
    })
}

/// Queues the answer to a coming request; each new request takes the next
/// one; once the queue is empty, requests are accepted. `reply_json`
/// (UTF-8, NUL-terminated, read during the call) is one of:
/// `{"accept": {"headers": {"X-A": "1"}}}` (an event stream, with extra
/// headers), `{"refuse": {"status": 503, "headers": {"Retry-After": "1"},
/// "body": ""}}` (any status 201..=599, e.g. 204 to end an EventSource
/// client for good, 404), `{"wrong_content_type": {"content_type":
/// "text/html"}}` (a 200 that is not an event stream), `"reset"` (RST after
/// the request). `WST_ERR_INVALID_ARGUMENT` for anything else (nothing
/// queued).
#[no_mangle]
pub extern "C" fn wst_sse_server_push_reply(
    server: *const wst_sse_server,
    reply_json: *const c_char,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let json = unsafe { required_str(reply_json, "reply_json") }?;
        let reply = SseReply::from_json(json).map_err(Failure::invalid)?;
        s.server.push_reply(reply).map_err(Failure::invalid)?;
        Ok(wst_status::WST_OK)
    })
}

/// Replaces the network conditions of every connection, current and new,
/// as `wst_server_set_network` does: `{"latency_ms": 200,
/// "bandwidth_bytes_per_s": 10000, "cut": true}`; `"{}"` lifts them all.
#[no_mangle]
pub extern "C" fn wst_sse_server_set_network(
    server: *const wst_sse_server,
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

/// Kills every connection (no last chunk: like a crash) and keeps
/// listening.
#[no_mangle]
pub extern "C" fn wst_sse_server_kill_connections(server: *const wst_sse_server) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        s.server.kill_connections().map_err(Failure::internal)?;
        Ok(wst_status::WST_OK)
    })
}

/// Like a server restart: kills every connection, closes the listener and
/// binds the same port again before returning.
#[no_mangle]
pub extern "C" fn wst_sse_server_restart(server: *const wst_sse_server) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        s.server.restart().map_err(Failure::internal)?;
        Ok(wst_status::WST_OK)
    })
}

/// Takes the next recorded request nobody has taken, waiting at most
/// `timeout_ms` (-1: without limit). `WST_TIMEOUT` if none came. On
/// `WST_OK`, `*out` is owned by the caller: read it with
/// `wst_request_path`, `wst_request_header` (e.g. `"last-event-id"`,
/// `"accept"`) and `wst_request_connection` (the stream's id), release it
/// with `wst_request_free`.
#[no_mangle]
pub extern "C" fn wst_sse_server_await_request(
    server: *const wst_sse_server,
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

/// Takes the next accepted stream nobody has taken, waiting at most
/// `timeout_ms` (-1: without limit). `WST_TIMEOUT` if none came. On
/// `WST_OK`, `*out` is owned by the caller (`wst_sse_stream_free`).
#[no_mangle]
pub extern "C" fn wst_sse_server_await_stream(
    server: *const wst_sse_server,
    timeout_ms: i32,
    out: *mut *mut wst_sse_stream,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per this function's contract.
        let s = unsafe { handle(server, "server") }?;
        check_out(out, "out")?;
        let found = s.server.await_stream(timeout(timeout_ms)?);
        // SAFETY: non-NULL (checked), writable per the contract.
        Ok(unsafe { hand_out(out, found.map(|stream| wst_sse_stream { stream })) })
    })
}

/// Stops the server: kills every connection, joins its thread. Calling
/// with NULL is fine. Must not be called twice, and only after every other
/// call on this server has returned (a thread blocked in
/// `wst_sse_server_await_*` must have come back).
#[no_mangle]
pub extern "C" fn wst_sse_server_free(server: *mut wst_sse_server) {
    if !server.is_null() {
        // SAFETY: a handle from `wst_sse_server_start`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(server) }));
    }
}

/// The stream's id (from 1, in accept order; the same as
/// `wst_request_connection` of its request); 0 if NULL.
#[no_mangle]
pub extern "C" fn wst_sse_stream_id(stream: *const wst_sse_stream) -> u64 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { stream.as_ref() }.map_or(0, |s| s.stream.id())
}

/// 1 while the stream runs; 0 once the client hung up, or it was ended,
/// reset or killed (or if `stream` is NULL).
#[no_mangle]
pub extern "C" fn wst_sse_stream_is_open(stream: *const wst_sse_stream) -> u8 {
    // SAFETY: a live handle or NULL, per this function's contract.
    unsafe { stream.as_ref() }.map_or(0, |s| u8::from(s.stream.is_open()))
}

/// Runs `act` on the stream behind a handle.
fn on_stream(
    stream: *const wst_sse_stream,
    act: impl FnOnce(&SseStream) -> Result<wst_status, Failure>,
) -> wst_status {
    guard(|| {
        // SAFETY: a live handle or NULL, per the calling function's contract.
        let s = unsafe { handle(stream, "stream") }?;
        act(&s.stream)
    })
}

/// An optional NUL-terminated UTF-8 string (NULL: `None`).
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string that outlives the call.
unsafe fn optional_str<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL here, NUL-terminated per the caller's contract.
    unsafe { required_str(ptr, what) }.map(Some)
}

/// Sends one event: `event_type` (`event:`; NULL: none, the client's
/// `"message"`), `id` (`id:`; NULL: none; `""`: an empty `id:`, which
/// resets the client's last event id), `data` (`len` bytes of UTF-8,
/// NULL if 0; one `data:` line per line, split at LF, CRLF or CR), and
/// `retry_ms` (`retry:`; -1: none). The strings are NUL-terminated UTF-8,
/// copied during the call. `WST_ERR_INVALID_ARGUMENT` for a line break in
/// `event_type` or `id`, or data that is not UTF-8; `WST_ERR_CLOSED` if the
/// stream is gone. Like every command, it is written in order with the
/// others and returns at once.
#[no_mangle]
pub extern "C" fn wst_sse_stream_send(
    stream: *const wst_sse_stream,
    event_type: *const c_char,
    id: *const c_char,
    data: *const u8,
    len: usize,
    retry_ms: i64,
) -> wst_status {
    on_stream(stream, |s| {
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let event_type = unsafe { optional_str(event_type, "event_type") }?;
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let id = unsafe { optional_str(id, "id") }?;
        // SAFETY: NULL or `len` readable bytes, per the contract.
        let data = unsafe { bytes(data, len, "data") }?;
        let data = std::str::from_utf8(data).map_err(|_| Failure::invalid("data is not UTF-8"))?;
        let retry = match retry_ms {
            -1 => None,
            0.. => Some(retry_ms as u64),
            _ => return Err(Failure::invalid(format!("retry_ms {retry_ms} is below -1"))),
        };
        let event = SseEvent {
            event: event_type.map(String::from),
            id: id.map(String::from),
            data: data.to_string(),
            retry,
        };
        event.check().map_err(Failure::invalid)?;
        done(s.send(&event))
    })
}

/// Sends a comment (`: text`, one line per line of `text`, NUL-terminated
/// UTF-8): clients ignore it; it keeps a stream alive.
#[no_mangle]
pub extern "C" fn wst_sse_stream_comment(
    stream: *const wst_sse_stream,
    text: *const c_char,
) -> wst_status {
    on_stream(stream, |s| {
        // SAFETY: NULL or a NUL-terminated string, per the contract.
        let text = unsafe { required_str(text, "text") }?;
        done(s.comment(text))
    })
}

/// Writes `len` bytes (NULL if 0) into the body as they are: half an
/// event, bad UTF-8, unknown fields. Copied during the call.
#[no_mangle]
pub extern "C" fn wst_sse_stream_send_raw(
    stream: *const wst_sse_stream,
    data: *const u8,
    len: usize,
) -> wst_status {
    on_stream(stream, |s| {
        // SAFETY: NULL or `len` readable bytes, per the contract.
        let data = unsafe { bytes(data, len, "data") }?;
        done(s.send_raw(data))
    })
}

/// Ends the stream cleanly (the last chunk, then FIN) once queued bytes
/// are out: an EventSource client reconnects with `Last-Event-ID`.
#[no_mangle]
pub extern "C" fn wst_sse_stream_end(stream: *const wst_sse_stream) -> wst_status {
    on_stream(stream, |s| done(s.end()))
}

/// Resets the connection (RST) once queued bytes are out.
#[no_mangle]
pub extern "C" fn wst_sse_stream_reset(stream: *const wst_sse_stream) -> wst_status {
    on_stream(stream, |s| done(s.reset()))
}

/// With `stall` non-zero, the server stops writing on this stream and
/// keeps it open (what is sent from then on, an end or a reset too, is
/// held: a client's read timeout must notice); with 0, what was held goes
/// out, in order.
#[no_mangle]
pub extern "C" fn wst_sse_stream_set_stall(stream: *const wst_sse_stream, stall: u8) -> wst_status {
    on_stream(stream, |s| done(s.set_stall(stall != 0)))
}

/// Releases the handle; the stream itself goes on. Calling with NULL is
/// fine. Must not be called twice, nor while another call on the handle
/// runs.
#[no_mangle]
pub extern "C" fn wst_sse_stream_free(stream: *mut wst_sse_stream) {
    if !stream.is_null() {
        // SAFETY: a handle from `wst_sse_server_await_stream`, freed once.
        guard_void(|| drop(unsafe { Box::from_raw(stream) }));
    }
}
