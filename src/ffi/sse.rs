//! The C ABI of Server-Sent Events clients (`sse_*`), in the `ws_*`
//! style: same statuses, same states, same error codes, same rules
//! (pointers checked, panics caught, out-parameters written only on
//! success, `ws_last_error` says why a call failed).

use std::ffi::{c_char, CString};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::ptr::{self, Out};
use super::{ffi_state, panic, ws_state, ws_status, PollingGuard};
use crate::client::SseClient;
use crate::error::Error;
use crate::event::Event;
use crate::state::State;
use crate::wire::sse::SseOptions;

/// A Server-Sent Events client: one event stream that Tether keeps up,
/// reconnecting with backoff and resuming with `Last-Event-ID`, until
/// `sse_close`. Receive-only.
///
/// Opaque. Thread-safe: any thread may call `sse_close`,
/// `sse_set_header` and the other calls while another thread polls. Only
/// one thread may be inside `sse_poll_event` at a time. Created by
/// `sse_connect`, released by `sse_free`.
pub struct sse_client {
    client: SseClient,
    /// The event last returned by `sse_poll_event` and the C strings made
    /// from it: `sse_event`'s pointers point into them.
    held: Mutex<SseHeld>,
    /// Set while a thread is inside `sse_poll_event`.
    polling: AtomicBool,
}

#[derive(Default)]
struct SseHeld {
    event: Option<Event>,
    event_type: Option<CString>,
    id: Option<CString>,
    /// NUL-terminated copy of an error message.
    text: Option<CString>,
    state: Option<State>,
}

/// What an `sse_event` reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sse_event_kind {
    /// The state changed: `.state` is the new state.
    SSE_EVENT_STATE,
    /// The server answered 200 with `text/event-stream`: the stream is
    /// open (after every reconnect too).
    SSE_EVENT_OPEN,
    /// An event: `.type`, `.id`, and `.data`/`.len`.
    SSE_EVENT_MESSAGE,
    /// The stream was lost; attempt number `.attempt` (from 1) starts
    /// after `.delay_ms` (the stream's `retry:` is the base the backoff
    /// grows from; a server's Retry-After can make it longer).
    SSE_EVENT_RECONNECTING,
    /// Something failed: `.error` is a `ws_error_code`, or the HTTP status
    /// (100..599) when the server refused the stream; `.data`/`.len` is a
    /// NUL-terminated message. Header values never appear in it.
    SSE_EVENT_ERROR,
    /// The last event of this client: none will follow, and the next
    /// `sse_poll_event` returns `WS_ERR_CLOSED`.
    SSE_EVENT_TERMINATED,
}

/// One event. Filled by `sse_poll_event`.
///
/// Its pointers point into memory owned by the client: they stay valid
/// until the next `sse_poll_event` on the same client, or `sse_free`. Copy
/// what you keep. Fields that do not apply to `kind` are 0 (or NULL).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sse_event {
    pub kind: sse_event_kind,
    /// The client's state after this event (the new state for
    /// `SSE_EVENT_STATE`).
    pub state: ws_state,
    /// `SSE_EVENT_MESSAGE`: the event type, NUL-terminated UTF-8
    /// (`"message"` when the stream named none; a NUL in it reads as
    /// U+FFFD).
    pub r#type: *const c_char,
    /// `SSE_EVENT_MESSAGE`: the last event id in force, NUL-terminated
    /// UTF-8; NULL until the stream (or option `last_event_id`) set one,
    /// `""` after an empty `id:` field.
    pub id: *const c_char,
    /// `SSE_EVENT_MESSAGE`: the `data:` lines joined by `"\n"`, UTF-8
    /// (invalid bytes from the server read as U+FFFD), not NUL-terminated.
    /// `SSE_EVENT_ERROR`: the message, NUL-terminated.
    pub data: *const u8,
    pub len: usize,
    pub error: i32,
    pub attempt: u32,
    pub delay_ms: u64,
}

impl Default for sse_event {
    fn default() -> sse_event {
        sse_event {
            kind: sse_event_kind::SSE_EVENT_STATE,
            state: ws_state::WS_STATE_CONNECTING,
            r#type: std::ptr::null(),
            id: std::ptr::null(),
            data: std::ptr::null(),
            len: 0,
            error: 0,
            attempt: 0,
            delay_ms: 0,
        }
    }
}

