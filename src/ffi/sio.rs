//! The Socket.IO C ABI (`sio_*`): the `ws_*` rules hold here too (same
//! statuses, `ws_last_error`, threading, ownership and lifetimes).

use std::ffi::{c_char, CString};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use parking_lot::Mutex;

use super::panic;
use super::ptr::{self, Out};
use super::{ffi_state, ws_state, PollingGuard};
use crate::error::{ws_status, Error};
use crate::event::{Event, SioEvent};
use crate::socketio::SocketIoClient;
use crate::state::State;

/// A Socket.IO client: one Engine.IO connection (long-polling, upgraded
/// to WebSocket, or WebSocket only) that Tether keeps up, and the
/// namespaces joined on it, until `sio_close`.
///
/// Opaque. Thread-safe like `ws_client`: any thread may emit, ack, join,
/// leave or close while another polls; one thread at a time polls.
/// Created by `sio_connect`, released by `sio_free`.
pub struct sio_client {
    client: SocketIoClient,
    held: Mutex<SioHeld>,
    polling: AtomicBool,
}

/// What the last polled event's pointers point into.
#[derive(Default)]
struct SioHeld {
    event: Option<Event>,
    nsp: Option<CString>,
    name: Option<CString>,
    data: Option<CString>,
    state: Option<State>,
}

/// What a `sio_event` reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sio_event_kind {
    /// The connection's state changed: `.state` (as for `ws_*`; OPEN
    /// means the Engine.IO session is open, namespaces report CONNECT).
    SIO_EVENT_STATE,
    /// Namespace `.nsp` was joined; `.recovered` is 1 when the server
    /// restored its state (connection state recovery): missed events follow.
    SIO_EVENT_CONNECT,
    /// The server refused namespace `.nsp`: `.data` is its JSON (e.g.
    /// `{"message":"bad token","data":{...}}`). Not joined again until
    /// `sio_join`.
    SIO_EVENT_CONNECT_ERROR,
    /// Namespace `.nsp` was left: `.data` is the reason, `io server
    /// disconnect` (not joined again), `io client disconnect`
    /// (`sio_leave`, `sio_close`) or `transport close` (the connection was
    /// lost: joined again after the reconnect).
    SIO_EVENT_DISCONNECT,
    /// An event `.name` on `.nsp`: `.data` is its arguments as a JSON
    /// array; binary arguments are `{"_placeholder":true,"num":i}` for
    /// attachment i of `.attachments` (`sio_attachment`). `.ack_id` > 0:
    /// the server waits for `sio_ack(nsp, ack_id, …)`.
    SIO_EVENT_EVENT,
    /// The answer to `sio_emit` id `.ack_id`: `.data` its arguments (JSON
    /// array), attachments as for events. `.error` is `WS_TIMEOUT` (and
    /// `.data` NULL) when none came within `ack_timeout_ms` of the write,
    /// or the namespace was left first.
    SIO_EVENT_ACK,
    /// A reconnection is scheduled: attempt `.attempt` after `.delay_ms`.
    SIO_EVENT_RECONNECTING,
    /// Something failed: `.error` (a `ws_error_code` or HTTP status),
    /// `.data` a NUL-terminated message.
    SIO_EVENT_ERROR,
    /// The last event of this client; then `sio_poll_event` returns
    /// `WS_ERR_CLOSED`.
    SIO_EVENT_TERMINATED,
}

