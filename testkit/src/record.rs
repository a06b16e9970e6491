//! What the server saw, kept in order, with blocking waits for tests:
//! every `next` takes the next entry nobody has taken yet, waiting at most
//! its timeout for one to come.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// One handshake request, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The connection it came on (ids count from 1, per server).
    pub connection: u64,
    pub method: String,
    /// The request target, e.g. `/chat?room=1`.
    pub path: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// A whole message the client sent (fragments joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub connection: u64,
    pub kind: MessageKind,
    pub data: Vec<u8>,
}

impl Message {
    /// The text of a text message.
    pub fn text(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Text => std::str::from_utf8(&self.data).ok(),
            MessageKind::Binary => None,
        }
    }
}

/// A Close frame the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientClose {
    pub connection: u64,
    /// `None`: a Close without a code.
    pub code: Option<u16>,
    pub reason: String,
}

/// Entries in arrival order and a cursor of those taken.
pub(crate) struct Journal<T> {
    entries: Mutex<(Vec<T>, usize)>,
    added: Condvar,
}

impl<T: Clone> Journal<T> {
    pub(crate) fn new() -> Journal<T> {
        Journal {
            entries: Mutex::new((Vec::new(), 0)),
            added: Condvar::new(),
        }
    }

    pub(crate) fn push(&self, entry: T) {
        lock(&self.entries).0.push(entry);
        self.added.notify_all();
    }

    /// The next entry not taken yet, waiting at most `timeout`.
    pub(crate) fn next(&self, timeout: Duration) -> Option<T> {
        let deadline = Instant::now().checked_add(timeout);
        let mut guard = lock(&self.entries);
        loop {
            let (entries, taken) = &mut *guard;
            if let Some(entry) = entries.get(*taken) {
                *taken += 1;
                return Some(entry.clone());
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                return None;
            }
            guard = self
                .added
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every entry so far, taken or not.
    pub(crate) fn all(&self) -> Vec<T> {
        lock(&self.entries).0.clone()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).0.len()
    }
}

/// A poisoned lock only means a test thread panicked: the data is fine.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_takes_entries_in_order_and_times_out_when_none_is_left() {
        let journal = Journal::new();
        journal.push(1);
        journal.push(2);
        assert_eq!(journal.next(Duration::ZERO), Some(1));
        assert_eq!(journal.next(Duration::ZERO), Some(2));
        assert_eq!(journal.next(Duration::from_millis(10)), None);
        assert_eq!(journal.all(), [1, 2]);
    }

    #[test]
    fn next_wakes_for_an_entry_pushed_from_another_thread() {
        let journal = std::sync::Arc::new(Journal::new());
        let pusher = journal.clone();
        let t = std::thread::spawn(move || pusher.push("late"));
        assert_eq!(journal.next(Duration::from_secs(10)), Some("late"));
        t.join().unwrap();
    }
}
