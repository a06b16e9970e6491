//! The C ABI (`include/tether.h` is generated from this module by cbindgen,
//! with the `ws_status` and `ws_error_code` enums of [`crate::error`]).
//!
//! The only place with `unsafe extern "C"`-facing code. Every function
//! checks its pointers, catches panics (`panic::guard`), writes its
//! out-parameters only on success and records failures for `ws_last_error`.
#![allow(non_camel_case_types)]
// Entry points for C: they check every pointer they can (NULL) and state
// the rest of the contract in their docs, as C functions do.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod last_error;
mod panic;
pub(crate) mod poll_set;
mod ptr;
/// The Socket.IO functions (`sio_*`).
pub mod sio;
pub mod sse;

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use tokio_tungstenite::tungstenite::Message;

use crate::client::Client;
use crate::error::Error;
pub use crate::error::{ws_error_code, ws_status};
use crate::event::Event;
use crate::options::Options;
use crate::state::State;
use ptr::Out;

/// Major version of this header; checked against the library's Cargo.toml.
pub const TETHER_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const TETHER_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const TETHER_VERSION_PATCH: u32 = 0;

/// A WebSocket client: one logical connection that Tether keeps up,
/// reconnecting as configured, until `ws_close`.
///
/// Opaque. Thread-safe: any thread may call `ws_send`, `ws_close` and
/// `ws_stats` while another thread polls. Only one thread may be inside
/// `ws_poll_event` at a time. Created by `ws_connect`, released by `ws_free`.
pub struct ws_client {
    client: Client,
    /// The event last returned by `ws_poll_event`: `ws_event.data` points
    /// into it, so it lives until the next poll or `ws_free`.
    held: Mutex<Held>,
    /// Set while a thread is inside `ws_poll_event`.
    polling: AtomicBool,
}

#[derive(Default)]
struct Held {
    event: Option<Event>,
    /// NUL-terminated copy of a textual payload (protocol, reason, error).
    text: Option<CString>,
    state: Option<State>,
}

/// Kind of an outgoing message (`ws_send`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMessageKind {
    /// UTF-8 text; `ws_send` checks the encoding.
    WS_TEXT = 1,
    /// Arbitrary bytes.
    WS_BINARY = 2,
}

/// Received as a plain integer so that a value outside the enum from C is
/// an error, not undefined behaviour. The header names it `ws_message_kind`
/// (see cbindgen.toml).
pub type ws_message_kind = i32;

/// State of a client, reported by `WS_EVENT_STATE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ws_state {
    /// First connection attempt under way.
    WS_STATE_CONNECTING,
    /// Connected: messages flow.
    WS_STATE_OPEN,
    /// Connection lost; waiting (`WS_EVENT_RECONNECTING`) or retrying.
    WS_STATE_RECONNECTING,
    /// Close handshake under way (asked by the app or by the server).
    WS_STATE_CLOSING,
    /// Finished: no more connections. `WS_EVENT_TERMINATED` follows.
    WS_STATE_CLOSED,
}

/// What a `ws_event` reports.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ws_event_kind {
    /// The state changed: `.state` is the new state.
    WS_EVENT_STATE,
    /// A handshake completed: `.data`/`.len` is the negotiated subprotocol
    /// (NUL-terminated; `.len` 0 and `.data` NULL when none).
    WS_EVENT_OPEN,
    /// A complete text message: `.data`/`.len`, valid UTF-8, not
    /// NUL-terminated.
    WS_EVENT_TEXT,
    /// A complete binary message: `.data`/`.len`.
    WS_EVENT_BINARY,
    /// A connection ended: `.close_code` (1006 if it ended without a close
    /// handshake, 1005 if the Close frame had no code) and the reason in
    /// `.data`/`.len` (NUL-terminated; an empty reason is "" with `.len` 0,
    /// never NULL).
    WS_EVENT_CLOSED,
    /// A reconnection is scheduled: attempt number `.attempt` (from 1)
    /// will start after `.delay_ms`.
    WS_EVENT_RECONNECTING,
    /// Something failed: `.error` is a `ws_error_code`, or an HTTP status
    /// (100..599) when the server refused the upgrade; `.data`/`.len` is a
    /// NUL-terminated message. Header values never appear in it.
    WS_EVENT_ERROR,
    /// The last event of this client: none will follow, and the next
    /// `ws_poll_event` returns `WS_ERR_CLOSED`.
    WS_EVENT_TERMINATED,
    /// Tracked outbox messages (`ws_send_tracked`) went out again, after a
    /// reconnect or a restart: `.data` points to `.len / 8` ids, each a
    /// `uint64_t` (aligned for it), oldest first.
    WS_EVENT_RESENT,
}