/// One event, filled by `sio_poll_event`. Its pointers point into memory
/// owned by the client: valid until the next `sio_poll_event` on the same
/// client, or `sio_free`. Fields that do not apply are 0 or NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sio_event {
    pub kind: sio_event_kind,
    /// The client's state after this event.
    pub state: ws_state,
    /// NUL-terminated namespace (`"/"` for the main one); NULL for STATE,
    /// RECONNECTING, ERROR and TERMINATED.
    pub nsp: *const c_char,
    /// `SIO_EVENT_EVENT`: the NUL-terminated event name, else NULL.
    pub name: *const c_char,
    /// JSON text (or the error message), NUL-terminated; `.len` bytes
    /// without the NUL.
    pub data: *const u8,
    pub len: usize,
    /// EVENT: the id to answer with `sio_ack` (0: no answer wanted).
    /// ACK: the id `sio_emit` gave.
    pub ack_id: u64,
    pub error: i32,
    pub attempt: u32,
    pub delay_ms: u64,
    /// CONNECT: 1 if the connection state was recovered.
    pub recovered: u8,
    /// EVENT and ACK: binary attachments, read with `sio_attachment`.
    pub attachments: usize,
}

impl Default for sio_event {
    fn default() -> sio_event {
        sio_event {
            kind: sio_event_kind::SIO_EVENT_STATE,
            state: ws_state::WS_STATE_CONNECTING,
            nsp: std::ptr::null(),
            name: std::ptr::null(),
            data: std::ptr::null(),
            len: 0,
            ack_id: 0,
            error: 0,
            attempt: 0,
            delay_ms: 0,
            recovered: 0,
            attachments: 0,
        }
    }
}

/// The client behind a handle.
///
/// # Safety
/// `ptr` is NULL or a handle from `sio_connect` not yet given to
/// `sio_free`.
unsafe fn handle<'a>(ptr: *const sio_client) -> Result<&'a sio_client, Error> {
    // SAFETY: the caller promises a live handle (or NULL, checked here).
    unsafe { ptr.as_ref() }.ok_or(Error::NullArgument("client"))
}

/// The Rust client behind a handle (for the poll set).
///
/// # Safety
/// As [`handle`].
pub(crate) unsafe fn client_of<'a>(ptr: *const sio_client) -> Result<&'a SocketIoClient, Error> {
    // SAFETY: forwarded caller contract.
    unsafe { handle(ptr) }.map(|h| &h.client)
}

fn with_sio(
    client: *mut sio_client,
    call: impl FnOnce(&SocketIoClient) -> Result<(), Error>,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL).
        let handle = unsafe { handle(client)? };
        call(&handle.client)
    })
}

/// NUL-free text for C: a NUL inside becomes a space.
fn c_text(text: &str) -> CString {
    CString::new(text.replace('\0', " ")).unwrap_or_default()
}

/// Opens a Socket.IO client for `url` and starts connecting; joins `/`.
///
/// - `url`: NUL-terminated `http://` or `https://` URL of the server,
///   with no path (or `/`) and an optional query sent with every request
///   (e.g. `?token=…`). Required.
/// - `options_json`: NULL, or every `ws_connect` option that applies
///   (`headers`, `connect_timeout_ms`, `close_timeout_ms`, `reconnect`,
///   `queue`, `max_message_bytes`, `max_frame_bytes`, `max_unpolled_bytes`,
///   `tls`, `allow_insecure`, `proxy`) plus `transports` [["polling",
///   "websocket"]: long-polling, upgraded to WebSocket when the server
///   offers it; `["websocket"]` or `["polling"]` force one], `path`
///   ["/socket.io/"], `auth` [null: a JSON object sent with every join of
///   `/`] and `ack_timeout_ms` [10000]. The server sets the heartbeat, so
///   `ping_interval_ms`, `pong_timeout_ms` and `subprotocols` are refused;
///   so is `outbox` (not supported for Socket.IO yet).
/// - `out`: receives the client on success.
///
/// Events start with `SIO_EVENT_STATE` (CONNECTING); `SIO_EVENT_CONNECT`
/// for `/` says the client is ready, but emits made before wait for it.
#[no_mangle]
pub extern "C" fn sio_connect(
    url: *const c_char,
    options_json: *const c_char,
    out: *mut *mut sio_client,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: NUL-terminated strings or NULL, and a writable pointer
        // (or NULL), as documented above.
        let (url, options, out) = unsafe {
            (
                ptr::required_str(url, "url")?,
                ptr::optional_str(options_json, "options_json")?,
                Out::new(out, "out")?,
            )
        };
        let client = SocketIoClient::connect(url, options)?;
        out.write(Box::into_raw(Box::new(sio_client {
            client,
            held: Mutex::new(SioHeld::default()),
            polling: AtomicBool::new(false),
        })));
        Ok(())
    })
}

