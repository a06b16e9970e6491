//! The outgoing queue: what the app handed to `ws_send` and the connection
//! has not written yet. Bounded in messages and bytes; never drops silently.
//!
//! Any thread pushes (under a short lock); the connection task takes
//! everything queued in one batch and wakes on `notified()`.
//!
//! The one exception, for latency: a small send on an open connection with
//! nothing queued and nothing being written is written by the app's own
//! thread, at once and without waiting. The task parks its writer here
//! while it has nothing to write ([`DirectWrite`]); what the socket cannot
//! take at once is left to the task, which registers for the wakeup. That
//! saves the round trip's wake of the runtime thread (one of its two thread
//! hops). Sends that follow each other closely are queued instead, so that
//! the task writes them in one batch (one system call for many messages).
//!
//! With `"flush": "manual"`, what was queued when a connection opened is
//! the backlog: it is held back (still counted against the limits) while
//! newer messages (the app's auth or resubscribe) go first, until
//! `release_backlog` (`ws_flush`).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{Bytes, Utf8Bytes};

use crate::error::Error;
pub(crate) use crate::frame::MaskedFrame;
use crate::options::{Overflow, QueueOptions};

#[derive(Debug)]
pub(crate) struct OutgoingQueue {
    inner: Mutex<Inner>,
    max_messages: usize,
    max_bytes: usize,
    overflow: Overflow,
    /// Wakes the connection task when something was pushed.
    pushed: Notify,
    /// A sender that found the queue full waits for room (`want_room`).
    room_wanted: AtomicBool,
    room_hook: Mutex<Option<RoomHook>>,
}

/// Called once after [`OutgoingQueue::want_room`] when messages have left
/// the queue (or it closed): a refused push may succeed now. Runs on the
/// connection task's thread: it must be brief.
#[derive(Clone)]
pub(crate) struct RoomHook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for RoomHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomHook")
    }
}

#[derive(Default)]
struct Inner {
    messages: VecDeque<Entry>,
    bytes: usize,
    /// The first `held` messages are a backlog waiting for `ws_flush`.
    held: usize,
    /// The connection task has ended: nothing will send what is pushed.
    closed: bool,
    /// The open connection's writer while its task has nothing to write
    /// (then `messages` is empty, or a push has woken the task to take it).
    parked: Option<Box<dyn DirectWrite>>,
    /// A direct write left bytes for the connection task to finish.
    flush_owed: bool,
    /// When the last message was pushed: one that follows closer than
    /// [`BATCH_GAP`] is queued, not written at once.
    last_push: Option<Instant>,
    /// The last push was written at once.
    last_direct: bool,
    /// Paced sends still to queue: a burst followed a direct write, so
    /// this app sends in bursts (see [`DIRECT_HOLDOFF`]).
    holdoff: u8,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("messages", &self.messages.len())
            .field("bytes", &self.bytes)
            .field("held", &self.held)
            .field("closed", &self.closed)
            .field("parked", &self.parked.is_some())
            .field("flush_owed", &self.flush_owed)
            .finish()
    }
}

/// Sends closer together than this are queued for the connection task to
/// write in one batch: a system call per message would cost the app's
/// thread more than the task's wake. A round trip on loopback takes twice
/// as long, so sends paced by replies are still written at once.
const BATCH_GAP: Duration = Duration::from_micros(10);

/// After a burst began with a direct write, this many paced sends are
/// queued: an app that sends in bursts (a pipelined stream) would split
/// each burst into a system call of its own for the first message and the
/// task's batch for the rest, smaller segments for both peers. An app that
/// sends one message and waits for the reply never starts the holdoff.
const DIRECT_HOLDOFF: u8 = 64;

/// Larger messages always go through the connection task: writing them
/// (and encrypting them) would cost the app's thread much more than the
/// wake the direct write saves. Over plain TCP the app's thread frames and
/// masks them (`Message::Masked`) and the task writes the frame as it is.
pub(crate) const DIRECT_MAX_BYTES: usize = 16 * 1024;