/// One event. Filled by `ws_poll_event`.
///
/// `data` points into memory owned by the client: it stays valid until the
/// next `ws_poll_event` on the same client, or `ws_free`. Copy what you
/// keep. Fields that do not apply to `kind` are 0 (or NULL).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ws_event {
    pub kind: ws_event_kind,
    /// The client's state after this event (the new state for
    /// `WS_EVENT_STATE`).
    pub state: ws_state,
    pub data: *const u8,
    pub len: usize,
    pub close_code: u16,
    pub error: i32,
    pub attempt: u32,
    pub delay_ms: u64,
}

impl Default for ws_event {
    /// All fields 0 or NULL (a state event, until filled).
    fn default() -> ws_event {
        ws_event {
            kind: ws_event_kind::WS_EVENT_STATE,
            state: ws_state::WS_STATE_CONNECTING,
            data: std::ptr::null(),
            len: 0,
            close_code: 0,
            error: 0,
            attempt: 0,
            delay_ms: 0,
        }
    }
}

/// Counters of one client, filled by `ws_stats`. (Named apart from the
/// function: C has one namespace for both.)
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ws_client_stats {
    /// Messages waiting in the outgoing queue, and their payload bytes.
    pub queued_messages: u64,
    pub queued_bytes: u64,
    /// Reconnection attempts scheduled so far.
    pub reconnects: u64,
    /// Last Ping round trip in microseconds; 0 before the first Pong.
    pub last_rtt_us: u64,
    /// Payload bytes received, and handed to the socket. Bytes handed to
    /// a socket that then died are counted: whether they arrived cannot be
    /// known (the server must deduplicate or acknowledge if it matters).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Messages received, and handed to the socket.
    pub messages_in: u64,
    pub messages_out: u64,
    /// Messages dropped by `queue.overflow` "drop_oldest".
    pub dropped_messages: u64,
    /// Payload bytes received but not yet polled (see `max_unpolled_bytes`).
    pub unpolled_bytes: u64,
}

/// The `ws_state` of a state: its one numbering, which the JNI wire shares.
pub(crate) fn ffi_state(state: State) -> ws_state {
    match state {
        State::Connecting => ws_state::WS_STATE_CONNECTING,
        State::Open => ws_state::WS_STATE_OPEN,
        State::Reconnecting => ws_state::WS_STATE_RECONNECTING,
        State::Closing => ws_state::WS_STATE_CLOSING,
        State::Closed => ws_state::WS_STATE_CLOSED,
    }
}