/// Joins namespace `nsp` (`"/…"`) with `auth_json` (a JSON object, or
/// NULL), now if connected and again after every reconnect. Answered by
/// `SIO_EVENT_CONNECT` or `SIO_EVENT_CONNECT_ERROR`. Joining a refused
/// namespace again (e.g. with new auth) retries it.
#[no_mangle]
pub extern "C" fn sio_join(
    client: *mut sio_client,
    nsp: *const c_char,
    auth_json: *const c_char,
) -> ws_status {
    with_sio(client, |c| {
        // SAFETY: NUL-terminated strings (auth may be NULL).
        let (nsp, auth) = unsafe {
            (
                ptr::required_str(nsp, "nsp")?,
                ptr::optional_str(auth_json, "auth_json")?,
            )
        };
        c.join(nsp, auth)
    })
}

/// Leaves namespace `nsp`: the server is told, it is not joined again, and
/// `SIO_EVENT_DISCONNECT` ("io client disconnect") follows. Emits still
/// waiting for it are dropped, their acks failing. `WS_ERR_INVALID_ARGUMENT`
/// if it is not joined.
#[no_mangle]
pub extern "C" fn sio_leave(client: *mut sio_client, nsp: *const c_char) -> ws_status {
    with_sio(client, |c| {
        // SAFETY: a NUL-terminated string.
        let nsp = unsafe { ptr::required_str(nsp, "nsp")? };
        c.leave(nsp)
    })
}

/// Emits `event` with `args_json` (a JSON array, e.g. `["hi",1]`; `[]` for
/// none) on namespace `nsp`. Returns at once: the emit waits in the queue
/// (in order) until `nsp` is connected. `out_ack_id`: NULL for no answer,
/// else it receives the id that its `SIO_EVENT_ACK` will carry.
/// `WS_ERR_INVALID_ARGUMENT` for bad JSON, a reserved event name
/// (`connect`, `disconnect`, …) or a namespace not joined;
/// `WS_ERR_QUEUE_FULL` when the queue is full (nothing taken).
#[no_mangle]
pub extern "C" fn sio_emit(
    client: *mut sio_client,
    nsp: *const c_char,
    event: *const c_char,
    args_json: *const c_char,
    out_ack_id: *mut u64,
) -> ws_status {
    sio_emit_binary(
        client,
        nsp,
        event,
        args_json,
        std::ptr::null(),
        std::ptr::null(),
        0,
        out_ack_id,
    )
}

/// Reads `count` attachments given as parallel arrays.
///
/// # Safety
/// `datas` and `lens` are NULL (with `count` 0) or point to `count`
/// entries; each `datas[i]` is valid for `lens[i]` bytes.
unsafe fn attachments<'a>(
    datas: *const *const u8,
    lens: *const usize,
    count: usize,
) -> Result<Vec<&'a [u8]>, Error> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > crate::wire::socketio::packet::MAX_ATTACHMENTS {
        return Err(Error::InvalidArgument(format!(
            "{count} attachments are more than the {} an emit may carry",
            crate::wire::socketio::packet::MAX_ATTACHMENTS
        )));
    }
    if datas.is_null() || lens.is_null() {
        return Err(Error::NullArgument("attachments"));
    }
    // SAFETY: non-NULL, and the caller promises `count` entries each.
    let (datas, lens) = unsafe {
        (
            std::slice::from_raw_parts(datas, count),
            std::slice::from_raw_parts(lens, count),
        )
    };
    datas
        .iter()
        .zip(lens)
        // SAFETY: each pointer is valid for its length (caller contract).
        .map(|(data, len)| unsafe { ptr::bytes(*data, *len, "attachment") })
        .collect()
}