/// A connection's writer as the queue holds it while the connection task
/// has nothing to write: the app's thread may write one message through it
/// without waiting (never blocking: a write that cannot finish now is left
/// for the task).
pub(crate) trait DirectWrite: Send {
    fn write_now(&mut self, message: Message) -> WriteNow;
    /// Back to the connection task's own type.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// What [`DirectWrite::write_now`] did with a message.
#[derive(Debug)]
pub(crate) enum WriteNow {
    /// Handed to the socket whole.
    Written,
    /// Taken, but part of it still waits: the connection task must flush.
    Unfinished,
    /// Not taken (the reader held the connection, or it is closing): queue it.
    Refused(Message),
}

/// What one push appends: a single send needs no `Vec` of its own.
enum Pushing {
    One(Message),
    Group(Vec<Message>),
}

impl Pushing {
    /// (messages, bytes)
    fn size(&self) -> (usize, usize) {
        match self {
            Pushing::One(message) => (1, message_len(message)),
            Pushing::Group(group) => (group.len(), group.iter().map(message_len).sum()),
        }
    }
}

/// What a successful push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Written by the caller's thread at once (nothing was queued).
    Written,
    /// `drop_oldest` made room by dropping this many older messages.
    DroppedOldest(usize),
}

/// A message the app sent, as every wire carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// A WebSocket data frame, built and masked on the sender's thread.
    Masked(MaskedFrame),
}

impl Message {
    /// As a text or binary message (a masked frame's payload copied back),
    /// for the wires that re-encode what they send (Engine.IO, Socket.IO).
    pub fn unmasked(self) -> Message {
        let Message::Masked(frame) = self else {
            return self;
        };
        let payload = Bytes::from(frame.payload());
        if !frame.is_text() {
            return Message::Binary(payload);
        }
        match Utf8Bytes::try_from(payload) {
            Ok(text) => Message::Text(text),
            // Cannot happen: a text frame is only ever built from a &str.
            Err(_) => Message::Binary(Bytes::new()),
        }
    }

    #[cfg(test)]
    pub fn text(text: &str) -> Message {
        Message::Text(Utf8Bytes::from(text))
    }

    #[cfg(test)]
    pub fn binary(data: impl Into<Bytes>) -> Message {
        Message::Binary(data.into())
    }
}

/// A queued message, and where the outbox keeps it, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub message: Message,
    pub stored: Option<Stored>,
}

/// A message's row in the durable outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub id: u64,
    /// Kept until the app acks it (`ws_send_tracked`), not only until the
    /// server has read it.
    pub tracked: bool,
    /// It may have gone out before (an earlier connection or process).
    pub resent: bool,
}

impl From<Message> for Entry {
    fn from(message: Message) -> Entry {
        Entry {
            message,
            stored: None,
        }
    }
}

impl Entry {
    pub fn len(&self) -> usize {
        message_len(&self.message)
    }
}

/// Bytes a message counts for against `max_bytes`.
pub(crate) fn message_len(message: &Message) -> usize {
    match message {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        Message::Masked(frame) => frame.payload_len(),
    }
}

impl OutgoingQueue {
    pub fn new(options: &QueueOptions) -> OutgoingQueue {
        OutgoingQueue {
            inner: Mutex::new(Inner::default()),
            max_messages: options.max_messages,
            max_bytes: options.max_bytes,
            overflow: options.overflow,
            pushed: Notify::new(),
            room_wanted: AtomicBool::new(false),
            room_hook: Mutex::new(None),
        }
    }

    /// Sets (or removes) what [`OutgoingQueue::want_room`] calls.
    pub fn set_room_hook(&self, hook: Option<RoomHook>) {
        *self.room_hook.lock() = hook;
    }