/// Opens a client for `url` and starts connecting in the background.
///
/// - `url`: NUL-terminated UTF-8 `ws://` or `wss://` URL, port 1-65535,
///   no `#fragment`. Required.
/// - `options_json`: NUL-terminated JSON object of options, or NULL (or an
///   empty string) for the defaults. Every key is optional; unknown keys
///   are rejected. Keys (defaults in brackets; README has the full table):
///   `headers` {} (not Host, Connection, Upgrade or Sec-WebSocket-*),
///   `subprotocols` [], `connect_timeout_ms` [10000] (DNS+TCP+TLS+upgrade),
///   `ping_interval_ms` [30000] (0: no heartbeat), `pong_timeout_ms`
///   [10000], `close_timeout_ms` [5000], `reconnect` {`enabled` [true],
///   `initial_delay_ms` [1000], `max_delay_ms` [30000], `multiplier` [2.0],
///   `jitter` [0.5], `max_attempts` [null: forever], `reset_after_ms`
///   [5000], `jitter_seed` [null], `max_retry_after_ms` [300000]}, `queue`
///   {`max_messages` [1000],
///   `max_bytes` [16 MiB] (a message that would go past a limit is
///   refused), `overflow` ["reject" | "drop_oldest"], `flush` ["on_open" |
///   "manual"]}, `max_message_bytes` [64 MiB], `max_frame_bytes` [16 MiB],
///   `max_unpolled_bytes` [16 MiB], `tls` {`roots` ["webpki" | "platform"],
///   `extra_ca_pem` [null], `pin_sha256` []}, `allow_insecure` [true],
///   `proxy` [null: "http://[user:password@]host:port"], `outbox` [null:
///   {`path` (required), `max_messages` [10000], `max_bytes` [64 MiB],
///   `fsync` ["always" | "batch"]}: the durable outbox, see `ws_send`].
/// - `out`: receives the new client on success; untouched on failure.
///
/// Returns at once: connection progress arrives as events
/// (`ws_poll_event`), starting with `WS_EVENT_STATE` (CONNECTING). Fails
/// with `WS_ERR_INVALID_ARGUMENT` for a malformed URL, an unsupported
/// scheme or bad options, `WS_ERR_NULL_ARGUMENT` for a NULL `url` or
/// `out`. The strings are copied: the caller keeps ownership. The client
/// must be released with `ws_free`. Any thread may call this.
#[no_mangle]
pub extern "C" fn ws_connect(
    url: *const c_char,
    options_json: *const c_char,
    out: *mut *mut ws_client,
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
        let options = Options::parse_json(options)?;
        let client = Client::connect(url, options)?;
        let handle = Box::new(ws_client {
            client,
            held: Mutex::new(Held::default()),
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
/// Returns `WS_OK` with `*out` filled, `WS_TIMEOUT` if nothing came in time
/// (`*out` untouched), or `WS_ERR_CLOSED` once `WS_EVENT_TERMINATED` has
/// been returned. Events come in order; nothing is dropped. While events
/// are not polled, Tether stops reading the socket once their payload
/// passes `max_unpolled_bytes`, and resumes as they are polled.
///
/// `out->data` stays valid until the next `ws_poll_event` on this client or
/// `ws_free`. Only one thread at a time may poll a client (a second one
/// gets `WS_ERR_INVALID_ARGUMENT`); `ws_close` from another thread wakes
/// a blocked poller (the events then drain to `WS_EVENT_TERMINATED`). Do not
/// call this from a context that must not block unless `timeout_ms` is 0.
#[no_mangle]
pub extern "C" fn ws_poll_event(
    client: *mut ws_client,
    timeout_ms: i32,
    out: *mut ws_event,
) -> ws_status {
    poll_call(|| {
        // SAFETY: the caller passes a live handle (or NULL) and a writable
        // ws_event (or NULL).
        let (handle, out) = unsafe { (ptr::client(client)?, Out::new(out, "out")?) };
        let timeout = poll_timeout(timeout_ms)?;
        let _polling = PollingGuard::enter(&handle.polling)?;
        handle.poll_into(timeout, out)
    })
}

/// Runs the body of a `*_poll_event`: `Ok(false)` (nothing came in time)
/// is `WS_TIMEOUT`; errors and panics are statuses as in `panic::guard`.
pub(crate) fn poll_call(body: impl FnOnce() -> Result<bool, Error>) -> ws_status {
    let mut timed_out = false;
    let code = panic::guard(|| {
        timed_out = !body()?;
        Ok(())
    });
    if code == ws_status::WS_OK && timed_out {
        ws_status::WS_TIMEOUT
    } else {
        code
    }
}

/// A poll's `timeout_ms`: -1 waits forever, 0 or more milliseconds.
pub(crate) fn poll_timeout(timeout_ms: i32) -> Result<Option<Duration>, Error> {
    match timeout_ms {
        -1 => Ok(None),
        t if t < 0 => Err(Error::InvalidArgument(format!(
            "timeout_ms {t} is invalid: use -1 (forever), 0 or a positive number"
        ))),
        t => Ok(Some(Duration::from_millis(t as u64))),
    }
}

/// Marks a client as being polled; the mark goes when this is dropped, even
/// if the poll panicked (the panic is then reported, and polling can go on).
struct PollingGuard<'a>(&'a AtomicBool);

impl<'a> PollingGuard<'a> {
    fn enter(flag: &'a AtomicBool) -> Result<PollingGuard<'a>, Error> {
        if flag.swap(true, Ordering::AcqRel) {
            return Err(Error::InvalidArgument(
                "another thread is already polling this client".into(),
            ));
        }
        Ok(PollingGuard(flag))
    }
}

impl Drop for PollingGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl ws_client {
    /// Polls one event into `out`; false if none came in time.
    fn poll_into(&self, timeout: Option<Duration>, out: Out<ws_event>) -> Result<bool, Error> {
        let mut held = self.held.lock();
        // The previous event's data may be released now.
        held.event = None;
        held.text = None;
        let Some(event) = self.client.poll_event(timeout)? else {
            return Ok(false);
        };
        let mut ev = ws_event::default();
        let mut text = None;
        match &event {
            Event::State(state) => {
                held.state = Some(*state);
            }
            Event::Open { protocol } => {
                ev.kind = ws_event_kind::WS_EVENT_OPEN;
                text = protocol.clone();
            }
            Event::Text(message) => {
                ev.kind = ws_event_kind::WS_EVENT_TEXT;
                ev.data = message.as_ptr();
                ev.len = message.len();
            }
            Event::Binary(message) => {
                ev.kind = ws_event_kind::WS_EVENT_BINARY;
                ev.data = message.as_ptr();
                ev.len = message.len();
            }
            Event::Closed { code, reason } => {
                ev.kind = ws_event_kind::WS_EVENT_CLOSED;
                ev.close_code = *code;
                text = Some(reason.clone());
            }
            Event::Reconnecting { attempt, delay } => {
                ev.kind = ws_event_kind::WS_EVENT_RECONNECTING;
                ev.attempt = *attempt;
                ev.delay_ms = delay.as_millis() as u64;
            }
            Event::Error { code, message } => {
                ev.kind = ws_event_kind::WS_EVENT_ERROR;
                ev.error = *code;
                text = Some(message.clone());
            }
            Event::Terminated => {
                ev.kind = ws_event_kind::WS_EVENT_TERMINATED;
            }
            Event::Resent { ids } => {
                ev.kind = ws_event_kind::WS_EVENT_RESENT;
                ev.data = ids.as_ptr().cast();
                ev.len = std::mem::size_of_val(ids.as_slice());
            }
            // Only Socket.IO clients get these, and they are polled with
            // sio_poll_event.
            Event::SocketIo(_) => {
                ev.kind = ws_event_kind::WS_EVENT_ERROR;
                ev.error = ws_status::WS_ERR_INTERNAL as i32;
                text = Some("a Socket.IO event on a WebSocket client".to_string());
            }
            // Only SSE clients (sse_*) receive these; shown as text if ever.
            Event::ServerSent(message) => {
                ev.kind = ws_event_kind::WS_EVENT_TEXT;
                ev.data = message.data.as_ptr();
                ev.len = message.data.len();
            }
        }
        ev.state = ffi_state(held.state.unwrap_or(State::Connecting));
        if let Some(text) = text {
            let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
            ev.data = text.as_ptr().cast();
            ev.len = text.as_bytes().len();
            held.text = Some(text);
        }
        // Moving the event into `held` does not move its heap payload, so
        // `ev.data` stays valid.
        held.event = Some(event);
        out.write(ev);
        Ok(true)
    }
}

/// Queues a message for sending; returns at once.
///
/// - `kind`: `WS_TEXT` (then `data` must be UTF-8) or `WS_BINARY`.
/// - `data`/`len`: the payload, copied before return: the caller keeps
///   ownership. `data` may be NULL only when `len` is 0 (NULL with a
///   length gives `WS_ERR_NULL_ARGUMENT`).
///
/// While the connection is down the message waits in the outgoing queue,
/// in order, and goes out after the next open. When the queue is at
/// `queue.max_messages` or `queue.max_bytes`, returns `WS_ERR_QUEUE_FULL`
/// and takes nothing (unless `queue.overflow` is "drop_oldest"). After
/// `ws_close`, or once the client has ended by itself (e.g. a 4xx answer,
/// `max_attempts` reached), returns `WS_ERR_CLOSED`: nothing is queued for
/// nobody. Messages still queued when a client ends are reported by a
/// `WS_ERROR_UNSENT` event. Any thread may call this.
///
/// `WS_OK` means queued, not delivered: a message handed to a socket that
/// then dies may or may not have arrived (see `ws_stats`).
///
/// With the `outbox` option, `WS_OK` means stored: the message is in the
/// outbox file (with `"fsync": "always"` on stable storage, with `"batch"`
/// synced within 100 ms) and survives the app being killed; it leaves the
/// outbox only once the server has provably read it (a Ping written after
/// it was answered), and is sent again after a reconnect or restart until
/// then (it may arrive twice). The outbox's limits apply instead of the
/// queue's (`WS_ERR_QUEUE_FULL`), and a store that cannot be written (disk
/// full, …) gives `WS_ERR_INTERNAL` with the reason.
#[no_mangle]
pub extern "C" fn ws_send(
    client: *mut ws_client,
    kind: ws_message_kind,
    data: *const u8,
    len: usize,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL) and `len`
        // readable bytes at `data` (or NULL with len 0).
        let (handle, payload) = unsafe { (ptr::client(client)?, ptr::bytes(data, len, "data")?) };
        // Straight from the caller's bytes: a large message is copied once,
        // into its frame (Client::send_binary).
        match text_or_binary(kind, payload)? {
            Some(text) => handle.client.send_text(text),
            None => handle.client.send_binary(payload),
        }
    })
}

