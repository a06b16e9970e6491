//! One open connection of a session: its reader and writer run at once in
//! the session's task (a large write never stops reading, which would
//! deadlock against a peer that echoes while we write), and the driver
//! decides on heartbeat, close and the app's requests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Bytes;

use super::{Command, Counters, Session, Shared};
use crate::error::error_code;
use crate::event::{Event, EventSender};
use crate::heartbeat::{self, Heartbeat, Liveness};
use crate::logging::log;
use crate::outbox::Outbox;
use crate::queue::{DirectWrite, Entry};
use crate::state::End;
use crate::wire::{
    Ending, HeartbeatPolicy, Incoming, Opened, Outbound, Wire, WireReader, WireWriter,
};

/// What the reader of one open connection shares with the driver.
struct Link {
    /// Origin of Ping payload timestamps.
    base: Instant,
    /// Frames (data and control) received: proof of life for heartbeat.
    frames: AtomicU64,
    /// When the last frame came, in nanoseconds since `base`; kept only
    /// when the peer is the one that pings, so that silence is timed from
    /// the last frame, not from the last check.
    last_frame: Option<AtomicU64>,
    /// The reader waits for the app to poll (incoming backpressure).
    reading_paused: AtomicBool,
    /// A Ping awaits proof of life: the reader hands back control at the
    /// next frame, so that the driver drops the Ping's deadline then
    /// instead of waking for it later (battery).
    awaiting_life: AtomicBool,
    events: EventSender,
    shared: Arc<Shared>,
}

/// What makes the reader hand control back to the driver.
enum Notable {
    /// The peer's Close frame (it started the close, or answered ours).
    PeerClose(u16, String),
    /// A frame came while a Ping awaited proof of life.
    Alive,
    /// The peer answered the confirmation Ping with this sequence number:
    /// it has read every frame written before it.
    Confirmed(u64),
    /// The wire has frames of its own to write.
    Flush,
    End(Ending),
}

/// Reads and delivers until something the driver must decide on. Owns the
/// reader so that the driver can start it again after a Close frame.
async fn read_until_notable<R: WireReader>(mut reader: R, link: &Link) -> (R, Notable) {
    loop {
        if link.events.over_limit() {
            link.reading_paused.store(true, Ordering::Release);
            link.events.wait_until_drained().await;
            link.reading_paused.store(false, Ordering::Release);
        }
        let incoming = reader.next().await;
        // A wire whose input is already decoded in memory (a long-poll's
        // payload) is always ready: give the other clients of the shared
        // runtime thread their turn, as tokio's own sockets do.
        tokio::task::consume_budget().await;
        link.frames.fetch_add(1, Ordering::Relaxed);
        if let Some(last_frame) = &link.last_frame {
            last_frame.store(nanos_since(link.base), Ordering::Relaxed);
        }
        let counters = &link.shared.counters;
        let event = match incoming {
            Incoming::Text(text) => Some(Event::Text(text)),
            Incoming::Binary(data) => Some(Event::Binary(data)),
            Incoming::Pong(payload) => {
                if let Some(seq) = confirmation_seq(&payload) {
                    link.awaiting_life.store(false, Ordering::Release);
                    return (reader, Notable::Confirmed(seq));
                }
                if let Some(rtt) = heartbeat::round_trip(link.base, Instant::now(), &payload) {
                    let micros = (rtt.as_micros() as u64).max(1);
                    counters.rtt_micros.store(micros, Ordering::Relaxed);
                }
                None
            }
            Incoming::Control => None,
            Incoming::Event(event) => Some(event),
            Incoming::Flush => return (reader, Notable::Flush),
            Incoming::Close { code, reason } => return (reader, Notable::PeerClose(code, reason)),
            Incoming::End(ending) => return (reader, Notable::End(ending)),
        };
        if let Some(event) = event {
            let len = event.message_bytes() as u64;
            counters.messages_in.fetch_add(1, Ordering::Relaxed);
            counters.bytes_in.fetch_add(len, Ordering::Relaxed);
            link.events.send(event);
        }
        if link.awaiting_life.load(Ordering::Relaxed)
            && link.awaiting_life.swap(false, Ordering::AcqRel)
        {
            return (reader, Notable::Alive);
        }
    }
}