/// `sio_emit` with binary attachments: `count` buffers `datas[i]` of
/// `lens[i]` bytes, copied before return. `args_json` may refer to them as
/// `{"_placeholder":true,"num":i}`; those it does not are appended as the
/// last arguments, in order. At most 1024 attachments.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C shape: parallel arrays
pub extern "C" fn sio_emit_binary(
    client: *mut sio_client,
    nsp: *const c_char,
    event: *const c_char,
    args_json: *const c_char,
    datas: *const *const u8,
    lens: *const usize,
    count: usize,
    out_ack_id: *mut u64,
) -> ws_status {
    with_sio(client, |c| {
        // SAFETY: NUL-terminated strings, attachment arrays and an
        // optional writable id as documented above.
        let (nsp, event, args, attachments) = unsafe {
            (
                ptr::required_str(nsp, "nsp")?,
                ptr::required_str(event, "event")?,
                ptr::required_str(args_json, "args_json")?,
                attachments(datas, lens, count)?,
            )
        };
        let want_ack = !out_ack_id.is_null();
        let id = c.emit_binary(nsp, event, args, &attachments, want_ack)?;
        if let Some(id) = id {
            // SAFETY: non-NULL (checked) and writable per the contract.
            unsafe { Out::new(out_ack_id, "out_ack_id")? }.write(id);
        }
        Ok(())
    })
}

/// Answers the server's event that carried `ack_id` (`SIO_EVENT_EVENT`'s
/// `.ack_id`, with its `.nsp`) with `args_json` (a JSON array).
#[no_mangle]
pub extern "C" fn sio_ack(
    client: *mut sio_client,
    nsp: *const c_char,
    ack_id: u64,
    args_json: *const c_char,
) -> ws_status {
    sio_ack_binary(
        client,
        nsp,
        ack_id,
        args_json,
        std::ptr::null(),
        std::ptr::null(),
        0,
    )
}

/// `sio_ack` with binary attachments, placed as for `sio_emit_binary`.
#[no_mangle]
pub extern "C" fn sio_ack_binary(
    client: *mut sio_client,
    nsp: *const c_char,
    ack_id: u64,
    args_json: *const c_char,
    datas: *const *const u8,
    lens: *const usize,
    count: usize,
) -> ws_status {
    with_sio(client, |c| {
        // SAFETY: NUL-terminated strings and attachment arrays as
        // documented for sio_emit_binary.
        let (nsp, args, attachments) = unsafe {
            (
                ptr::required_str(nsp, "nsp")?,
                ptr::required_str(args_json, "args_json")?,
                attachments(datas, lens, count)?,
            )
        };
        c.ack_binary(nsp, ack_id, args, &attachments)
    })
}

/// Waits for the next event and writes it to `out`; `timeout_ms` as for
/// `ws_poll_event` (0: no wait, -1: forever). `WS_TIMEOUT` when nothing
/// came in time (`*out` untouched), `WS_ERR_CLOSED` after
/// `SIO_EVENT_TERMINATED`. One thread at a time; `sio_close` wakes it.
#[no_mangle]
pub extern "C" fn sio_poll_event(
    client: *mut sio_client,
    timeout_ms: i32,
    out: *mut sio_event,
) -> ws_status {
    super::poll_call(|| {
        // SAFETY: a live handle (or NULL) and a writable sio_event (or NULL).
        let (handle, out) = unsafe { (handle(client)?, Out::new(out, "out")?) };
        let timeout = super::poll_timeout(timeout_ms)?;
        let _polling = PollingGuard::enter(&handle.polling)?;
        handle.poll_into(timeout, out)
    })
}