/// Stores a message in the durable outbox and keeps it there until
/// `ws_ack`: it is sent now if open, and again after every reconnect and
/// restart until acked (at-least-once, in its original order). Needs the
/// `outbox` option (else `WS_ERR_INVALID_ARGUMENT`).
///
/// - `kind`, `data`, `len`: as for `ws_send`.
/// - `out_id`: receives the message's id once it is stored. Ids grow, across
///   restarts too, so a server can drop duplicates; `WS_EVENT_RESENT` names
///   the ids that went out again.
///
/// Fails like `ws_send` (`WS_ERR_QUEUE_FULL` when the outbox is full, taking
/// nothing). Any thread may call this.
#[no_mangle]
pub extern "C" fn ws_send_tracked(
    client: *mut ws_client,
    kind: ws_message_kind,
    data: *const u8,
    len: usize,
    out_id: *mut u64,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: as for `ws_send`, and a writable `out_id` (or NULL).
        let (handle, payload, out) = unsafe {
            (
                ptr::client(client)?,
                ptr::bytes(data, len, "data")?,
                Out::new(out_id, "out_id")?,
            )
        };
        let id = handle.client.send_tracked(message(kind, payload)?)?;
        out.write(id);
        Ok(())
    })
}

/// The server confirmed the tracked message `id` (`ws_send_tracked`): it
/// leaves the outbox and is not sent again. An id that is not pending (never
/// tracked, already acked) gives `WS_ERR_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn ws_ack(client: *mut ws_client, id: u64) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL).
        let handle = unsafe { ptr::client(client)? };
        handle.client.ack(id)
    })
}