/// A parked writer, as its session's own type again.
fn taken_back<Wr: 'static>(parked: Box<dyn DirectWrite>) -> Wr {
    *parked
        .into_any()
        .downcast::<Wr>()
        .expect("a queue parks only its own session's writer")
}

fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// What waits to be written on this connection, in the order it goes:
/// Pings first, then messages, our Close frame last.
#[derive(Default)]
struct Pending {
    control: VecDeque<Outbound>,
    messages: VecDeque<Entry>,
    close: Option<Outbound>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.control.is_empty() && self.messages.is_empty() && self.close.is_none()
    }

    fn take_queue(&mut self, shared: &Shared) {
        shared.queue.take_all_into(&mut self.messages);
    }

    /// Puts the messages back in front of the queue (Pings and Close
    /// frames belong to the connection that ends).
    fn requeue(&mut self, shared: &Shared) {
        shared
            .queue
            .requeue_front(self.messages.drain(..).collect());
    }
}

/// Outbox messages written on this connection and not yet proven read,
/// and the confirmation Pings that will prove it: a peer answers Pings in
/// the order it reads frames, so the Pong of a Ping written after a batch
/// says the whole batch was read (written is not delivered: a killed app's
/// kernel may drop what its socket buffers still held).
#[derive(Default)]
struct Receipts {
    /// Written, oldest first.
    in_flight: VecDeque<Entry>,
    /// How many of `in_flight` a confirmation Ping follows already.
    covered: usize,
    /// Confirmation Pings on their way: (sequence, `in_flight` they cover).
    awaiting: VecDeque<(u64, usize)>,
    next_seq: u64,
}

impl Receipts {
    /// After a batch went out: a confirmation Ping behind it, if it held
    /// outbox messages no Ping follows yet.
    fn follow_with_ping(&mut self, pending: &mut Pending) {
        if self.in_flight.len() > self.covered {
            let seq = self.next_seq;
            self.next_seq += 1;
            pending
                .control
                .push_back(Outbound::Ping(confirmation_payload(seq)));
            self.awaiting.push_back((seq, self.in_flight.len()));
            self.covered = self.in_flight.len();
        }
    }

    /// The Pong of confirmation `seq` came: what it proves read.
    fn confirmed(&mut self, seq: u64) -> Vec<Entry> {
        let mut upto = 0;
        while let Some(&(s, covers)) = self.awaiting.front() {
            if s > seq {
                break;
            }
            upto = covers;
            self.awaiting.pop_front();
        }
        let read: Vec<Entry> = self.in_flight.drain(..upto).collect();
        self.covered -= upto;
        for (_, covers) in &mut self.awaiting {
            *covers -= upto;
        }
        read
    }
}

/// A confirmation Ping's payload: 9 bytes, so that it never reads as a
/// heartbeat Ping's 8-byte timestamp.
fn confirmation_payload(seq: u64) -> Bytes {
    let mut payload = Vec::with_capacity(9);
    payload.push(b'o');
    payload.extend_from_slice(&seq.to_be_bytes());
    payload.into()
}

fn confirmation_seq(payload: &[u8]) -> Option<u64> {
    match payload {
        [b'o', seq @ ..] => Some(u64::from_be_bytes(seq.try_into().ok()?)),
        _ => None,
    }
}

/// Hands pending frames to the wire in order, then flushes. Cancel-safe:
/// a frame leaves `pending` only when the wire takes it, and `unflushed`
/// says whether a flush is still owed. Outbox messages acked meanwhile are
/// skipped; written ones are kept in `receipts` until proven read.
async fn drain<Wr: WireWriter>(
    writer: &mut Wr,
    pending: &mut Pending,
    unflushed: &mut bool,
    out: Outflow<'_>,
) -> Result<(), Ending> {
    while !pending.is_empty() {
        writer.ready().await?;
        let frame = if let Some(frame) = pending.control.pop_front() {
            frame
        } else if let Some(entry) = pending.messages.pop_front() {
            if let Some(stored) = entry.stored {
                if out.outbox.is_some_and(|o| !o.contains(stored.id)) {
                    continue;
                }
                if stored.tracked && stored.resent {
                    out.resent.push(stored.id);
                }
                out.receipts.in_flight.push_back(entry.clone());
            }
            out.counters.messages_out.fetch_add(1, Ordering::Relaxed);
            out.counters
                .bytes_out
                .fetch_add(entry.len() as u64, Ordering::Relaxed);
            Outbound::Message(entry.message)
        } else if let Some(close) = pending.close.take() {
            close
        } else {
            break;
        };
        writer.start(frame)?;
        *unflushed = true;
    }
    writer.flush().await?;
    *unflushed = false;
    Ok(())
}