    /// Asks for one call of the room hook the next time messages leave the
    /// queue or it closes (at once if it has closed already: a watcher that
    /// comes late learns it too). A sender asks, tries its push again, and
    /// waits only if that fails too, so no room is missed in between.
    pub fn want_room(&self) {
        self.room_wanted.store(true, Ordering::Release);
        if self.inner.lock().closed {
            self.room_made();
        }
    }

    fn room_made(&self) {
        let wanted = self.room_wanted.load(Ordering::Acquire);
        if wanted && self.room_wanted.swap(false, Ordering::AcqRel) {
            let hook = self.room_hook.lock().clone();
            if let Some(hook) = hook {
                (hook.0)();
            }
        }
    }

    /// Appends a message, or refuses it whole when the limits are reached.
    pub fn push(&self, message: Message) -> Result<Pushed, Error> {
        self.push_at(Pushing::One(message), Instant::now())
    }

    /// Appends messages that belong together (a Socket.IO packet and its
    /// attachments) under one lock, so no other push falls between them;
    /// all are queued or none. With `drop_oldest` older messages make room.
    pub fn push_group(&self, messages: Vec<Message>) -> Result<Pushed, Error> {
        self.push_at(Pushing::Group(messages), Instant::now())
    }

    #[cfg(test)]
    fn push_group_at(&self, messages: Vec<Message>, now: Instant) -> Result<Pushed, Error> {
        match <[Message; 1]>::try_from(messages) {
            Ok([message]) => self.push_at(Pushing::One(message), now),
            Err(messages) => self.push_at(Pushing::Group(messages), now),
        }
    }

    fn push_at(&self, messages: Pushing, now: Instant) -> Result<Pushed, Error> {
        let (count, len) = messages.size();
        if len > self.max_bytes || count > self.max_messages {
            return Err(Error::QueueFull(format!(
                "{count} message(s) of {len} bytes are more than the queue holds (queue.max_messages {}, queue.max_bytes {})",
                self.max_messages, self.max_bytes
            )));
        }
        let mut dropped = 0;
        {
            let mut inner = self.inner.lock();
            if inner.closed {
                return Err(Error::Closed(
                    "the client has terminated: nothing more can be sent".into(),
                ));
            }
            let fits = |inner: &Inner| {
                inner.messages.len() + count <= self.max_messages
                    && inner.bytes + len <= self.max_bytes
            };
            if !fits(&inner) {
                if self.overflow == Overflow::Reject {
                    return Err(Error::QueueFull(format!(
                        "outgoing queue is full ({} messages, {} bytes queued; limits {} and {})",
                        inner.messages.len(),
                        inner.bytes,
                        self.max_messages,
                        self.max_bytes
                    )));
                }
                while !fits(&inner) {
                    let Some(old) = inner.messages.pop_front() else {
                        break;
                    };
                    inner.bytes -= old.len();
                    inner.held = inner.held.saturating_sub(1);
                    dropped += 1;
                }
            }
            let paced = inner
                .last_push
                .is_none_or(|last| now.saturating_duration_since(last) >= BATCH_GAP);
            inner.last_push = Some(now);
            if !paced && inner.last_direct {
                inner.holdoff = DIRECT_HOLDOFF;
            }
            inner.last_direct = false;
            let held_off = paced && inner.holdoff > 0;
            if held_off {
                inner.holdoff -= 1;
            }
            let idle = inner.messages.is_empty() && inner.held == 0 && !inner.flush_owed;
            let direct = paced && !held_off && len <= DIRECT_MAX_BYTES && idle;
            let messages = match (messages, inner.parked.as_mut()) {
                (Pushing::One(message), Some(writer)) if direct => {
                    match writer.write_now(message) {
                        WriteNow::Refused(message) => Pushing::One(message),
                        done => {
                            let owed = matches!(done, WriteNow::Unfinished);
                            inner.flush_owed = owed;
                            inner.last_direct = true;
                            drop(inner);
                            if owed {
                                self.pushed.notify_one();
                            }
                            // Gone at once, as if the task had taken it: a
                            // watcher of room hears of it as of any other.
                            self.room_made();
                            return Ok(Pushed::Written);
                        }
                    }
                }
                (messages, _) => messages,
            };
            inner.bytes += len;
            match messages {
                Pushing::One(message) => inner.messages.push_back(message.into()),
                Pushing::Group(group) => inner.messages.extend(group.into_iter().map(Entry::from)),
            }
        }
        self.pushed.notify_one();
        Ok(if dropped == 0 {
            Pushed::Queued
        } else {
            Pushed::DroppedOldest(dropped)
        })
    }