/// Writes to `out_count` how many messages the outbox holds: not yet proven
/// read by the server, or tracked and not acked. Needs the `outbox` option.
#[no_mangle]
pub extern "C" fn ws_outbox_pending(client: *mut ws_client, out_count: *mut u64) -> ws_status {
    panic::guard(|| {
        // SAFETY: a live handle (or NULL) and a writable `out_count` (or NULL).
        let (handle, out) = unsafe { (ptr::client(client)?, Out::new(out_count, "out_count")?) };
        out.write(handle.client.outbox_pending()?);
        Ok(())
    })
}

/// The message of `ws_send` and `ws_send_tracked`, checked.
fn message(kind: ws_message_kind, payload: &[u8]) -> Result<Message, Error> {
    Ok(match text_or_binary(kind, payload)? {
        Some(text) => Message::text(text),
        None => Message::binary(payload.to_vec()),
    })
}

/// `payload` as the text it is (`WS_TEXT`, checked UTF-8), or None for
/// `WS_BINARY`; any other kind is refused.
fn text_or_binary(kind: ws_message_kind, payload: &[u8]) -> Result<Option<&str>, Error> {
    match kind {
        k if k == WsMessageKind::WS_TEXT as i32 => {
            std::str::from_utf8(payload).map(Some).map_err(|e| {
                Error::InvalidArgument(format!(
                    "text message is not valid UTF-8 (at byte {}); send it as WS_BINARY",
                    e.valid_up_to()
                ))
            })
        }
        k if k == WsMessageKind::WS_BINARY as i32 => Ok(None),
        other => Err(Error::InvalidArgument(format!(
            "message kind {other} is invalid: use WS_TEXT (1) or WS_BINARY (2)"
        ))),
    }
}

