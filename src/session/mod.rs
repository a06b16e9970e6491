//! The session driver: one client across all its connections, whatever
//! the wire protocol.
//!
//! It owns every transition of the state machine, the backoff and its
//! Retry-After floor, reconnect decisions, pause/resume and network hints,
//! the outgoing queue, heartbeat policy and close-handshake deadlines
//! (whoever starts the close). A [`Wire`] only opens connections and
//! moves frames. Time comes from tokio (paused in tests) and the
//! [`SuspendClock`]; bytes from the wire's injected dialer, so every timer
//! and transition is tested on virtual time against in-memory streams.

mod clock;
mod commands;
mod open;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::time::{sleep_until, Instant};

pub(crate) use clock::{SuspendClock, SystemSuspendClock};

use crate::backoff::Backoff;
use crate::error::{error_code, Error};
use crate::event::{Event, EventSender};
use crate::logging::log;
use crate::options::{Flush, Options};
use crate::outbox::Outbox;
use crate::queue::{Entry, OutgoingQueue, Stored};
use crate::state::{Machine, Next, RetryPolicy, State};
use crate::wire::{Ending, Opened, Wire};
use clock::SuspensionDetector;
pub(crate) use commands::{command_channel, CommandReceiver, CommandSender};

/// Requests from the app to its session.
#[derive(Debug)]
pub(crate) enum Command {
    Close {
        code: u16,
        reason: String,
    },
    /// App went to the background: close politely, keep the queue, do not
    /// reconnect until `Resume`.
    Pause,
    /// Reconnect now (after a pause, or to cut a backoff wait short).
    Resume,
    /// The OS says the network went away (false) or came back (true).
    NetworkChanged(bool),
    /// Drop the current connection (politely) and open a fresh one now.
    Reconnect,
}

/// Counters of one client, updated by its session.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub reconnects: AtomicU64,
    /// Last Ping round trip in microseconds; 0 = none measured yet.
    pub rtt_micros: AtomicU64,
    /// Messages dropped by `queue.overflow = "drop_oldest"`.
    pub dropped: AtomicU64,
}

/// What the app side and the session share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub queue: OutgoingQueue,
    pub counters: Counters,
    /// Headers of the next handshake (`set_header` changes them).
    pub headers: Mutex<BTreeMap<String, String>>,
    /// The durable outbox, if the options name one.
    pub outbox: Option<Arc<Outbox>>,
    /// Tracked outbox messages the server has read and the app not acked
    /// yet, by id: sent again after every reconnect until acked.
    pub unacked: Mutex<BTreeMap<u64, Entry>>,
}

impl Shared {
    /// Opens the outbox the options name, if any, and queues what an
    /// earlier run left in it, in order, ahead of anything sent from now.
    pub fn open(options: &Options) -> Result<Shared, Error> {
        let Some(outbox_options) = &options.outbox else {
            return Ok(Shared::new(options, None));
        };
        let (outbox, rows) = Outbox::open(outbox_options)?;
        let shared = Shared::new(options, Some(Arc::new(outbox)));
        for row in rows {
            shared.queue.push_stored(Entry {
                message: row.message,
                // It may have gone out before the app was killed.
                stored: Some(Stored {
                    id: row.id,
                    tracked: row.tracked,
                    resent: true,
                }),
            });
        }
        Ok(shared)
    }

    /// The server confirmed the tracked message `id`: it leaves the outbox
    /// (and the resend list). False if no such message was pending.
    pub fn ack(&self, outbox: &Outbox, id: u64) -> Result<bool, Error> {
        self.unacked.lock().remove(&id);
        outbox.remove(&[id])
    }

    fn new(options: &Options, outbox: Option<Arc<Outbox>>) -> Shared {
        Shared {
            queue: OutgoingQueue::new(&options.queue),
            counters: Counters::default(),
            headers: Mutex::new(options.headers.clone()),
            outbox,
            unacked: Mutex::new(BTreeMap::new()),
        }
    }
}

