//! What a Kotlin `jlong` handle points to: the client, plus the one event
//! a batch poll could not fit into the caller's buffer.
//!
//! The handle is a `Box<Handle>` turned into a pointer by `connect` and
//! back into a box exactly once by `free`. The Kotlin side (`NativeHandle`)
//! counts calls in flight so that `free` never runs under another call.

use std::time::Duration;

use ::jni::sys::jlong;
use parking_lot::Mutex;

use super::wire::{self, Encoded};
use crate::client::Client;
use crate::error::Error;
use crate::event::Event;

/// At most this many events per batch, whatever the buffer size: bounds
/// the time one call holds the poller.
const MAX_BATCH_EVENTS: usize = 4096;

pub(crate) struct Handle {
    pub client: Client,
    /// An event taken from the client that did not fit in the last batch
    /// (or whose payload must be fetched with `take_pending`). It is the
    /// next event the app sees.
    pending: Mutex<Option<Event>>,
}

impl Handle {
    pub fn new(client: Client) -> Handle {
        Handle {
            client,
            pending: Mutex::new(None),
        }
    }

    /// Boxes the handle for Kotlin. Released by [`Handle::free`].
    pub fn into_raw(self) -> jlong {
        Box::into_raw(Box::new(self)) as jlong
    }

    /// Borrows the handle behind `raw`.
    ///
    /// # Safety
    /// `raw` is 0 or came from [`Handle::into_raw`] and has not been freed,
    /// and is not freed while the returned reference is used. Kotlin's
    /// `NativeHandle` guarantees both with its in-flight call counter.
    pub unsafe fn from_raw<'a>(raw: jlong) -> Result<&'a Handle, Error> {
        if raw == 0 {
            return Err(Error::NullArgument("handle"));
        }
        // SAFETY: non-null, and live for the call by this function's contract.
        Ok(unsafe { &*(raw as *const Handle) })
    }

    /// Drops the handle behind `raw` (0 is ignored).
    ///
    /// # Safety
    /// `raw` is 0 or came from [`Handle::into_raw`], is freed only once, and
    /// no other call on it is in flight or will follow.
    pub unsafe fn free(raw: jlong) {
        if raw != 0 {
            // SAFETY: a pointer from `into_raw`, freed once (the contract).
            drop(unsafe { Box::from_raw(raw as *mut Handle) });
        }
    }

    /// Fills `out` with as many events as fit, waiting up to `timeout` for
    /// the first one only. Returns the bytes written (0: nothing came in
    /// time). An event whose payload cannot fit even in an empty buffer is
    /// written as a header flagged `PENDING`; its payload is then fetched
    /// with [`Handle::take_pending`]. Only one thread may poll a handle.
    pub fn poll_batch(&self, timeout: Option<Duration>, out: &mut [u8]) -> Result<usize, Error> {
        let mut pending = self.pending.lock();
        let mut written = 0;
        for n in 0..MAX_BATCH_EVENTS {
            let event = match pending.take() {
                Some(event) => event,
                None => {
                    let wait = if n == 0 {
                        timeout
                    } else {
                        Some(Duration::ZERO)
                    };
                    match self.client.poll_event(wait) {
                        Ok(Some(event)) => event,
                        Ok(None) => break,
                        // Events already written must reach the app; the
                        // failure will repeat on the next call.
                        Err(_) if written > 0 => break,
                        Err(error) => return Err(error),
                    }
                }
            };
            let terminated = event == Event::Terminated;
            match wire::encode(&event, &mut out[written..], written == 0) {
                Encoded::Whole(n) => written += n,
                Encoded::HeaderOnly => {
                    written += wire::HEADER;
                    *pending = Some(event);
                    break;
                }
                Encoded::NoRoom => {
                    *pending = Some(event);
                    break;
                }
            }
            if terminated {
                break;
            }
        }
        Ok(written)
    }