/// Closes the client: sends a Close frame with `code` and `reason` after
/// the messages already queued, waits (up to `close_timeout_ms`) for the
/// server's answer, and stops reconnecting for good.
///
/// - `code`: 1000 (normal), 1001, 1002, 1003, 1007-1014 or 3000-4999.
///   Codes RFC 6455 forbids on the wire (1005, 1006, 1015, below 1000, …)
///   give `WS_ERR_INVALID_ARGUMENT`.
/// - `reason`: NUL-terminated UTF-8 of at most 123 bytes, or NULL.
///
/// Returns at once. The events then drain to `WS_EVENT_TERMINATED` (a
/// thread blocked in `ws_poll_event` is woken by them). A second call
/// returns `WS_ERR_CLOSED`. Any thread may call this. The client must
/// still be released with `ws_free`.
#[no_mangle]
pub extern "C" fn ws_close(client: *mut ws_client, code: u16, reason: *const c_char) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL) and a
        // NUL-terminated string (or NULL).
        let (handle, reason) =
            unsafe { (ptr::client(client)?, ptr::optional_str(reason, "reason")?) };
        handle.client.close(code, reason.unwrap_or(""))
    })
}

/// The functions below (`ws_pause` … `ws_set_header`) fail with
/// `WS_ERR_NULL_ARGUMENT` for a NULL client and `WS_ERR_CLOSED` after
/// `ws_close`.
///
/// The app went to the background (or otherwise wants no connection for
/// now): closes the connection politely (code 1001) and makes no new one
/// until `ws_resume`. The outgoing queue is kept and `ws_send` still
/// queues. Meanwhile the state is `WS_STATE_RECONNECTING` and no
/// `WS_EVENT_RECONNECTING` is reported. Returns at once; any thread.
#[no_mangle]
pub extern "C" fn ws_pause(client: *mut ws_client) -> ws_status {
    with_client(client, Client::pause)
}

/// Ends a pause and connects now; also cuts a running backoff wait short.
/// Returns at once; any thread.
#[no_mangle]
pub extern "C" fn ws_resume(client: *mut ws_client) -> ws_status {
    with_client(client, Client::resume)
}

/// Network hint from the OS (e.g. Android's ConnectivityManager, iOS's
/// NWPathMonitor). `available` non-zero: the network is back: skip the rest
/// of any backoff and try at once, or if a connection is open, check it
/// with a Ping now. Zero: the network is gone: make no attempts until it
/// returns (an open connection is checked with a Ping and dropped if dead).
/// Returns at once; any thread.
#[no_mangle]
pub extern "C" fn ws_network_changed(client: *mut ws_client, available: i32) -> ws_status {
    with_client(client, |c| c.network_changed(available != 0))
}

/// Forces a fresh connection now: closes the current one politely (1001)
/// if open, then connects at once, without backoff and without counting a
/// failed attempt. Use it after `ws_set_header` refreshed a token. Queued
/// messages are kept. Returns at once; any thread.
#[no_mangle]
pub extern "C" fn ws_reconnect(client: *mut ws_client) -> ws_status {
    with_client(client, Client::reconnect)
}

/// With option `"queue": {"flush": "manual"}`: after an open, the messages
/// queued before it (the backlog) wait until this call, while what the app
/// sends meanwhile (its auth or resubscribe message) goes out first.
/// Then the backlog goes, in order, before anything sent later. Without
/// that option there is nothing to flush and this does nothing.
/// Returns at once; any thread.
#[no_mangle]
pub extern "C" fn ws_flush(client: *mut ws_client) -> ws_status {
    with_client(client, Client::flush)
}

/// Sets header `name` to `value` for the next handshakes (`value` NULL
/// removes it; names are case-insensitive). The current connection is not
/// affected: call `ws_reconnect` to use it now, e.g. after refreshing an
/// expired token on a 401. Values never appear in errors, events or logs.
/// Both strings are copied. An invalid name or value, or a header the
/// handshake sets itself (Host, Sec-WebSocket-*, …), gives
/// `WS_ERR_INVALID_ARGUMENT`. Returns at once; any thread.
#[no_mangle]
pub extern "C" fn ws_set_header(
    client: *mut ws_client,
    name: *const c_char,
    value: *const c_char,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL) and
        // NUL-terminated strings (or NULL).
        let (handle, name, value) = unsafe {
            (
                ptr::client(client)?,
                ptr::required_str(name, "name")?,
                ptr::optional_str(value, "value")?,
            )
        };
        handle.client.set_header(name, value)
    })
}