/// Where `drain` accounts for what it wrote.
struct Outflow<'a> {
    counters: &'a Counters,
    outbox: Option<&'a Outbox>,
    receipts: &'a mut Receipts,
    /// Tracked ids written again.
    resent: &'a mut Vec<u64>,
}

/// The heartbeat of one connection, as its wire's policy asks.
struct Pulse {
    policy: HeartbeatPolicy,
    heartbeat: Heartbeat,
    /// When we ping (`ClientPings` only).
    ticker: Option<Interval>,
}

impl Pulse {
    fn new(policy: HeartbeatPolicy, frames: u64) -> Pulse {
        let now = Instant::now();
        match policy {
            HeartbeatPolicy::ClientPings { interval, timeout } => {
                let every = interval.max(Duration::from_millis(1));
                let mut ticker = tokio::time::interval_at(now + every, every);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                Pulse {
                    policy,
                    heartbeat: Heartbeat::new(timeout),
                    ticker: Some(ticker),
                }
            }
            HeartbeatPolicy::PeerPings { silence } => {
                // Watched like an outstanding Ping that any frame answers.
                let mut heartbeat = Heartbeat::new(silence);
                heartbeat.ping_sent(now, frames);
                Pulse {
                    policy,
                    heartbeat,
                    ticker: None,
                }
            }
            HeartbeatPolicy::Off => Pulse {
                policy,
                heartbeat: Heartbeat::new(Duration::ZERO),
                ticker: None,
            },
        }
    }

    fn can_ping(&self) -> bool {
        self.ticker.is_some()
    }

    /// How long a suspension makes the link stale: the peer has given up
    /// on us by then.
    fn stale_after(&self) -> Option<Duration> {
        match self.policy {
            HeartbeatPolicy::ClientPings { interval, timeout } => Some(interval + timeout),
            HeartbeatPolicy::PeerPings { silence } => Some(silence),
            HeartbeatPolicy::Off => None,
        }
    }