/// The driver of one client. Runs on the runtime thread until the client
/// terminates.
pub(crate) struct Session<W: Wire> {
    wire: W,
    connect_timeout: Duration,
    close_timeout: Duration,
    /// An open connection that lasted this long resets the backoff.
    reset_after: Duration,
    /// The cap on a server's `Retry-After`.
    max_retry_after: Duration,
    manual_flush: bool,
    shared: Arc<Shared>,
    events: EventSender,
    commands: CommandReceiver,
    machine: Machine,
    backoff: Backoff,
    suspension: SuspensionDetector,
    /// The state last reported to the app.
    reported: State,
    /// Paused by the app (`ws_pause`) until `ws_resume`.
    paused: bool,
    /// The OS's last network hint (`ws_network_changed`).
    network_available: bool,
}

impl<W: Wire> Session<W> {
    pub fn new(
        wire: W,
        options: &Options,
        shared: Arc<Shared>,
        events: EventSender,
        commands: CommandReceiver,
        clock: Arc<dyn SuspendClock>,
    ) -> Session<W> {
        Session {
            wire,
            connect_timeout: options.connect_timeout(),
            close_timeout: options.close_timeout(),
            reset_after: Duration::from_millis(options.reconnect.reset_after_ms),
            max_retry_after: Duration::from_millis(options.reconnect.max_retry_after_ms),
            manual_flush: options.queue.flush == Flush::Manual,
            shared,
            events,
            commands,
            machine: Machine::new(RetryPolicy {
                enabled: options.reconnect.enabled,
                max_attempts: options.reconnect.max_attempts,
            }),
            backoff: Backoff::new(&options.reconnect),
            suspension: SuspensionDetector::new(clock),
            reported: State::Connecting,
            paused: false,
            network_available: true,
        }
    }

    /// Runs the client to its end. Always finishes with `Terminated`, even
    /// if the driver panicked (reported as an internal error).
    pub async fn run(self) {
        let events = self.events.clone();
        let shared = self.shared.clone();
        if AssertUnwindSafe(self.drive()).catch_unwind().await.is_err() {
            let (unsent, _) = shared.queue.close();
            events.send(Event::Error {
                code: Error::Internal(String::new()).status(),
                message: format!(
                    "internal error: the connection task panicked ({unsent} queued messages never sent)"
                ),
            });
            events.send(Event::State(State::Closed));
            events.send(Event::Terminated);
        }
    }

    async fn drive(mut self) {
        self.events.send(Event::State(State::Connecting));
        let target = self.wire.describe();
        loop {
            let ending = match self.attempt().await {
                Ok(opened) => self.run_open(opened).await,
                Err(ending) => ending,
            };
            if let Some((code, message)) = &ending.error {
                log!(Warn, "{target}: {message} (error {code})");
                self.events.send(Event::Error {
                    code: *code,
                    message: message.clone(),
                });
            }
            if let Some((code, reason)) = ending.closed {
                log!(Info, "{target}: connection closed, code {code}");
                self.events.send(Event::Closed { code, reason });
            }
            let wait = match self.machine.ended(&ending.end) {
                Next::Stop => break,
                Next::ReconnectNow => {
                    self.report_state();
                    Some(Duration::ZERO)
                }
                Next::Suspend => {
                    self.paused = true;
                    self.report_state();
                    None
                }
                Next::Reconnect { attempt } => {
                    if let Some(base) = self.wire.reconnect_delay() {
                        self.backoff.set_initial_delay(base);
                    }
                    let delay = retry_delay(
                        self.backoff.delay(attempt - 1),
                        ending.retry_after,
                        self.max_retry_after,
                    );
                    self.shared
                        .counters
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                    self.report_state();
                    log!(
                        Info,
                        "{target}: reconnecting, attempt {attempt} in {} ms",
                        delay.as_millis()
                    );
                    self.events.send(Event::Reconnecting { attempt, delay });
                    Some(delay)
                }
            };
            if !self.wait_before_retry(wait).await {
                self.machine.close_while_down();
                break;
            }
        }
        self.report_unsent();
        if let Some(outbox) = &self.shared.outbox {
            outbox.close();
        }
        self.report_state();
        log!(Info, "{target}: terminated");
        self.events.send(Event::Terminated);
    }