/// The client behind a handle.
///
/// # Safety
/// `ptr` is NULL or a handle from `sse_connect` not yet given to
/// `sse_free`.
unsafe fn handle<'a>(ptr: *const sse_client) -> Result<&'a sse_client, Error> {
    // SAFETY: the caller promises a live handle (or NULL, checked here).
    unsafe { ptr.as_ref() }.ok_or(Error::NullArgument("client"))
}

/// The Rust client behind a handle (for the poll set).
///
/// # Safety
/// As [`handle`].
pub(crate) unsafe fn client_of<'a>(ptr: *const sse_client) -> Result<&'a SseClient, Error> {
    // SAFETY: forwarded caller contract.
    unsafe { handle(ptr) }.map(|h| &h.client)
}

/// Opens a Server-Sent Events client for `url` and starts connecting in
/// the background.
///
/// - `url`: NUL-terminated UTF-8 `http://` or `https://` URL (https: TLS
///   with the `tls` options, pins included), port 1-65535, no
///   `#fragment`. Required.
/// - `options_json`: NUL-terminated JSON object, or NULL (or "") for the
///   defaults. Unknown keys are rejected, and so are the WebSocket-only
///   ones (`subprotocols`, `ping_interval_ms`, `pong_timeout_ms`,
///   `close_timeout_ms`, `max_frame_bytes`, `queue`, `outbox`). Keys
///   (defaults in brackets): `method` ["GET"] (e.g. "POST" for APIs that
///   stream their answer), `body` [null] (text sent with every request;
///   needs a method like POST), `last_event_id` [null] (sent as
///   `Last-Event-ID` on the first request too), `read_timeout_ms` [60000]
///   (no byte, comments included, within it: the stream is dead and is
///   reopened; 0: no check), and as for `ws_connect`: `headers` {},
///   `connect_timeout_ms` [10000] (until the response head), `reconnect`
///   {…}, `max_message_bytes` [64 MiB] (per event: a larger event, or a
///   longer line, is an error without retry), `max_unpolled_bytes`
///   [16 MiB], `tls` {…}, `allow_insecure` [true], `proxy` [null].
/// - `out`: receives the new client on success; untouched on failure.
///
/// Every request carries `Accept: text/event-stream`, `Cache-Control:
/// no-store` and, once an id is known and not empty, `Last-Event-ID`.
/// A 200 answer with Content-Type `text/event-stream` opens the stream;
/// 204 ends the client for good (no error); another 4xx or 2xx, a 3xx
/// (redirects are not followed), a wrong Content-Type or an untrusted
/// certificate is an error without retry;
/// 5xx and 429 are retried with backoff and Retry-After; a stream that
/// ends, breaks or stays silent past `read_timeout_ms` is reopened.
///
/// Returns at once: progress arrives as events (`sse_poll_event`),
/// starting with `SSE_EVENT_STATE` (CONNECTING). Fails with
/// `WS_ERR_INVALID_ARGUMENT` for a malformed URL, an unsupported scheme or
/// bad options, `WS_ERR_NULL_ARGUMENT` for a NULL `url` or `out`. The
/// strings are copied. The client must be released with `sse_free`. Any
/// thread may call this.
#[no_mangle]
pub extern "C" fn sse_connect(
    url: *const c_char,
    options_json: *const c_char,
    out: *mut *mut sse_client,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes NUL-terminated strings or NULL, and a
        // writable pointer (or NULL) as documented above.
        let (url, options, out) = unsafe {
            (
                ptr::required_str(url, "url")?,
                ptr::optional_str(options_json, "options_json")?,
                Out::new(out, "out")?,
            )
        };
        let options = SseOptions::parse_json(options)?;
        let client = SseClient::connect(url, options)?;
        let handle = Box::new(sse_client {
            client,
            held: Mutex::new(SseHeld::default()),
            polling: AtomicBool::new(false),
        });
        out.write(Box::into_raw(handle));
        Ok(())
    })
}