    async fn tick(&mut self) {
        match &mut self.ticker {
            Some(ticker) => {
                ticker.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Queues a Ping ahead of data and starts its deadline.
    fn ping_now(&mut self, link: &Link, pending: &mut Pending) {
        let now = Instant::now();
        let payload = heartbeat::ping_payload(link.base, now);
        pending
            .control
            .push_back(Outbound::Ping(Bytes::copy_from_slice(&payload)));
        self.heartbeat
            .ping_sent(now, link.frames.load(Ordering::Relaxed));
        link.awaiting_life.store(true, Ordering::Release);
    }

    /// Judges the link at its deadline; the silence of a peer that pings
    /// is watched again from now.
    fn check(&mut self, link: &Link) -> Liveness {
        let now = Instant::now();
        let frames = link.frames.load(Ordering::Relaxed);
        let paused = link.reading_paused.load(Ordering::Acquire);
        let liveness = self.heartbeat.check(now, frames, paused);
        if liveness == Liveness::Alive && !self.can_ping() && self.stale_after().is_some() {
            // Silence counts from the peer's last frame (from now while
            // the app holds reading back).
            let since = match &link.last_frame {
                Some(at) if !paused => link.base + Duration::from_nanos(at.load(Ordering::Relaxed)),
                _ => now,
            };
            self.heartbeat.ping_sent(since.min(now), frames);
        }
        liveness
    }

    fn dead_ending(&self) -> Ending {
        let why = match self.policy {
            HeartbeatPolicy::ClientPings { timeout, .. } => format!(
                "no answer to a Ping within {} ms: the link is dead",
                timeout.as_millis()
            ),
            HeartbeatPolicy::PeerPings { silence } => format!(
                "nothing from the peer within {} ms: the link is dead",
                silence.as_millis()
            ),
            HeartbeatPolicy::Off => "the link is dead".to_string(),
        };
        Ending::abnormal(End::HeartbeatTimeout, error_code::HEARTBEAT_TIMEOUT, why)
    }
}

impl<W: Wire> Session<W> {
    /// Runs one open connection until it ends.
    pub(super) async fn run_open(&mut self, opened: Opened<W::Reader, W::Writer>) -> Ending {
        let Opened {
            reader,
            writer,
            protocol,
            heartbeat: policy,
        } = opened;
        self.machine.opened();
        self.report_state();
        log!(
            Info,
            "{}: open (subprotocol {:?})",
            self.wire.describe(),
            protocol.as_deref().unwrap_or("none")
        );
        self.events.send(Event::Open { protocol });
        if self.manual_flush {
            self.shared.queue.hold_backlog();
        }

        let opened_at = Instant::now();
        let link = Link {
            base: opened_at,
            frames: AtomicU64::new(0),
            last_frame: matches!(policy, HeartbeatPolicy::PeerPings { .. })
                .then(|| AtomicU64::new(0)),
            reading_paused: AtomicBool::new(false),
            awaiting_life: AtomicBool::new(false),
            events: self.events.clone(),
            shared: self.shared.clone(),
        };
        let mut pending = Pending::default();
        let mut receipts = Receipts::default();
        let mut resent = Vec::new();
        let outbox = self.shared.outbox.clone();
        let mut unflushed = false;
        // What the app asked this connection to end for, once asked.
        let mut requested: Option<End> = None;
        // The peer's Close frame, once it came before any request of ours.
        let mut peer_close: Option<(u16, String)> = None;
        // The peer's answer to our Close frame.
        let mut peer_answer: Option<(u16, String)> = None;
        let mut close_deadline: Option<Instant> = None;
        let mut pulse = Pulse::new(policy, 0);
        // While it has nothing to write, the task parks its writer in the
        // queue, where the app's sends write at once (queue::DirectWrite);
        // not with the outbox (each message needs its receipt) or a manual
        // flush (the backlog decides the order).
        let direct = outbox.is_none() && !self.manual_flush;
        let mut held = Some(writer);

        let mut ending = {
            let read = read_until_notable(reader, &link);
            tokio::pin!(read);
            loop {
                if held.is_none() {
                    held = Some(self.unpark_writer(&mut unflushed));
                }
                let closing = requested.is_some() || peer_close.is_some();
                if pending.is_empty() && !closing {
                    pending.take_queue(&self.shared);
                }
                let may_write = !pending.is_empty() || unflushed;
                if direct && !may_write && !closing {
                    held = match held.take().map(W::Writer::into_direct) {
                        Some(Ok(idle)) => self.shared.queue.park(idle).err().map(taken_back),
                        Some(Err(writer)) => Some(writer),
                        None => None,
                    };
                }
                let heartbeat_deadline = pulse.heartbeat.deadline().filter(|_| !closing);
                tokio::select! {
                    biased;
                    result = async {
                        match held.as_mut() {
                            Some(writer) => drain(writer, &mut pending, &mut unflushed, Outflow {
                                counters: &link.shared.counters,
                                outbox: outbox.as_deref(),
                                receipts: &mut receipts,
                                resent: &mut resent,
                            }).await,
                            None => Ok(()),
                        }
                    }, if may_write => {
                        if let Err(ending) = result {
                            break ending;
                        }
                        if !closing {
                            receipts.follow_with_ping(&mut pending);
                        }
                        if !resent.is_empty() {
                            self.events.send(Event::Resent { ids: std::mem::take(&mut resent) });
                        }
                    }
                    (returned, notable) = &mut read => match notable {
                        Notable::End(ending) => break ending,
                        Notable::Alive => {
                            read.set(read_until_notable(returned, &link));
                            // Clears the Ping's deadline: no timer left to
                            // wake for until the next Ping.
                            pulse.check(&link);
                        }
                        Notable::Flush => {
                            read.set(read_until_notable(returned, &link));
                            unflushed = true;
                        }
                        Notable::Confirmed(seq) => {
                            read.set(read_until_notable(returned, &link));
                            pulse.check(&link);
                            self.settle(receipts.confirmed(seq));
                        }
                        Notable::PeerClose(code, reason) => {
                            read.set(read_until_notable(returned, &link));
                            if requested.is_some() {
                                peer_answer = Some((code, reason));
                            } else if peer_close.is_none() {
                                // The peer is closing: no more data may be
                                // sent; what is pending waits for the next
                                // connection.
                                pending.requeue(&self.shared);
                                peer_close = Some((code, reason));
                                self.machine.closing(false);
                                self.report_state();
                                close_deadline = Some(self.close_deadline());
                            }
                        }
                    },
                    command = self.commands.recv(), if requested.is_none() => {
                        let (end, code, reason) = match command {
                            Some(Command::Close { code, reason }) => (End::UserClose, code, reason),
                            // The app dropped the client without closing.
                            None => (End::UserClose, 1001, String::new()),
                            Some(Command::Pause) => (End::Paused, 1001, "paused".to_string()),
                            Some(Command::Reconnect) => (End::Restart, 1001, "reconnecting".to_string()),
                            Some(Command::Resume) => {
                                if let Some(stale) = self.check_suspension(&mut pulse, &link, &mut pending, closing) {
                                    break stale;
                                }
                                continue;
                            }
                            Some(Command::NetworkChanged(available)) => {
                                self.network_available = available;
                                // The route may have changed: check the link now.
                                if pulse.can_ping() && !pulse.heartbeat.awaiting() && !closing {
                                    pulse.ping_now(&link, &mut pending);
                                }
                                continue;
                            }
                        };
                        if peer_close.is_none() {
                            // Everything queued before the close goes out first
                            // (on pause or reconnect it stays queued instead).
                            if end == End::UserClose {
                                pending.take_queue(&self.shared);
                            } else {
                                pending.requeue(&self.shared);
                            }
                            pending.close = Some(Outbound::Close { code, reason });
                            close_deadline = Some(self.close_deadline());
                        }
                        self.machine.closing(end == End::UserClose);
                        self.report_state();
                        requested = Some(end);
                    }
                    _ = self.shared.queue.notified(), if !may_write && !closing => {}
                    _ = pulse.tick(), if pulse.can_ping() && !pulse.heartbeat.awaiting() && !closing => {
                        if let Some(stale) = self.check_suspension(&mut pulse, &link, &mut pending, closing) {
                            break stale;
                        }
                        if !pulse.heartbeat.awaiting() {
                            pulse.ping_now(&link, &mut pending);
                        }
                    }
                    _ = sleep_until(heartbeat_deadline.unwrap_or_else(Instant::now)), if heartbeat_deadline.is_some() => {
                        if let Some(stale) = self.check_suspension(&mut pulse, &link, &mut pending, closing) {
                            break stale;
                        }
                        if pulse.check(&link) == Liveness::Dead {
                            break pulse.dead_ending();
                        }
                    }
                    _ = sleep_until(close_deadline.unwrap_or_else(Instant::now)), if close_deadline.is_some() => {
                        break match peer_close.as_ref().or(peer_answer.as_ref()) {
                            // The peer said why it closes (or answered our
                            // Close): that is the end, even if it never
                            // hangs up.
                            Some((code, reason)) => Ending::peer_closed(*code, reason.clone()),
                            None => Ending::abnormal(
                                requested.clone().unwrap_or(End::UserClose),
                                error_code::CLOSE_TIMEOUT,
                                format!(
                                    "the peer did not finish the close handshake within {} ms",
                                    self.close_timeout.as_millis()
                                ),
                            ),
                        };
                    }
                }
            }
        };

        let mut writer = match held {
            Some(writer) => writer,
            None => self.unpark_writer(&mut unflushed),
        };
        // A protocol violation by the peer: first let the app answer what
        // it received before (briefly), then tell the peer why, hang up.
        if let Some(violation) = ending.violation {
            let mark = self.events.idle_polls();
            let linger = self.close_timeout.min(Duration::from_secs(1));
            let out = Outflow {
                counters: &self.shared.counters,
                outbox: outbox.as_deref(),
                receipts: &mut receipts,
                resent: &mut resent,
            };
            let _ = tokio::time::timeout(linger, async {
                self.events.app_caught_up(mark).await;
                if requested.is_none() {
                    pending.take_queue(&self.shared);
                }
                drain(&mut writer, &mut pending, &mut unflushed, out).await
            })
            .await;
            let code = violation.close_code();
            let mut close = Pending {
                close: Some(Outbound::Close {
                    code,
                    reason: String::new(),
                }),
                ..Pending::default()
            };
            let out = Outflow {
                counters: &self.shared.counters,
                outbox: outbox.as_deref(),
                receipts: &mut receipts,
                resent: &mut resent,
            };
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                drain(&mut writer, &mut close, &mut unflushed, out),
            )
            .await;
            ending.closed = Some((code, String::new()));
        }
        // Whatever was not proven read goes back, in front and in order, for
        // the next connection: outbox messages written (and tracked ones
        // not acked yet) first, then what was taken but not written.
        pending.requeue(&self.shared);
        self.requeue_unconfirmed(receipts.in_flight);

        if opened_at.elapsed() >= self.reset_after {
            self.machine.stayed_open();
        }
        // The connection ended after the app asked it to (close, pause,
        // reconnect): that request, not the peer's echo, says what is next.
        if let Some(end) = requested {
            if ending.error.is_none() || end != End::UserClose {
                ending.end = end;
            }
        }
        ending
    }

    /// Outbox messages proven read: untracked ones leave the outbox (off
    /// the runtime thread: a sync may take milliseconds), tracked ones
    /// wait for the app's ack.
    fn settle(&self, read: Vec<Entry>) {
        let Some(outbox) = self.shared.outbox.clone() else {
            return;
        };
        let mut delivered = Vec::new();
        let mut unacked = self.shared.unacked.lock();
        for entry in read {
            let Some(stored) = entry.stored else { continue };
            if stored.tracked {
                if outbox.contains(stored.id) {
                    unacked.insert(stored.id, entry);
                }
            } else {
                delivered.push(stored.id);
            }
        }
        drop(unacked);
        if !delivered.is_empty() {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = outbox.remove(&delivered) {
                    log!(Warn, "{e}");
                }
            });
        }
    }

