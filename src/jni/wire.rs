//! How events cross JNI: a compact little-endian record per event, written
//! into a direct `ByteBuffer` that the Kotlin poller owns and reuses.
//!
//! Pure: no JNI here, so the format is tested without a JVM. The Kotlin
//! decoder is `dev.tether.internal.EventDecoder` (keep the two in step).
//!
//! ```text
//! offset  size  field
//!      0     1  kind (ws_event_kind numbering); | 0x80: payload pending,
//!               fetch it with NativeBridge.takePending (it did not fit)
//!      1     1  state, for kind STATE (ws_state numbering)
//!      2     2  close code (CLOSED)
//!      4     4  error code (ERROR) or attempt (RECONNECTING)
//!      8     8  delay in ms (RECONNECTING)
//!     16     4  payload length in bytes
//!     20   len  payload: message bytes (TEXT, BINARY), UTF-8 subprotocol
//!               (OPEN), reason (CLOSED), message (ERROR), or the ids
//!               (RESENT): len / 8 little-endian u64s, oldest first
//! ```

use std::borrow::Cow;

use crate::event::Event;
use crate::ffi::{ffi_state, ws_event_kind};
use crate::state::State;

/// Bytes of a record before its payload.
pub(crate) const HEADER: usize = 20;
/// Set in the kind byte when the payload did not fit and waits in the
/// handle (`takePending`).
pub(crate) const PENDING: u8 = 0x80;

/// The kind byte: the C ABI's `ws_event_kind` values, taken from there.
pub(crate) mod kind {
    use super::ws_event_kind;

    pub(crate) const STATE: u8 = ws_event_kind::WS_EVENT_STATE as u8;
    pub(crate) const OPEN: u8 = ws_event_kind::WS_EVENT_OPEN as u8;
    pub(crate) const TEXT: u8 = ws_event_kind::WS_EVENT_TEXT as u8;
    pub(crate) const BINARY: u8 = ws_event_kind::WS_EVENT_BINARY as u8;
    pub(crate) const CLOSED: u8 = ws_event_kind::WS_EVENT_CLOSED as u8;
    pub(crate) const RECONNECTING: u8 = ws_event_kind::WS_EVENT_RECONNECTING as u8;
    pub(crate) const ERROR: u8 = ws_event_kind::WS_EVENT_ERROR as u8;
    pub(crate) const TERMINATED: u8 = ws_event_kind::WS_EVENT_TERMINATED as u8;
    pub(crate) const RESENT: u8 = ws_event_kind::WS_EVENT_RESENT as u8;
}

/// What [`encode`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoded {
    /// The whole record was written: this many bytes.
    Whole(usize),
    /// Only the header fitted (flagged [`PENDING`]): the payload must be
    /// fetched separately. `HEADER` bytes were written.
    HeaderOnly,
    /// Not even the header fitted; nothing was written.
    NoRoom,
}

/// The state byte: the C ABI's `ws_state` value of `state`.
pub(crate) fn state_code(state: State) -> u8 {
    ffi_state(state) as u8
}

/// The payload bytes of an event (empty for events without one).
pub(crate) fn payload(event: &Event) -> Cow<'_, [u8]> {
    match event {
        Event::Text(text) => Cow::Borrowed(text.as_bytes()),
        Event::Binary(bytes) => Cow::Borrowed(bytes),
        Event::Open { protocol } => Cow::Borrowed(protocol.as_deref().unwrap_or("").as_bytes()),
        Event::Closed { reason, .. } => Cow::Borrowed(reason.as_bytes()),
        Event::Error { message, .. } => Cow::Borrowed(message.as_bytes()),
        // Little-endian u64 ids, oldest first.
        Event::Resent { ids } => Cow::Owned(ids.iter().flat_map(|id| id.to_le_bytes()).collect()),
        // SSE clients have no JNI binding yet: their data reads as text.
        Event::ServerSent(event) => Cow::Borrowed(event.data.as_bytes()),
        Event::State(_) | Event::Reconnecting { .. } | Event::Terminated | Event::SocketIo(_) => {
            Cow::Borrowed(&[])
        }
    }
}

/// The fixed fields of an event: kind, state, close code, error/attempt,
/// delay in ms.
pub(crate) fn fields(event: &Event) -> (u8, u8, u16, i32, i64) {
    match event {
        Event::State(state) => (kind::STATE, state_code(*state), 0, 0, 0),
        Event::Open { .. } => (kind::OPEN, 0, 0, 0, 0),
        Event::Text(_) | Event::ServerSent(_) => (kind::TEXT, 0, 0, 0, 0),
        Event::Binary(_) => (kind::BINARY, 0, 0, 0, 0),
        Event::Closed { code, .. } => (kind::CLOSED, 0, *code, 0, 0),
        Event::Reconnecting { attempt, delay } => (
            kind::RECONNECTING,
            0,
            0,
            i32::try_from(*attempt).unwrap_or(i32::MAX),
            i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
        ),
        Event::Error { code, .. } => (kind::ERROR, 0, 0, *code, 0),
        Event::Terminated => (kind::TERMINATED, 0, 0, 0, 0),
        Event::Resent { .. } => (kind::RESENT, 0, 0, 0, 0),
        // Socket.IO clients are not reached through this binding yet.
        Event::SocketIo(_) => (kind::ERROR, 0, 0, -5, 0),
    }
}