/// A file descriptor that is readable whenever events are pending, so the
/// app can wait in its own run loop (epoll, kqueue, ALooper_addFd,
/// DispatchSource) instead of a thread blocked in `ws_poll_event`. When it
/// is readable, call `ws_poll_event(client, 0, …)` until `WS_TIMEOUT`:
/// that also clears it. Do not read, write or close it: it belongs to the
/// client, stays the same for every call, stays valid after `ws_close`, and
/// is closed by `ws_free`. Returns the descriptor (≥ 0), or -1 with
/// `ws_last_error` set. Any thread.
#[no_mangle]
pub extern "C" fn ws_event_fd(client: *mut ws_client) -> i32 {
    fd_call(|| {
        // SAFETY: the caller passes a live handle (or NULL).
        let handle = unsafe { ptr::client(client)? };
        event_fd(&handle.client)
    })
}

/// Runs the body of a `*_event_fd`: the descriptor, or -1 with
/// `ws_last_error` set.
pub(crate) fn fd_call(body: impl FnOnce() -> Result<i32, Error>) -> i32 {
    let mut fd = -1;
    panic::guard(|| {
        fd = body()?;
        Ok(())
    });
    fd
}

/// The readiness descriptor of a client of any kind (Unix-like systems).
#[cfg(unix)]
pub(crate) fn event_fd(client: &Client) -> Result<i32, Error> {
    client.event_fd()
}

#[cfg(not(unix))]
pub(crate) fn event_fd(_client: &Client) -> Result<i32, Error> {
    Err(Error::InvalidArgument(
        "event descriptors are available on Unix-like systems only".into(),
    ))
}

/// Severity of a log line (`ws_set_log_callback`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsLogLevel {
    /// No logging (the default).
    WS_LOG_OFF = 0,
    WS_LOG_ERROR = 1,
    WS_LOG_WARN = 2,
    WS_LOG_INFO = 3,
    WS_LOG_DEBUG = 4,
}

/// Received as a plain integer (see `ws_message_kind`); the header shows
/// the enum.
pub type ws_log_level = i32;

/// Receives one log line: `message` is NUL-terminated UTF-8, valid only
/// during the call. Called on Tether's runtime thread (or the thread of the
/// call that logs): return quickly, and do not call back into Tether.
pub type ws_log_callback =
    Option<extern "C" fn(user_data: *mut c_void, level: ws_log_level, message: *const c_char)>;

/// The app's user data pointer, handed back to its callback.
struct UserData(*mut c_void);
// SAFETY: Tether never dereferences it; `ws_set_log_callback` requires the
// app to make its callback and user data usable from any thread.
unsafe impl Send for UserData {}
// SAFETY: as above: shared only to be passed back, never dereferenced.
unsafe impl Sync for UserData {}

impl UserData {
    fn get(&self) -> *mut c_void {
        self.0
    }
}

/// Routes Tether's log lines (connects, opens, closes, errors, reconnects;
/// never header values or payloads) to `callback`, for Logcat or os_log.
/// Lines at `level` or more severe are delivered: `WS_LOG_ERROR` …
/// `WS_LOG_DEBUG`. `WS_LOG_OFF` or a NULL `callback` turns logging off (the
/// default); another value gives `WS_ERR_INVALID_ARGUMENT`. Process-wide:
/// the last call wins. `user_data` is passed back
/// untouched; it and `callback` must stay valid and usable from any thread
/// until logging is turned off or replaced.
#[no_mangle]
pub extern "C" fn ws_set_log_callback(
    callback: ws_log_callback,
    user_data: *mut c_void,
    level: ws_log_level,
) -> ws_status {
    panic::guard(|| {
        use crate::logging::{set_sink, Level};
        let level = match level {
            0 => None,
            1 => Some(Level::Error),
            2 => Some(Level::Warn),
            3 => Some(Level::Info),
            4 => Some(Level::Debug),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "log level {other} is invalid: use WS_LOG_OFF (0) to WS_LOG_DEBUG (4)"
                )))
            }
        };
        match (callback, level) {
            (Some(callback), Some(level)) => {
                let user_data = UserData(user_data);
                set_sink(Some((
                    level,
                    std::sync::Arc::new(move |level: Level, line: &str| {
                        let line = CString::new(line.replace('\0', " ")).unwrap_or_default();
                        callback(user_data.get(), level as i32, line.as_ptr());
                    }),
                )));
            }
            _ => set_sink(None),
        }
        Ok(())
    })
}