    /// Puts outbox messages not proven read, and tracked ones not acked, in
    /// front of the queue, oldest first, marked as sent before.
    fn requeue_unconfirmed(&self, in_flight: VecDeque<Entry>) {
        let Some(outbox) = &self.shared.outbox else {
            return;
        };
        let unacked = std::mem::take(&mut *self.shared.unacked.lock());
        let mut again: Vec<Entry> = unacked.into_values().chain(in_flight).collect();
        again.retain(|e| e.stored.is_some_and(|s| outbox.contains(s.id)));
        for entry in &mut again {
            if let Some(stored) = &mut entry.stored {
                stored.resent = true;
            }
        }
        again.sort_by_key(|e| e.stored.map(|s| s.id));
        again.dedup_by_key(|e| e.stored.map(|s| s.id));
        self.shared.queue.requeue_front(again.into());
    }

    /// Takes the writer back from the queue; a direct write that left
    /// bytes behind makes a flush owed.
    fn unpark_writer(&self, unflushed: &mut bool) -> W::Writer {
        let (parked, flush_owed) = self
            .shared
            .queue
            .unpark()
            .expect("the writer is parked while the task does not hold it");
        *unflushed |= flush_owed;
        taken_back(parked)
    }

    fn close_deadline(&self) -> Instant {
        Instant::now() + self.close_timeout
    }

    /// The driver woke (a timer fired, the app called in): if the process
    /// slept meanwhile, a link silent for longer than the peer waits is
    /// stale; a shorter sleep is checked with a Ping.
    fn check_suspension(
        &mut self,
        pulse: &mut Pulse,
        link: &Link,
        pending: &mut Pending,
        closing: bool,
    ) -> Option<Ending> {
        let slept = self.suspension.check()?;
        if closing {
            return None;
        }
        if pulse.stale_after().is_some_and(|limit| slept >= limit) {
            let why = format!(
                "the process was suspended for {} s: the link is stale",
                slept.as_secs()
            );
            return Some(Ending::abnormal(
                End::HeartbeatTimeout,
                error_code::HEARTBEAT_TIMEOUT,
                why,
            ));
        }
        if pulse.can_ping() && !pulse.heartbeat.awaiting() {
            pulse.ping_now(link, pending);
        }
        None
    }
}