/// Writes the record of `event` at the start of `out`. When the payload
/// does not fit and `allow_pending`, writes the header alone, flagged.
pub(crate) fn encode(event: &Event, out: &mut [u8], allow_pending: bool) -> Encoded {
    if out.len() < HEADER {
        return Encoded::NoRoom;
    }
    let data = payload(event);
    let whole = HEADER + data.len();
    let fits = out.len() >= whole;
    if !fits && !allow_pending {
        return Encoded::NoRoom;
    }
    let (kind, state, close_code, code, delay) = fields(event);
    out[0] = if fits { kind } else { kind | PENDING };
    out[1] = state;
    out[2..4].copy_from_slice(&close_code.to_le_bytes());
    out[4..8].copy_from_slice(&code.to_le_bytes());
    out[8..16].copy_from_slice(&delay.to_le_bytes());
    // Payloads are bounded by max_message_bytes (usize), but a Java array
    // holds at most i32::MAX: larger ones are refused when connecting.
    let len = i32::try_from(data.len()).unwrap_or(i32::MAX);
    out[16..20].copy_from_slice(&len.to_le_bytes());
    if fits {
        out[HEADER..whole].copy_from_slice(&data);
        Encoded::Whole(whole)
    } else {
        Encoded::HeaderOnly
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

    fn le_i32(b: &[u8]) -> i32 {
        i32::from_le_bytes(b.try_into().unwrap())
    }

    #[test]
    fn a_text_record_carries_its_bytes() {
        let mut buf = [0u8; 64];
        let event = Event::Text(Utf8Bytes::from_static("héllo"));
        assert_eq!(encode(&event, &mut buf, true), Encoded::Whole(HEADER + 6));
        assert_eq!(buf[0], kind::TEXT);
        assert_eq!(le_i32(&buf[16..20]), 6);
        assert_eq!(&buf[HEADER..HEADER + 6], "héllo".as_bytes());
    }

    #[test]
    fn fixed_fields_land_at_their_offsets() {
        let mut buf = [0u8; 64];
        let r = Event::Reconnecting {
            attempt: 3,
            delay: Duration::from_millis(1500),
        };
        assert_eq!(encode(&r, &mut buf, false), Encoded::Whole(HEADER));
        assert_eq!(buf[0], kind::RECONNECTING);
        assert_eq!(le_i32(&buf[4..8]), 3);
        assert_eq!(i64::from_le_bytes(buf[8..16].try_into().unwrap()), 1500);

        let c = Event::Closed {
            code: 1001,
            reason: "bye".into(),
        };
        assert_eq!(encode(&c, &mut buf, false), Encoded::Whole(HEADER + 3));
        assert_eq!(u16::from_le_bytes([buf[2], buf[3]]), 1001);

        let s = Event::State(State::Closing);
        encode(&s, &mut buf, false);
        assert_eq!((buf[0], buf[1]), (kind::STATE, 3));

        let e = Event::Error {
            code: -107,
            message: "lost".into(),
        };
        encode(&e, &mut buf, false);
        assert_eq!((buf[0], le_i32(&buf[4..8])), (kind::ERROR, -107));
    }

    #[test]
    fn a_resent_record_carries_its_ids_little_endian() {
        let mut buf = [0u8; 64];
        let ids = vec![1, 0x0102_0304_0506_0708, u64::MAX >> 1];
        let event = Event::Resent { ids: ids.clone() };
        assert_eq!(encode(&event, &mut buf, false), Encoded::Whole(HEADER + 24));
        assert_eq!(buf[0], kind::RESENT);
        assert_eq!(le_i32(&buf[16..20]), 24);
        let decoded: Vec<u64> = buf[HEADER..HEADER + 24]
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(decoded, ids);
        assert_eq!(buf[HEADER + 8], 0x08, "least significant byte first");
    }

    #[test]
    fn a_payload_too_big_for_the_buffer_is_left_pending() {
        let mut buf = [0u8; HEADER + 4];
        let big = Event::Binary(Bytes::from(vec![7u8; 100]));
        assert_eq!(encode(&big, &mut buf, false), Encoded::NoRoom);
        assert_eq!(encode(&big, &mut buf, true), Encoded::HeaderOnly);
        assert_eq!(buf[0], kind::BINARY | PENDING);
        assert_eq!(le_i32(&buf[16..20]), 100);
        let mut tiny = [0u8; HEADER - 1];
        assert_eq!(encode(&big, &mut tiny, true), Encoded::NoRoom);
    }
}