    /// Appends a message the outbox stored (its limits apply, not the
    /// queue's). Called in the outbox's commit order.
    pub fn push_stored(&self, entry: Entry) {
        {
            let mut inner = self.inner.lock();
            inner.bytes += entry.len();
            inner.messages.push_back(entry);
        }
        self.pushed.notify_one();
    }

    /// Takes everything queued and not held back, oldest first.
    #[cfg(test)]
    pub fn take_all(&self) -> VecDeque<Entry> {
        let mut taken = VecDeque::new();
        self.take_all_into(&mut taken);
        taken
    }

    /// Moves everything queued and not held back, oldest first, to the end
    /// of `into`. An empty `into` trades places with the queue's own deque:
    /// both keep their capacity, so a stream of sends does not regrow (and
    /// page in) a fresh deque after every batch the connection task takes.
    pub fn take_all_into(&self, into: &mut VecDeque<Entry>) {
        let before = into.len();
        {
            let mut inner = self.inner.lock();
            if inner.held == 0 {
                inner.bytes = 0;
                if into.is_empty() {
                    std::mem::swap(&mut inner.messages, into);
                } else {
                    into.extend(inner.messages.drain(..));
                }
            } else {
                let held = inner.held;
                into.extend(inner.messages.drain(held..));
                inner.bytes -= into.range(before..).map(Entry::len).sum::<usize>();
            }
        }
        if into.len() > before {
            self.room_made();
        }
    }

    /// Puts back messages that were taken but not written, ahead of
    /// anything pushed since (but behind a held backlog, which is older),
    /// so order is kept across a lost connection.
    pub fn requeue_front(&self, unsent: VecDeque<Entry>) {
        if unsent.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        inner.bytes += unsent.iter().map(Entry::len).sum::<usize>();
        let held = inner.held;
        let mut newer = inner.messages.split_off(held);
        inner.messages.extend(unsent);
        inner.messages.append(&mut newer);
    }

    /// A connection opened in manual-flush mode: hold back what is queued.
    pub fn hold_backlog(&self) {
        let mut inner = self.inner.lock();
        inner.held = inner.messages.len();
    }

    /// `ws_flush`: let the held backlog go, ahead of newer messages.
    pub fn release_backlog(&self) {
        self.inner.lock().held = 0;
        self.pushed.notify_one();
    }

    /// The connection task has nothing to write: it leaves its writer here
    /// for the app's sends. Refused (the writer comes back) when messages
    /// wait to be taken or the queue closed.
    pub fn park(&self, writer: Box<dyn DirectWrite>) -> Result<(), Box<dyn DirectWrite>> {
        let mut inner = self.inner.lock();
        let takeable = inner.messages.len() > inner.held;
        if takeable || inner.closed {
            return Err(writer);
        }
        inner.parked = Some(writer);
        Ok(())
    }

    /// The connection task takes its writer back (to write, or because the
    /// connection ends); true if a direct write left bytes to flush.
    pub fn unpark(&self) -> Option<(Box<dyn DirectWrite>, bool)> {
        let mut inner = self.inner.lock();
        let writer = inner.parked.take()?;
        Some((writer, std::mem::take(&mut inner.flush_owed)))
    }