    /// The payload of the event left pending by the last batch (whose
    /// header was flagged `PENDING`), removing it. `f` receives the bytes.
    pub fn take_pending<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, Error> {
        let event = self.pending.lock().take().ok_or_else(|| {
            Error::InvalidArgument("no event payload is pending on this handle".into())
        })?;
        Ok(f(&wire::payload(&event)))
    }

    /// One event, unbatched (the simpler crossing, kept for comparison in
    /// the Kotlin benchmark). A pending event from a batch comes first.
    pub fn poll_one(&self, timeout: Option<Duration>) -> Result<Option<Event>, Error> {
        if let Some(event) = self.pending.lock().take() {
            return Ok(Some(event));
        }
        self.client.poll_event(timeout)
    }
}

/// `-1` waits forever, `0` does not wait, else milliseconds.
pub(crate) fn timeout(timeout_ms: i32) -> Result<Option<Duration>, Error> {
    crate::ffi::poll_timeout(timeout_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    /// A client that fails to connect (nothing listens on the port) and,
    /// with reconnection off, terminates on its own.
    fn failing_client() -> Handle {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let options = Options::from_json(Some(r#"{"reconnect": {"enabled": false}}"#)).unwrap();
        Handle::new(Client::connect(&format!("ws://127.0.0.1:{port}/"), options).unwrap())
    }

    fn kinds(buf: &[u8]) -> Vec<u8> {
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < buf.len() {
            kinds.push(buf[at]);
            let len = i32::from_le_bytes(buf[at + 16..at + 20].try_into().unwrap()) as usize;
            at += wire::HEADER + if buf[at] & wire::PENDING != 0 { 0 } else { len };
        }
        kinds
    }

    #[test]
    fn a_batch_drains_to_terminated_and_then_fails_closed() {
        let handle = failing_client();
        let mut buf = vec![0u8; 4096];
        let mut seen = Vec::new();
        for _ in 0..50 {
            let n = handle
                .poll_batch(Some(Duration::from_secs(5)), &mut buf)
                .unwrap();
            seen.extend(kinds(&buf[..n]));
            if seen.last() == Some(&wire::kind::TERMINATED) {
                break;
            }
        }
        assert_eq!(seen.last(), Some(&wire::kind::TERMINATED), "{seen:?}");
        assert!(seen.contains(&wire::kind::ERROR), "{seen:?}");
        assert!(matches!(
            handle.poll_batch(Some(Duration::ZERO), &mut buf),
            Err(Error::Closed(_))
        ));
    }

    #[test]
    fn a_small_buffer_leaves_events_pending_in_order() {
        let handle = failing_client();
        // Room for one header and a short payload: error messages do not
        // fit, so they come back as pending headers.
        let mut buf = vec![0u8; wire::HEADER + 4];
        let mut seen = Vec::new();
        for _ in 0..200 {
            let n = handle
                .poll_batch(Some(Duration::from_secs(5)), &mut buf)
                .unwrap();
            let batch = kinds(&buf[..n]);
            if batch.first().is_some_and(|k| k & wire::PENDING != 0) {
                let len = handle.take_pending(|bytes| bytes.len()).unwrap();
                assert!(len > 4);
            }
            seen.extend(batch.iter().map(|k| k & !wire::PENDING));
            if seen.last() == Some(&wire::kind::TERMINATED) {
                break;
            }
        }
        assert_eq!(seen.first(), Some(&wire::kind::STATE), "{seen:?}");
        assert_eq!(seen.last(), Some(&wire::kind::TERMINATED), "{seen:?}");
        assert!(handle.take_pending(|_| ()).is_err());
    }

    #[test]
    fn timeouts_follow_the_c_abi() {
        assert_eq!(timeout(-1), Ok(None));
        assert_eq!(timeout(0), Ok(Some(Duration::ZERO)));
        assert_eq!(timeout(25), Ok(Some(Duration::from_millis(25))));
        assert!(timeout(-2).is_err());
    }
}
