//! One open connection of a session: its reader and writer run at once in
//! the session's task (a large write never stops reading, which would
//! deadlock against a peer that echoes while we write), and the driver
//! decides on heartbeat, close and the app's requests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant, Interval, MissedTickBehavior};

use super::{Command, Counters, Session, Shared};
use crate::error::error_code;
use crate::event::{Event, EventSender};
use crate::heartbeat::{self, Heartbeat, Liveness};
use crate::logging::log;
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
        link.frames.fetch_add(1, Ordering::Relaxed);
        let counters = &link.shared.counters;
        let event = match incoming {
            Incoming::Text(text) => Some(Event::Text(text)),
            Incoming::Binary(data) => Some(Event::Binary(data)),
            Incoming::Pong(payload) => {
                if let Some(rtt) = heartbeat::round_trip(link.base, Instant::now(), &payload) {
                    let micros = (rtt.as_micros() as u64).max(1);
                    counters.rtt_micros.store(micros, Ordering::Relaxed);
                }
                None
            }
            Incoming::Control => None,
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

/// Hands pending frames to the wire in order, then flushes. Cancel-safe:
/// a frame leaves `pending` only when the wire takes it, and `unflushed`
/// says whether a flush is still owed.
async fn drain<Wr: WireWriter>(
    writer: &mut Wr,
    pending: &mut VecDeque<Outbound>,
    unflushed: &mut bool,
    counters: &Counters,
) -> Result<(), Ending> {
    while !pending.is_empty() {
        writer.ready().await?;
        let Some(frame) = pending.pop_front() else {
            break;
        };
        if let Outbound::Message(message) = &frame {
            counters.messages_out.fetch_add(1, Ordering::Relaxed);
            counters
                .bytes_out
                .fetch_add(crate::queue::message_len(message) as u64, Ordering::Relaxed);
        }
        writer.start(frame)?;
        *unflushed = true;
    }
    writer.flush().await?;
    *unflushed = false;
    Ok(())
}

/// Puts the messages of `pending` back in front of the queue (Pings and
/// Close frames belong to the connection that ends).
fn requeue(shared: &Shared, pending: &mut VecDeque<Outbound>) {
    let messages = pending
        .drain(..)
        .filter_map(|frame| match frame {
            Outbound::Message(message) => Some(message),
            _ => None,
        })
        .collect();
    shared.queue.requeue_front(messages);
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
    fn ping_now(&mut self, link: &Link, pending: &mut VecDeque<Outbound>) {
        let now = Instant::now();
        pending.push_front(Outbound::Ping(heartbeat::ping_payload(link.base, now)));
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
            self.heartbeat.ping_sent(now, frames);
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
            mut writer,
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
            reading_paused: AtomicBool::new(false),
            awaiting_life: AtomicBool::new(false),
            events: self.events.clone(),
            shared: self.shared.clone(),
        };
        let mut pending: VecDeque<Outbound> = VecDeque::new();
        let mut unflushed = false;
        // What the app asked this connection to end for, once asked.
        let mut requested: Option<End> = None;
        // The peer's Close frame, once it came before any request of ours.
        let mut peer_close: Option<(u16, String)> = None;
        let mut close_deadline: Option<Instant> = None;
        let mut pulse = Pulse::new(policy, 0);

        let mut ending = {
            let read = read_until_notable(reader, &link);
            tokio::pin!(read);
            loop {
                let closing = requested.is_some() || peer_close.is_some();
                if pending.is_empty() && !closing {
                    pending.extend(
                        self.shared
                            .queue
                            .take_all()
                            .into_iter()
                            .map(Outbound::Message),
                    );
                }
                let may_write = !pending.is_empty() || unflushed;
                let heartbeat_deadline = pulse.heartbeat.deadline().filter(|_| !closing);
                tokio::select! {
                    biased;
                    result = drain(&mut writer, &mut pending, &mut unflushed, &link.shared.counters), if may_write => {
                        if let Err(ending) = result {
                            break ending;
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
                        Notable::PeerClose(code, reason) => {
                            read.set(read_until_notable(returned, &link));
                            if requested.is_none() && peer_close.is_none() {
                                // The peer is closing: no more data may be
                                // sent; what is pending waits for the next
                                // connection.
                                requeue(&self.shared, &mut pending);
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
                                pending.extend(
                                    self.shared.queue.take_all().into_iter().map(Outbound::Message),
                                );
                            } else {
                                requeue(&self.shared, &mut pending);
                            }
                            pending.push_back(Outbound::Close { code, reason });
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
                        break match &peer_close {
                            // The peer said why it closes: that is the end,
                            // even if it never hangs up.
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

        // A protocol violation by the peer: first let the app answer what
        // it received before (briefly), then tell the peer why, hang up.
        if let Some(violation) = ending.violation {
            let mark = self.events.idle_polls();
            let linger = self.close_timeout.min(Duration::from_secs(1));
            let counters = &self.shared.counters;
            let _ = tokio::time::timeout(linger, async {
                self.events.app_caught_up(mark).await;
                if requested.is_none() {
                    pending.extend(
                        self.shared
                            .queue
                            .take_all()
                            .into_iter()
                            .map(Outbound::Message),
                    );
                }
                drain(&mut writer, &mut pending, &mut unflushed, counters).await
            })
            .await;
            let code = violation.close_code();
            let mut close = VecDeque::from([Outbound::Close {
                code,
                reason: String::new(),
            }]);
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                drain(&mut writer, &mut close, &mut unflushed, counters),
            )
            .await;
            ending.closed = Some((code, String::new()));
        }
        // Whatever was taken from the queue but not written goes back, in
        // front, for the next connection.
        requeue(&self.shared, &mut pending);

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
        pending: &mut VecDeque<Outbound>,
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