/// Waits for the next event of `client` and writes it to `out`.
///
/// - `timeout_ms`: 0 polls without waiting, -1 waits forever, otherwise
///   milliseconds. Other negative values are invalid.
///
/// Returns `WS_OK` with `*out` filled, `WS_TIMEOUT` if nothing came in
/// time (`*out` untouched), or `WS_ERR_CLOSED` once
/// `SSE_EVENT_TERMINATED` has been returned. Events come in order
/// (STATE(CONNECTING), STATE(OPEN), OPEN, MESSAGE…; RECONNECTING after a
/// loss; STATE(CLOSED), TERMINATED at the end); nothing is dropped. While
/// events are not polled, Tether stops reading the stream once they pass
/// `max_unpolled_bytes`, and resumes as they are polled.
///
/// `out`'s pointers stay valid until the next `sse_poll_event` on this
/// client or `sse_free`. Only one thread at a time may poll a client (a
/// second one gets `WS_ERR_INVALID_ARGUMENT`); `sse_close` from another
/// thread wakes a blocked poller.
#[no_mangle]
pub extern "C" fn sse_poll_event(
    client: *mut sse_client,
    timeout_ms: i32,
    out: *mut sse_event,
) -> ws_status {
    super::poll_call(|| {
        // SAFETY: the caller passes a live handle (or NULL) and a writable
        // sse_event (or NULL).
        let (handle, out) = unsafe { (handle(client)?, Out::new(out, "out")?) };
        let timeout = super::poll_timeout(timeout_ms)?;
        let _polling = PollingGuard::enter(&handle.polling)?;
        handle.poll_into(timeout, out)
    })
}

impl sse_client {
    /// Polls one event into `out`; false if none came in time.
    fn poll_into(&self, timeout: Option<Duration>, out: Out<sse_event>) -> Result<bool, Error> {
        let mut held = self.held.lock();
        // The previous event's data may be released now.
        *held = SseHeld {
            state: held.state,
            ..SseHeld::default()
        };
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut ev = sse_event::default();
        let event = loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let Some(event) = self.client.poll_event(left.or(timeout))? else {
                return Ok(false);
            };
            match &event {
                Event::State(state) => held.state = Some(*state),
                Event::Open { .. } => ev.kind = sse_event_kind::SSE_EVENT_OPEN,
                Event::ServerSent(message) => {
                    ev.kind = sse_event_kind::SSE_EVENT_MESSAGE;
                    let event_type = c_string(&message.event_type);
                    ev.r#type = event_type.as_ptr();
                    held.event_type = Some(event_type);
                    if let Some(id) = &message.id {
                        let id = c_string(id);
                        ev.id = id.as_ptr();
                        held.id = Some(id);
                    }
                    ev.data = message.data.as_ptr();
                    ev.len = message.data.len();
                }
                Event::Reconnecting { attempt, delay } => {
                    ev.kind = sse_event_kind::SSE_EVENT_RECONNECTING;
                    ev.attempt = *attempt;
                    ev.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                }
                Event::Error { code, message } => {
                    ev.kind = sse_event_kind::SSE_EVENT_ERROR;
                    ev.error = *code;
                    let text = c_string(message);
                    ev.data = text.as_ptr().cast();
                    ev.len = text.as_bytes().len();
                    held.text = Some(text);
                }
                Event::Terminated => ev.kind = sse_event_kind::SSE_EVENT_TERMINATED,
                // Not produced for SSE clients (no close handshake, no
                // sending): nothing to report.
                Event::Closed { .. }
                | Event::Resent { .. }
                | Event::Text(_)
                | Event::Binary(_)
                | Event::SocketIo(_) => continue,
            }
            break event;
        };
        ev.state = ffi_state(held.state.unwrap_or(State::Connecting));
        // Moving the event into `held` does not move its heap payload, so
        // `ev.data` stays valid.
        held.event = Some(event);
        out.write(ev);
        Ok(true)
    }
}

/// A NUL-terminated copy; a NUL inside reads as U+FFFD.
fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{FFFD}")).unwrap_or_default()
}

/// Stops the client for good: the stream is dropped at once and never
/// reopened. Returns at once; the events then drain to
/// `SSE_EVENT_TERMINATED` (a thread blocked in `sse_poll_event` is woken
/// by them). A second call returns `WS_ERR_CLOSED`. Any thread may call
/// this. The client must still be released with `sse_free`.
#[no_mangle]
pub extern "C" fn sse_close(client: *mut sse_client) -> ws_status {
    with_sse(client, SseClient::close)
}