/// Runs `call` on the client behind `client`, as a status.
fn with_client(
    client: *mut ws_client,
    call: impl FnOnce(&Client) -> Result<(), Error>,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL).
        let handle = unsafe { ptr::client(client)? };
        call(&handle.client)
    })
}

/// Releases a client and everything it owns, including the `data` of its
/// last event. If it was not closed, the connection is closed politely
/// (code 1001) in the background.
///
/// Must come after every other call on this client has returned (no
/// thread may still be in `ws_poll_event`, `ws_send`, …): wake a blocked
/// poller with `ws_close` and join it first. Calling with NULL is fine.
/// Must not be called twice.
#[no_mangle]
pub extern "C" fn ws_free(client: *mut ws_client) {
    panic::guard_void(|| {
        if !client.is_null() {
            // SAFETY: a handle from ws_connect, not freed before, with no
            // call in flight (the documented contract).
            drop(unsafe { Box::from_raw(client) });
        }
    })
}

/// The message of the last call that failed on this thread, or NULL if
/// none has. NUL-terminated UTF-8, owned by Tether: valid until the next
/// failing call on the same thread. Successful calls leave it unchanged.
#[no_mangle]
pub extern "C" fn ws_last_error() -> *const c_char {
    last_error::last()
}

/// Writes the client's counters to `out`. Any thread may call this.
#[no_mangle]
pub extern "C" fn ws_stats(client: *mut ws_client, out: *mut ws_client_stats) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL) and a writable
        // ws_stats (or NULL).
        let (handle, out) = unsafe { (ptr::client(client)?, Out::new(out, "out")?) };
        let s = handle.client.stats();
        out.write(ws_client_stats {
            queued_messages: s.queued_messages,
            queued_bytes: s.queued_bytes,
            reconnects: s.reconnects,
            last_rtt_us: s.last_rtt.map_or(0, |d| d.as_micros() as u64),
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            messages_in: s.messages_in,
            messages_out: s.messages_out,
            dropped_messages: s.dropped_messages,
            unpolled_bytes: s.unpolled_bytes,
        });
        Ok(())
    })
}

/// The library's version, e.g. "0.1.0": a static NUL-terminated string.
/// Compare with `TETHER_VERSION_MAJOR`/`_MINOR`/`_PATCH` of the header.
#[no_mangle]
pub extern "C" fn ws_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Clients created by `ws_connect` and not yet released by `ws_free`, in
/// this process. For leak checks in tests.
#[no_mangle]
pub extern "C" fn ws_live_clients() -> usize {
    Client::live_count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_may_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ws_client>();
        send_sync::<Client>();
    }

    #[test]
    fn header_version_matches_cargo() {
        assert_eq!(
            TETHER_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            TETHER_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            TETHER_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
    }

    #[test]
    fn statuses_match_the_core_errors() {
        let cases = [
            (Error::NullArgument("x"), ws_status::WS_ERR_NULL_ARGUMENT),
            (
                Error::InvalidArgument(String::new()),
                ws_status::WS_ERR_INVALID_ARGUMENT,
            ),
            (
                Error::QueueFull(String::new()),
                ws_status::WS_ERR_QUEUE_FULL,
            ),
            (Error::Closed(String::new()), ws_status::WS_ERR_CLOSED),
            (Error::Internal(String::new()), ws_status::WS_ERR_INTERNAL),
        ];
        for (error, status) in cases {
            assert_eq!(panic::guard(|| Err(error.clone())), status);
            assert_eq!(error.status(), status as i32);
        }
    }

    #[test]
    fn a_panic_becomes_an_internal_error_with_a_message() {
        let code = panic::guard(|| panic!("boom"));
        assert_eq!(code, ws_status::WS_ERR_INTERNAL);
        // SAFETY: ws_last_error returns NULL or a valid C string.
        let msg = unsafe { std::ffi::CStr::from_ptr(ws_last_error()) };
        assert!(msg.to_str().unwrap().contains("boom"));
    }
}