    #[cfg(test)]
    pub fn writer_parked(&self) -> bool {
        self.inner.lock().parked.is_some()
    }

    /// Resolves after a push (or at once if one happened since last time).
    pub async fn notified(&self) {
        self.pushed.notified().await
    }

    /// The connection task is ending: refuse pushes from now on, and say
    /// what was left unsent, as (messages, bytes). Under the queue's lock, so
    /// no message slips in between unreported.
    pub fn close(&self) -> (usize, usize) {
        let left = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            (inner.messages.len(), inner.bytes)
        };
        // A waiting sender learns that the queue is closed on its next push.
        self.room_made();
        left
    }

    /// (messages, bytes) queued now.
    pub fn len(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.messages.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(max_messages: usize, max_bytes: usize, overflow: Overflow) -> OutgoingQueue {
        OutgoingQueue::new(&QueueOptions {
            max_messages,
            max_bytes,
            overflow,
            ..QueueOptions::default()
        })
    }

    fn text(s: &str) -> Message {
        Message::text(s)
    }

    fn messages(entries: VecDeque<Entry>) -> Vec<Message> {
        entries.into_iter().map(|e| e.message).collect()
    }

    /// A parked writer that answers as told and records what it took.
    struct ScriptedWriter {
        answer: fn(&Message) -> WriteNow,
        took: Arc<Mutex<Vec<Message>>>,
    }

    impl DirectWrite for ScriptedWriter {
        fn write_now(&mut self, message: Message) -> WriteNow {
            match (self.answer)(&message) {
                WriteNow::Refused(_) => WriteNow::Refused(message),
                answer => {
                    self.took.lock().push(message);
                    answer
                }
            }
        }

        fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
            self
        }
    }

    fn park_writer(
        q: &OutgoingQueue,
        answer: fn(&Message) -> WriteNow,
    ) -> Arc<Mutex<Vec<Message>>> {
        let took = Arc::new(Mutex::new(Vec::new()));
        let writer = ScriptedWriter {
            answer,
            took: took.clone(),
        };
        assert!(q.park(Box::new(writer)).is_ok(), "nothing waits: it parks");
        took
    }

    /// Whether a push since the last check woke the connection task.
    fn woke(q: &OutgoingQueue) -> bool {
        use futures_util::FutureExt;
        q.notified().now_or_never().is_some()
    }

    #[test]
    fn a_paced_send_to_a_parked_writer_is_written_at_once_and_wakes_nobody() {
        let q = queue(10, 100, Overflow::Reject);
        let took = park_writer(&q, |_| WriteNow::Written);
        let t0 = Instant::now();
        assert_eq!(
            q.push_group_at(vec![text("a")], t0).unwrap(),
            Pushed::Written
        );
        assert_eq!(
            q.push_group_at(vec![text("b")], t0 + BATCH_GAP).unwrap(),
            Pushed::Written
        );
        assert_eq!(*took.lock(), vec![text("a"), text("b")]);
        assert_eq!(q.len(), (0, 0));
        assert!(!woke(&q));
        let (_, flush_owed) = q.unpark().expect("still parked");
        assert!(!flush_owed);
    }

    #[test]
    fn a_direct_write_is_room_made_for_a_watcher() {
        let q = queue(10, 100, Overflow::Reject);
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        q.set_room_hook(Some(RoomHook(Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }))));
        park_writer(&q, |_| WriteNow::Written);
        let t0 = Instant::now();
        q.push_group_at(vec![text("a")], t0).unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 0, "nobody asked");
        q.want_room();
        assert_eq!(
            q.push_group_at(vec![text("b")], t0 + BATCH_GAP).unwrap(),
            Pushed::Written
        );
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn batches_are_taken_in_order_and_the_two_deques_keep_their_capacity() {
        let q = queue(1_000, 100_000, Overflow::Reject);
        let mut batch = VecDeque::with_capacity(512);
        for round in 0..3 {
            for i in 0..300 {
                q.push(text(&format!("{round}-{i}"))).unwrap();
            }
            // Something left from before stays first.
            if round == 2 {
                batch.push_back(Entry::from(text("left")));
            }
            q.take_all_into(&mut batch);
            let got = messages(std::mem::take(&mut batch).into_iter().collect());
            assert_eq!(got.len(), if round == 2 { 301 } else { 300 });
            if round == 2 {
                assert_eq!(got[0], text("left"));
            }
            assert_eq!(got.last(), Some(&text(&format!("{round}-299"))));
            batch = VecDeque::with_capacity(512);
            assert!(q.inner.lock().messages.capacity() >= 300, "round {round}");
            assert_eq!(q.inner.lock().bytes, 0);
        }
        // Held back: only what follows the held backlog is taken.
        for i in 0..3 {
            q.push(text(&format!("old-{i}"))).unwrap();
        }
        q.hold_backlog();
        q.push(text("new")).unwrap();
        q.take_all_into(&mut batch);
        assert_eq!(messages(batch), vec![text("new")]);
        assert_eq!(q.inner.lock().bytes, 3 * "old-0".len());
    }

    #[test]
    fn sends_closer_than_the_batch_gap_are_queued_for_the_task() {
        let q = queue(10, 100, Overflow::Reject);
        let took = park_writer(&q, |_| WriteNow::Written);
        let t0 = Instant::now();
        q.push_group_at(vec![text("a")], t0).unwrap();
        let soon = t0 + BATCH_GAP / 2;
        assert_eq!(
            q.push_group_at(vec![text("b")], soon).unwrap(),
            Pushed::Queued
        );
        // Queued before: later sends wait behind it, however paced.
        let late = soon + 10 * BATCH_GAP;
        assert_eq!(
            q.push_group_at(vec![text("c")], late).unwrap(),
            Pushed::Queued
        );
        assert!(woke(&q));
        assert_eq!(*took.lock(), vec![text("a")]);
        assert!(
            q.park(q.unpark().unwrap().0).is_err(),
            "messages wait: no parking"
        );
        assert_eq!(messages(q.take_all()), vec![text("b"), text("c")]);
    }

    #[test]
    fn a_burst_after_a_direct_write_holds_direct_writes_off_for_a_while() {
        let q = queue(1000, 1 << 20, Overflow::Reject);
        let took = park_writer(&q, |_| WriteNow::Written);
        let mut now = Instant::now();
        // Replies pace the sends: every one is written at once.
        for i in 0..100 {
            now += 3 * BATCH_GAP;
            let pushed = q.push_group_at(vec![text(&format!("p{i}"))], now).unwrap();
            assert_eq!(pushed, Pushed::Written);
        }
        // A burst after a direct write: then the next paced sends are queued.
        now += 3 * BATCH_GAP;
        assert_eq!(
            q.push_group_at(vec![text("b0")], now).unwrap(),
            Pushed::Written
        );
        assert_eq!(
            q.push_group_at(vec![text("b1")], now).unwrap(),
            Pushed::Queued
        );
        for i in 0..DIRECT_HOLDOFF {
            q.take_all();
            now += 3 * BATCH_GAP;
            let pushed = q.push_group_at(vec![text(&format!("h{i}"))], now).unwrap();
            assert_eq!(pushed, Pushed::Queued);
        }
        q.take_all();
        now += 3 * BATCH_GAP;
        assert_eq!(
            q.push_group_at(vec![text("again")], now).unwrap(),
            Pushed::Written
        );
        assert_eq!(took.lock().len(), 102);
    }

    #[test]
    fn a_refused_send_is_queued_and_an_unfinished_one_owes_a_flush() {
        let q = queue(10, 100, Overflow::Reject);
        park_writer(&q, |_| WriteNow::Refused(Message::text("")));
        let t0 = Instant::now();
        assert_eq!(
            q.push_group_at(vec![text("a")], t0).unwrap(),
            Pushed::Queued
        );
        assert!(woke(&q));
        assert_eq!(messages(q.take_all()), vec![text("a")]);
        q.unpark().unwrap();

        let took = park_writer(&q, |_| WriteNow::Unfinished);
        assert_eq!(
            q.push_group_at(vec![text("b")], t0 + BATCH_GAP).unwrap(),
            Pushed::Written
        );
        assert!(woke(&q), "the task must finish the write");
        // Nothing may overtake the unfinished one.
        let later = t0 + 10 * BATCH_GAP;
        assert_eq!(
            q.push_group_at(vec![text("c")], later).unwrap(),
            Pushed::Queued
        );
        assert_eq!(*took.lock(), vec![text("b")]);
        let (_, flush_owed) = q.unpark().unwrap();
        assert!(flush_owed);
        assert_eq!(messages(q.take_all()), vec![text("c")]);
    }

    #[test]
    fn large_messages_groups_backlogs_and_a_closed_queue_never_go_direct() {
        let q = queue(10, 1 << 20, Overflow::Reject);
        let took = park_writer(&q, |_| WriteNow::Written);
        let t0 = Instant::now();
        let large = Message::binary(vec![0; DIRECT_MAX_BYTES + 1]);
        assert_eq!(q.push_group_at(vec![large], t0).unwrap(), Pushed::Queued);
        q.take_all();
        let t0 = t0 + BATCH_GAP;
        let pair = vec![text("p1"), text("p2")];
        assert_eq!(q.push_group_at(pair, t0).unwrap(), Pushed::Queued);
        q.unpark().unwrap();
        q.hold_backlog();
        assert!(
            q.park(q_writer(&took)).is_ok(),
            "a held backlog is not takeable"
        );
        assert_eq!(
            q.push_group_at(vec![text("x")], t0 + BATCH_GAP).unwrap(),
            Pushed::Queued
        );
        assert!(took.lock().is_empty());
        q.unpark().unwrap();
        q.close();
        assert!(
            q.park(q_writer(&took)).is_err(),
            "closed: nothing to write for"
        );
    }

    fn q_writer(took: &Arc<Mutex<Vec<Message>>>) -> Box<dyn DirectWrite> {
        Box::new(ScriptedWriter {
            answer: |_| WriteNow::Written,
            took: took.clone(),
        })
    }

    #[test]
    fn keeps_order_and_counts() {
        let q = queue(10, 100, Overflow::Reject);
        q.push(text("a")).unwrap();
        q.push(Message::binary(vec![1, 2, 3])).unwrap();
        assert_eq!(q.len(), (2, 4));
        let all = messages(q.take_all());
        assert_eq!(all, vec![text("a"), Message::binary(vec![1, 2, 3])]);
        assert_eq!(q.len(), (0, 0));
    }

    #[test]
    fn full_by_count_refuses_and_takes_nothing() {
        let q = queue(2, 100, Overflow::Reject);
        q.push(text("1")).unwrap();
        q.push(text("2")).unwrap();
        assert!(matches!(q.push(text("3")), Err(Error::QueueFull(_))));
        assert_eq!(q.len(), (2, 2));
    }

    #[test]
    fn full_by_bytes_refuses_and_takes_nothing() {
        let q = queue(10, 5, Overflow::Reject);
        q.push(text("1234")).unwrap();
        assert!(matches!(q.push(text("56")), Err(Error::QueueFull(_))));
        q.push(text("5")).unwrap();
        assert_eq!(q.len(), (2, 5));
    }

    #[test]
    fn a_message_larger_than_the_queue_is_refused_even_with_drop_oldest() {
        let q = queue(10, 5, Overflow::DropOldest);
        q.push(text("1")).unwrap();
        assert!(matches!(q.push(text("123456")), Err(Error::QueueFull(_))));
        assert_eq!(q.len(), (1, 1));
    }

    #[test]
    fn a_sender_that_wants_room_hears_once_when_messages_leave() {
        let q = queue(1, 1 << 20, Overflow::Reject);
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        q.set_room_hook(Some(RoomHook(Arc::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        }))));
        q.push(text("a")).unwrap();
        assert!(q.push(text("b")).is_err());
        q.take_all();
        assert_eq!(calls.load(Ordering::Relaxed), 0, "nobody asked");
        q.push(text("b")).unwrap();
        q.want_room();
        q.take_all();
        q.push(text("c")).unwrap();
        q.take_all();
        assert_eq!(calls.load(Ordering::Relaxed), 1, "once per ask");
        q.want_room();
        q.close();
        assert_eq!(
            calls.load(Ordering::Relaxed),
            2,
            "closing wakes a waiting sender"
        );
        q.want_room();
        assert_eq!(
            calls.load(Ordering::Relaxed),
            3,
            "asking a closed queue hears at once"
        );
    }

    #[test]
    fn drop_oldest_makes_room_and_says_how_much() {
        let q = queue(2, 100, Overflow::DropOldest);
        q.push(text("1")).unwrap();
        q.push(text("2")).unwrap();
        assert_eq!(q.push(text("3")).unwrap(), Pushed::DroppedOldest(1));
        let all = messages(q.take_all());
        assert_eq!(all, vec![text("2"), text("3")]);
    }

    #[test]
    fn a_held_backlog_waits_while_newer_messages_go() {
        let q = queue(10, 100, Overflow::Reject);
        q.push(text("old1")).unwrap();
        q.push(text("old2")).unwrap();
        q.hold_backlog();
        assert!(q.take_all().is_empty());
        q.push(text("auth")).unwrap();
        assert_eq!(messages(q.take_all()), vec![text("auth")]);
        assert_eq!(q.len(), (2, 8));
        q.push(text("new")).unwrap();
        q.release_backlog();
        let all = messages(q.take_all());
        assert_eq!(all, vec![text("old1"), text("old2"), text("new")]);
    }

    #[test]
    fn unsent_messages_go_back_behind_the_held_backlog() {
        let q = queue(10, 100, Overflow::Reject);
        q.push(text("old")).unwrap();
        q.hold_backlog();
        q.push(text("auth")).unwrap();
        let taken = q.take_all();
        q.push(text("later")).unwrap();
        q.requeue_front(taken);
        q.release_backlog();
        let all = messages(q.take_all());
        assert_eq!(all, vec![text("old"), text("auth"), text("later")]);
    }

    #[test]
    fn a_closed_queue_reports_what_is_left_and_refuses_more() {
        let q = queue(10, 100, Overflow::Reject);
        q.push(text("left")).unwrap();
        assert_eq!(q.close(), (1, 4));
        assert!(matches!(q.push(text("late")), Err(Error::Closed(_))));
    }

    #[test]
    fn stored_entries_bypass_the_queue_limits_and_keep_their_rows() {
        let q = queue(1, 1, Overflow::Reject);
        let stored = |id| Entry {
            message: text("stored"),
            stored: Some(Stored {
                id,
                tracked: id % 2 == 0,
                resent: false,
            }),
        };
        q.push_stored(stored(1));
        q.push_stored(stored(2));
        assert_eq!(q.len(), (2, 12));
        let ids: Vec<_> = q.take_all().iter().map(|e| e.stored.unwrap().id).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn requeued_messages_go_before_newer_ones() {
        let q = queue(10, 100, Overflow::Reject);
        q.push(text("1")).unwrap();
        q.push(text("2")).unwrap();
        let mut taken = q.take_all();
        taken.pop_front(); // "1" was written
        q.push(text("3")).unwrap();
        q.requeue_front(taken);
        assert_eq!(q.len(), (2, 2));
        let all = messages(q.take_all());
        assert_eq!(all, vec![text("2"), text("3")]);
    }
}