    /// Emits a `State` event if the machine moved since the last one.
    fn report_state(&mut self) {
        let state = self.machine.state();
        if state != self.reported {
            self.reported = state;
            self.events.send(Event::State(state));
        }
    }

    fn report_unsent(&self) {
        let (messages, bytes) = self.shared.queue.close();
        if let Some(outbox) = &self.shared.outbox {
            let kept = outbox.pending();
            if kept > 0 {
                self.events.send(Event::Error {
                    code: error_code::UNSENT,
                    message: format!(
                        "closed with {kept} messages not yet delivered; they stay in the outbox {} for the next connect",
                        outbox.path().display()
                    ),
                });
            }
        } else if messages > 0 {
            self.events.send(Event::Error {
                code: error_code::UNSENT,
                message: format!(
                    "closed with {messages} queued messages ({bytes} bytes) never sent"
                ),
            });
        }
    }

    /// Waits out `delay` (`None`: until resumed) while paused or offline
    /// waits are extended and app hints cut them short. False if the app
    /// closed meanwhile. A suspension needs no check here: its timer fires
    /// late anyway, and every app call that could notice one (resume,
    /// network back) already ends the wait.
    async fn wait_before_retry(&mut self, delay: Option<Duration>) -> bool {
        // A delay too large for the clock waits for the app instead.
        let deadline = delay.and_then(|d| Instant::now().checked_add(d));
        loop {
            let may_try = !self.paused && self.network_available;
            let timer = deadline.filter(|_| may_try);
            tokio::select! {
                _ = sleep_until(timer.unwrap_or_else(Instant::now)), if timer.is_some() => return true,
                command = self.commands.recv() => match command {
                    Some(Command::Close { .. }) | None => return false,
                    Some(Command::Pause) => self.paused = true,
                    Some(Command::Resume) | Some(Command::Reconnect) => {
                        self.paused = false;
                        if self.network_available {
                            return true;
                        }
                    }
                    Some(Command::NetworkChanged(available)) => {
                        self.network_available = available;
                        if available && !self.paused {
                            return true;
                        }
                    }
                },
            }
        }
    }

    /// One connection attempt, bounded by `connect_timeout_ms`, abandoned
    /// if the app closes, pauses or asks for a fresh attempt meanwhile.
    async fn attempt(&mut self) -> Result<Opened<W::Reader, W::Writer>, Ending> {
        log!(Info, "connecting to {}", self.wire.describe());
        let headers = self.shared.headers.lock().clone();
        let timeout = self.connect_timeout;
        // On the heap: an attempt's state (its read buffer, TLS) is needed
        // only while it runs, and the session's future stays small for
        // the long idle stretches of an open connection.
        let open = tokio::time::timeout(timeout, Box::pin(self.wire.open(&headers)));
        tokio::pin!(open);
        loop {
            tokio::select! {
                result = &mut open => return match result {
                    Ok(result) => result,
                    Err(_) => Err(Ending::failed(
                        crate::state::End::ConnectFailed,
                        error_code::CONNECT_TIMEOUT,
                        format!(
                            "connect timed out after {} ms (DNS, TCP, TLS and upgrade)",
                            timeout.as_millis()
                        ),
                    )),
                },
                command = self.commands.recv() => match command {
                    Some(Command::Close { .. }) | None => {
                        return Err(Ending::quiet(crate::state::End::UserClose));
                    }
                    Some(Command::Pause) => return Err(Ending::quiet(crate::state::End::Paused)),
                    Some(Command::Reconnect) => return Err(Ending::quiet(crate::state::End::Restart)),
                    Some(Command::NetworkChanged(available)) => self.network_available = available,
                    Some(Command::Resume) => {}
                },
            }
        }
    }
}

/// The wait before a retry: the backoff's, or longer if the server asked
/// for it (`Retry-After`), up to `max_retry_after`.
fn retry_delay(
    backoff: Duration,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
) -> Duration {
    backoff.max(retry_after.unwrap_or_default().min(max_retry_after))
}