impl sio_client {
    fn poll_into(&self, timeout: Option<Duration>, out: Out<sio_event>) -> Result<bool, Error> {
        let mut held = self.held.lock();
        *held = SioHeld {
            state: held.state,
            ..SioHeld::default()
        };
        let Some(event) = self.client.poll_event(timeout)? else {
            return Ok(false);
        };
        let mut ev = sio_event::default();
        let mut nsp_text = None;
        let mut name_text = None;
        let mut data_text = None;
        match &event {
            Event::State(state) => held.state = Some(*state),
            Event::Reconnecting { attempt, delay } => {
                ev.kind = sio_event_kind::SIO_EVENT_RECONNECTING;
                ev.attempt = *attempt;
                ev.delay_ms = delay.as_millis() as u64;
            }
            Event::Error { code, message } => {
                ev.kind = sio_event_kind::SIO_EVENT_ERROR;
                ev.error = *code;
                data_text = Some(message.clone());
            }
            Event::Terminated => ev.kind = sio_event_kind::SIO_EVENT_TERMINATED,
            Event::SocketIo(sio) => match sio.as_ref() {
                SioEvent::Connect { nsp, recovered } => {
                    ev.kind = sio_event_kind::SIO_EVENT_CONNECT;
                    ev.recovered = u8::from(*recovered);
                    nsp_text = Some(nsp.clone());
                }
                SioEvent::ConnectError { nsp, data } => {
                    ev.kind = sio_event_kind::SIO_EVENT_CONNECT_ERROR;
                    nsp_text = Some(nsp.clone());
                    data_text = Some(data.clone());
                }
                SioEvent::Disconnect { nsp, reason } => {
                    ev.kind = sio_event_kind::SIO_EVENT_DISCONNECT;
                    nsp_text = Some(nsp.clone());
                    data_text = Some(reason.clone());
                }
                SioEvent::Event {
                    nsp,
                    name,
                    args,
                    ack_id,
                    attachments,
                } => {
                    ev.kind = sio_event_kind::SIO_EVENT_EVENT;
                    ev.ack_id = *ack_id;
                    ev.attachments = attachments.len();
                    nsp_text = Some(nsp.clone());
                    name_text = Some(name.clone());
                    data_text = Some(args.clone());
                }
                SioEvent::Ack {
                    nsp,
                    ack_id,
                    args,
                    attachments,
                    error,
                } => {
                    ev.kind = sio_event_kind::SIO_EVENT_ACK;
                    ev.ack_id = *ack_id;
                    ev.error = *error;
                    ev.attachments = attachments.len();
                    nsp_text = Some(nsp.clone());
                    if *error == 0 {
                        data_text = Some(args.clone());
                    }
                }
            },
            // The Socket.IO client never hands these on.
            Event::Open { .. }
            | Event::Text(_)
            | Event::Binary(_)
            | Event::Closed { .. }
            | Event::Resent { .. }
            | Event::ServerSent(_) => {
                ev.kind = sio_event_kind::SIO_EVENT_ERROR;
                ev.error = ws_status::WS_ERR_INTERNAL as i32;
                data_text = Some("an unexpected event on a Socket.IO client".into());
            }
        }
        ev.state = ffi_state(held.state.unwrap_or(State::Connecting));
        if let Some(nsp) = nsp_text {
            let nsp = c_text(&nsp);
            ev.nsp = nsp.as_ptr();
            held.nsp = Some(nsp);
        }
        if let Some(name) = name_text {
            let name = c_text(&name);
            ev.name = name.as_ptr();
            held.name = Some(name);
        }
        if let Some(data) = data_text {
            let data = c_text(&data);
            ev.data = data.as_ptr().cast();
            ev.len = data.as_bytes().len();
            held.data = Some(data);
        }
        // Moving the event into `held` does not move its heap buffers.
        held.event = Some(event);
        out.write(ev);
        Ok(true)
    }
}