/// The functions below (`sse_set_header` … `sse_reconnect`) fail with
/// `WS_ERR_NULL_ARGUMENT` for a NULL client and `WS_ERR_CLOSED` after
/// `sse_close` or once the client has terminated.
///
/// Sets header `name` to `value` for the next requests (`value` NULL
/// removes it; names are case-insensitive), e.g. a refreshed token after
/// a 401. The current stream is not affected: call `sse_reconnect` to use
/// it now. Values never appear in errors, events or logs. Both strings
/// are copied. An invalid name or value, `Last-Event-ID` (use option
/// `last_event_id`) or a header the client sets itself (Host,
/// Connection, Content-Length, Transfer-Encoding, …) gives
/// `WS_ERR_INVALID_ARGUMENT`. Returns at once; any thread.
#[no_mangle]
pub extern "C" fn sse_set_header(
    client: *mut sse_client,
    name: *const c_char,
    value: *const c_char,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL) and
        // NUL-terminated strings (or NULL).
        let (handle, name, value) = unsafe {
            (
                handle(client)?,
                ptr::required_str(name, "name")?,
                ptr::optional_str(value, "value")?,
            )
        };
        handle.client.set_header(name, value)
    })
}

/// The app went to the background: drops the stream and opens none until
/// `sse_resume` (which resumes from the last event id). The state is
/// `WS_STATE_RECONNECTING` meanwhile. Returns at once; any thread.
#[no_mangle]
pub extern "C" fn sse_pause(client: *mut sse_client) -> ws_status {
    with_sse(client, SseClient::pause)
}

/// Ends a pause and connects now; also cuts a running backoff wait short.
/// Returns at once; any thread.
#[no_mangle]
pub extern "C" fn sse_resume(client: *mut sse_client) -> ws_status {
    with_sse(client, SseClient::resume)
}

/// Network hint from the OS, as `ws_network_changed`: non-zero `available`
/// skips the rest of any backoff; zero makes no attempts until the network
/// returns. Returns at once; any thread.
#[no_mangle]
pub extern "C" fn sse_network_changed(client: *mut sse_client, available: i32) -> ws_status {
    with_sse(client, |c| c.network_changed(available != 0))
}

/// Drops the stream and opens a fresh one now (with `Last-Event-ID`),
/// without backoff and without counting a failed attempt: use it after
/// `sse_set_header` refreshed a token. Returns at once; any thread.
#[no_mangle]
pub extern "C" fn sse_reconnect(client: *mut sse_client) -> ws_status {
    with_sse(client, SseClient::reconnect)
}

/// A file descriptor that is readable whenever events are pending, as
/// `ws_event_fd`: when it is readable, call `sse_poll_event(client, 0, …)`
/// until `WS_TIMEOUT`. Do not read, write or close it: it belongs to the
/// client and is closed by `sse_free`. Returns the descriptor (≥ 0), or -1
/// with `ws_last_error` set. Any thread.
#[no_mangle]
pub extern "C" fn sse_event_fd(client: *mut sse_client) -> i32 {
    super::fd_call(|| {
        // SAFETY: the caller passes a live handle (or NULL).
        let handle = unsafe { handle(client)? };
        super::event_fd(handle.client.session())
    })
}

/// Releases a client and everything it owns, including its last event's
/// memory. If it was not closed, its stream is dropped.
///
/// Must come after every other call on this client has returned (no
/// thread may still be in `sse_poll_event`, …): wake a blocked poller with
/// `sse_close` and join it first. Calling with NULL is fine. Must not be
/// called twice.
#[no_mangle]
pub extern "C" fn sse_free(client: *mut sse_client) {
    panic::guard_void(|| {
        if !client.is_null() {
            // SAFETY: a handle from sse_connect, not freed before, with no
            // call in flight (the documented contract).
            drop(unsafe { Box::from_raw(client) });
        }
    })
}

/// Runs `call` on the client behind `client`, as a status.
fn with_sse(
    client: *mut sse_client,
    call: impl FnOnce(&SseClient) -> Result<(), Error>,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL).
        let handle = unsafe { handle(client)? };
        call(&handle.client)
    })
}