/// Attachment `index` of the last polled `SIO_EVENT_EVENT` or
/// `SIO_EVENT_ACK`: `*out_data`/`*out_len` point into the client's memory,
/// valid until the next `sio_poll_event` or `sio_free`.
/// `WS_ERR_INVALID_ARGUMENT` if the event has no such attachment.
#[no_mangle]
pub extern "C" fn sio_attachment(
    client: *mut sio_client,
    index: usize,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: a live handle and writable out-parameters (or NULL).
        let (handle, out_data, out_len) = unsafe {
            (
                handle(client)?,
                Out::new(out_data, "out_data")?,
                Out::new(out_len, "out_len")?,
            )
        };
        let held = handle.held.lock();
        let attachments = match held.event.as_ref().and_then(Event::socket_io) {
            Some(SioEvent::Event { attachments, .. }) | Some(SioEvent::Ack { attachments, .. }) => {
                attachments.as_slice()
            }
            _ => &[],
        };
        let Some(attachment) = attachments.get(index) else {
            return Err(Error::InvalidArgument(format!(
                "the last event has {} attachment(s); there is no index {index}",
                attachments.len()
            )));
        };
        out_data.write(attachment.as_ptr());
        out_len.write(attachment.len());
        Ok(())
    })
}

/// Leaves every namespace and closes the connection; events drain to
/// `SIO_EVENT_TERMINATED` (acks still awaited fail first). Emits queued
/// before go out first.
#[no_mangle]
pub extern "C" fn sio_close(client: *mut sio_client) -> ws_status {
    with_sio(client, SocketIoClient::close)
}

/// As `ws_pause`: the app went to the background; the connection closes,
/// emits keep queueing, nothing reconnects until `sio_resume`.
#[no_mangle]
pub extern "C" fn sio_pause(client: *mut sio_client) -> ws_status {
    with_sio(client, SocketIoClient::pause)
}

/// As `ws_resume`: connects now (after a pause or during a backoff wait).
#[no_mangle]
pub extern "C" fn sio_resume(client: *mut sio_client) -> ws_status {
    with_sio(client, SocketIoClient::resume)
}

/// As `ws_network_changed`: `available` non-zero when the network is back.
#[no_mangle]
pub extern "C" fn sio_network_changed(client: *mut sio_client, available: i32) -> ws_status {
    with_sio(client, |c| c.network_changed(available != 0))
}

/// As `ws_reconnect`: drops the connection and opens a fresh one now.
#[no_mangle]
pub extern "C" fn sio_reconnect(client: *mut sio_client) -> ws_status {
    with_sio(client, SocketIoClient::reconnect)
}

/// As `ws_set_header`: sets (`value` non-NULL) or removes a header of the
/// next handshakes and polling requests; the value never appears in
/// errors or logs.
#[no_mangle]
pub extern "C" fn sio_set_header(
    client: *mut sio_client,
    name: *const c_char,
    value: *const c_char,
) -> ws_status {
    with_sio(client, |c| {
        // SAFETY: NUL-terminated strings (value may be NULL).
        let (name, value) = unsafe {
            (
                ptr::required_str(name, "name")?,
                ptr::optional_str(value, "value")?,
            )
        };
        c.set_header(name, value)
    })
}

/// As `ws_event_fd`: a descriptor readable while events are pending, owned
/// by the client; -1 on failure (see `ws_last_error`).
#[no_mangle]
pub extern "C" fn sio_event_fd(client: *mut sio_client) -> i32 {
    super::fd_call(|| {
        // SAFETY: a live handle (or NULL).
        let handle = unsafe { handle(client)? };
        super::event_fd(handle.client.session())
    })
}

/// Releases a client and everything it owns. If it was not closed, the
/// connection closes in the background. Must come after every other call
/// on it has returned (wake a blocked poller with `sio_close` first).
/// NULL is fine; twice is not.
#[no_mangle]
pub extern "C" fn sio_free(client: *mut sio_client) {
    panic::guard_void(|| {
        if !client.is_null() {
            // SAFETY: a handle from sio_connect, not freed before, with no
            // call in flight (the documented contract).
            drop(unsafe { Box::from_raw(client) });
        }
    })
}
