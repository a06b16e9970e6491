//! The driver's timers and transitions on tokio's paused time, against
//! in-memory streams: each attempt of the client is either refused or
//! handed to the test as the server's end of a `tokio::io::duplex`, where a
//! small scripted peer (tokio-tungstenite's server side, or raw bytes)
//! answers. Deterministic: no sockets, no wall-clock windows.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::clock::testing::TestClock;
use super::{command_channel, Command, CommandSender, Session, Shared};
use crate::backoff::Backoff;
use crate::error::error_code;
use crate::event::{self, Event, EventReceiver};
use crate::options::Options;
use crate::queue::{Message, Pushed};
use crate::state::State;
use crate::transport::{ConnectError, Dialer, Endpoint, Transport};
use crate::wire::websocket::WebSocketWire;
use crate::wire::HeartbeatPolicy;

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// The test's network: records every attempt; refuses it while down,
/// else hands the server's end of a fresh in-memory stream to the test.
struct MemoryNet {
    up: AtomicBool,
    attempts: Mutex<Vec<Instant>>,
    accepted: mpsc::UnboundedSender<DuplexStream>,
}

struct MemoryDialer(Arc<MemoryNet>);

impl Dialer for MemoryDialer {
    fn dial<'a>(&'a self, _: &'a Endpoint) -> BoxFuture<'a, Result<Transport, ConnectError>> {
        Box::pin(async move {
            self.0.attempts.lock().push(Instant::now());
            if !self.0.up.load(Ordering::SeqCst) {
                return Err(ConnectError::Tcp(io::ErrorKind::ConnectionRefused.into()));
            }
            let (client, server) = tokio::io::duplex(64 * 1024);
            let _ = self.0.accepted.send(server);
            Ok(Transport::Injected(Box::new(client)))
        })
    }
}

type ServerWs = WebSocketStream<DuplexStream>;

struct Harness {
    net: Arc<MemoryNet>,
    servers: mpsc::UnboundedReceiver<DuplexStream>,
    events: EventReceiver,
    commands: CommandSender,
    shared: Arc<Shared>,
    clock: Arc<TestClock>,
}

impl Harness {
    fn start(json: &str) -> Harness {
        Harness::start_with(json, |wire| wire)
    }

    /// Starts a session on the test's network, its wire adjusted by `adjust`.
    fn start_with(json: &str, adjust: impl FnOnce(WebSocketWire) -> WebSocketWire) -> Harness {
        let options = Options::from_json(Some(json)).unwrap();
        let (accepted, servers) = mpsc::unbounded_channel();
        let net = Arc::new(MemoryNet {
            up: AtomicBool::new(true),
            attempts: Mutex::new(Vec::new()),
            accepted,
        });
        let endpoint = Endpoint::parse("ws://memory.test/chat").unwrap();
        let wire = adjust(WebSocketWire::new(
            endpoint,
            &options,
            Box::new(MemoryDialer(net.clone())),
        ));
        let shared = Arc::new(Shared::open(&options).unwrap());
        let (event_tx, events) = event::channel(options.max_unpolled_bytes);
        let (commands, command_rx) = command_channel();
        let clock = TestClock::new();
        let session = Session::new(
            wire,
            &options,
            shared.clone(),
            event_tx,
            command_rx,
            clock.clone(),
        );
        tokio::spawn(session.run());
        Harness {
            net,
            servers,
            events,
            commands,
            shared,
            clock,
        }
    }

    fn set_up(&self, up: bool) {
        self.net.up.store(up, Ordering::SeqCst);
    }

    fn attempts(&self) -> Vec<Instant> {
        self.net.attempts.lock().clone()
    }

    fn command(&self, command: Command) {
        self.commands.send(command).unwrap();
    }

    fn send_text(&self, text: &str) {
        self.shared.queue.push(Message::text(text)).unwrap();
    }

    fn outbox(&self) -> &crate::outbox::Outbox {
        self.shared.outbox.as_deref().expect("no outbox option")
    }

    /// `ws_send` (or `ws_send_tracked`) with an outbox: returns once stored.
    fn store(&self, text: &str, tracked: bool) -> u64 {
        self.outbox()
            .push(Message::text(text), tracked, &self.shared.queue)
            .unwrap()
    }

    /// Waits (real time: deletes run off the runtime thread) until the
    /// outbox holds `n` messages.
    async fn outbox_settles_at(&self, n: u64) {
        for _ in 0..2_000 {
            if self.outbox().pending() == n {
                return;
            }
            tokio::time::sleep(MS).await;
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the outbox holds {}, not {n}", self.outbox().pending());
    }

    /// The next event, waiting at most an hour of virtual time.
    async fn next_event(&self) -> Event {
        let deadline = Instant::now() + 3600 * SECOND;
        loop {
            if let Ok(event) = self.events.recv(Some(Duration::ZERO)) {
                return event;
            }
            assert!(Instant::now() < deadline, "no event within an hour");
            tokio::time::sleep(MS).await;
        }
    }

    /// Events up to and including the first that `until` accepts.
    async fn events_until(&self, until: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let event = self.next_event().await;
            let done = until(&event);
            seen.push(event);
            if done {
                return seen;
            }
            assert!(seen.len() < 10_000, "runaway events: {seen:?}");
        }
    }

    /// Lets virtual time pass, and says which events came meanwhile.
    async fn idle(&self, d: Duration) -> Vec<Event> {
        tokio::time::sleep(d).await;
        let mut seen = Vec::new();
        while let Ok(event) = self.events.recv(Some(Duration::ZERO)) {
            seen.push(event);
        }
        seen
    }

    /// The server's end of the next accepted attempt.
    async fn server(&mut self) -> DuplexStream {
        tokio::time::timeout(3600 * SECOND, self.servers.recv())
            .await
            .expect("no attempt within an hour")
            .expect("the network is gone")
    }

    /// Accepts the next attempt as a WebSocket server.
    async fn accept(&mut self) -> ServerWs {
        let stream = self.server().await;
        tokio_tungstenite::accept_async(stream).await.unwrap()
    }

    /// Accepts the next attempt with an echo server that also answers
    /// Pings (tungstenite does, while it reads).
    async fn accept_echo(&mut self) {
        let mut ws = self.accept().await;
        tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if message.is_text() || message.is_binary() {
                    let _ = ws.send(message).await;
                }
            }
        });
    }
}

/// Reads an HTTP request head and answers it with `response`, then hangs up.
async fn refuse(mut stream: DuplexStream, response: &str) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn is_open(event: &Event) -> bool {
    matches!(event, Event::Open { .. })
}

fn is_terminated(event: &Event) -> bool {
    *event == Event::Terminated
}

/// What `pick` finds in each event that has it, in order.
fn pick<T>(events: &[Event], pick: impl Fn(&Event) -> Option<T>) -> Vec<T> {
    events.iter().filter_map(pick).collect()
}

fn reconnecting(events: &[Event]) -> Vec<(u32, Duration)> {
    pick(events, |e| match e {
        Event::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
        _ => None,
    })
}

fn states(events: &[Event]) -> Vec<State> {
    pick(events, |e| match e {
        Event::State(s) => Some(*s),
        _ => None,
    })
}

fn error_codes(events: &[Event]) -> Vec<i32> {
    pick(events, |e| match e {
        Event::Error { code, .. } => Some(*code),
        _ => None,
    })
}

fn closed_codes(events: &[Event]) -> Vec<u16> {
    pick(events, |e| match e {
        Event::Closed { code, .. } => Some(*code),
        _ => None,
    })
}

/// `after` is `expected` on the virtual clock, give or take the 1 ms steps
/// in which the test polls for events.
#[track_caller]
fn assert_at(after: Duration, expected: Duration) {
    assert!(
        after >= expected && after < expected + 10 * MS,
        "after {after:?}, not {expected:?}"
    );
}

fn gaps(times: &[Instant]) -> Vec<Duration> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn backoff_follows_the_seeded_jitter_and_stops_after_max_attempts() {
    let json = r#"{"reconnect": {"initial_delay_ms": 1000, "max_delay_ms": 8000,
                   "multiplier": 2.0, "jitter": 0.5, "jitter_seed": 42, "max_attempts": 5}}"#;
    let h = Harness::start(json);
    h.set_up(false);
    let events = h.events_until(is_terminated).await;

    let mut expected = Backoff::new(&Options::from_json(Some(json)).unwrap().reconnect);
    let delays: Vec<Duration> = (0..5).map(|i| expected.delay(i)).collect();
    let announced = reconnecting(&events);
    assert_eq!(
        announced,
        delays
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u32 + 1, *d))
            .collect::<Vec<_>>()
    );
    // Each attempt came exactly when announced: the delays are real.
    assert_eq!(gaps(&h.attempts()), delays);
    assert_eq!(h.attempts().len(), 6, "the first try and 5 retries");
    assert_eq!(error_codes(&events), vec![error_code::CONNECT; 6]);
    assert_eq!(
        states(&events),
        vec![State::Connecting, State::Reconnecting, State::Closed]
    );
}

#[tokio::test(start_paused = true)]
async fn delays_grow_to_the_cap_without_jitter() {
    let h = Harness::start(
        r#"{"reconnect": {"initial_delay_ms": 1000, "max_delay_ms": 5000, "jitter": 0,
                          "max_attempts": 5}}"#,
    );
    h.set_up(false);
    h.events_until(is_terminated).await;
    assert_eq!(
        gaps(&h.attempts()),
        [1, 2, 4, 5, 5].map(|s| s * SECOND).to_vec()
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_stayed_open_resets_the_attempts() {
    let mut h = Harness::start(
        r#"{"reconnect": {"initial_delay_ms": 1000, "jitter": 0, "reset_after_ms": 5000},
            "ping_interval_ms": 0}"#,
    );
    // Two short-lived connections: the backoff keeps growing.
    for expected in [(1, SECOND), (2, 2 * SECOND)] {
        let ws = h.accept().await;
        h.events_until(is_open).await;
        tokio::time::sleep(SECOND).await;
        drop(ws);
        let events = h
            .events_until(|e| matches!(e, Event::Reconnecting { .. }))
            .await;
        assert_eq!(reconnecting(&events), vec![expected]);
        assert_eq!(closed_codes(&events), vec![1006]);
    }
    // One that lasts past reset_after_ms: the next retry is the first again.
    let ws = h.accept().await;
    h.events_until(is_open).await;
    tokio::time::sleep(6 * SECOND).await;
    drop(ws);
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(reconnecting(&events), vec![(1, SECOND)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_sets_a_floor_under_the_backoff() {
    let mut h = Harness::start(r#"{"reconnect": {"initial_delay_ms": 1000, "jitter": 0}}"#);
    let server = h.server().await;
    refuse(
        server,
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(error_codes(&events), vec![503]);
    assert_eq!(reconnecting(&events), vec![(1, 7 * SECOND)]);
    // A 429 without Retry-After waits the backoff only.
    let server = h.server().await;
    refuse(
        server,
        "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(reconnecting(&events), vec![(2, 2 * SECOND)]);
    assert_eq!(gaps(&h.attempts()), vec![7 * SECOND]);
    // A 401 is configuration: reported, never retried.
    let server = h.server().await;
    refuse(
        server,
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let events = h.events_until(is_terminated).await;
    assert_eq!(error_codes(&events), vec![401]);
    assert_eq!(states(&events), vec![State::Closed]);
    assert!(h.idle(600 * SECOND).await.is_empty());
    assert_eq!(h.attempts().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_is_capped_and_the_announced_delay_is_the_real_one() {
    let mut h = Harness::start(
        r#"{"reconnect": {"initial_delay_ms": 1000, "jitter": 0, "max_retry_after_ms": 120000}}"#,
    );
    let mut announced = Vec::new();
    for retry_after in [
        "99999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "-1",
        "soon",
    ] {
        let server = h.server().await;
        refuse(
            server,
            &format!(
                "HTTP/1.1 503 Busy\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\n\r\n"
            ),
        )
        .await;
        let events = h
            .events_until(|e| matches!(e, Event::Reconnecting { .. }))
            .await;
        announced.extend(reconnecting(&events).into_iter().map(|(_, d)| d));
    }
    let _last = h.server().await;
    let gaps = gaps(&h.attempts());
    assert_eq!(announced, gaps, "RECONNECTING.delay is the real delay");
    // Capped at 2 minutes; unparsable values leave the backoff alone.
    assert_eq!(
        gaps,
        vec![120 * SECOND, 120 * SECOND, 4 * SECOND, 8 * SECOND]
    );
}

#[test]
fn the_retry_delay_is_the_backoff_or_the_capped_retry_after() {
    use super::retry_delay;
    let cap = 60 * SECOND;
    assert_eq!(retry_delay(SECOND, None, cap), SECOND);
    assert_eq!(retry_delay(SECOND, Some(7 * SECOND), cap), 7 * SECOND);
    assert_eq!(retry_delay(9 * SECOND, Some(7 * SECOND), cap), 9 * SECOND);
    assert_eq!(retry_delay(SECOND, Some(Duration::MAX), cap), cap);
    assert_eq!(retry_delay(SECOND, Some(Duration::ZERO), cap), SECOND);
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_ping_is_a_dead_link_at_its_deadline() {
    let mut h = Harness::start(
        r#"{"ping_interval_ms": 30000, "pong_timeout_ms": 10000,
            "reconnect": {"initial_delay_ms": 1000, "jitter": 0}}"#,
    );
    // Accepts, then never reads again: no Pong ever comes.
    let _silent = h.accept().await;
    h.events_until(is_open).await;
    let opened = Instant::now();
    let events = h.events_until(|e| matches!(e, Event::Error { .. })).await;
    let after = Instant::now() - opened;
    assert_eq!(error_codes(&events), vec![error_code::HEARTBEAT_TIMEOUT]);
    assert!(
        after >= 40 * SECOND && after < 40 * SECOND + 10 * MS,
        "dead after {after:?}, not at ping (30 s) + pong timeout (10 s)"
    );
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(closed_codes(&events), vec![1006]);
    assert_eq!(reconnecting(&events), vec![(1, SECOND)]);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_answers_pings_stays_connected_and_gives_a_round_trip() {
    let mut h = Harness::start(r#"{"ping_interval_ms": 30000, "pong_timeout_ms": 10000}"#);
    h.accept_echo().await;
    h.events_until(is_open).await;
    let events = h.idle(600 * SECOND).await;
    assert!(events.is_empty(), "{events:?}");
    assert!(h.shared.counters.rtt_micros.load(Ordering::Relaxed) > 0);
    assert_eq!(h.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_dead_when_the_peer_is_the_one_that_pings() {
    let silence = HeartbeatPolicy::PeerPings {
        silence: 20 * SECOND,
    };
    let mut h = Harness::start_with(r#"{"reconnect": {"jitter": 0}}"#, |w| {
        w.with_heartbeat(silence)
    });
    // A peer that speaks every 10 s keeps the link alive...
    let mut ws = h.accept().await;
    h.events_until(is_open).await;
    for i in 0..12 {
        tokio::time::sleep(10 * SECOND).await;
        ws.send(WsMessage::text(format!("tick {i}"))).await.unwrap();
    }
    let events = h.idle(SECOND).await;
    assert_eq!(events.len(), 12, "{events:?}");
    assert!(events.iter().all(|e| matches!(e, Event::Text(_))));
    // ...one that falls silent is dead within two silences, never before one.
    let fell_silent = Instant::now();
    let events = h.events_until(|e| matches!(e, Event::Error { .. })).await;
    let after = Instant::now() - fell_silent;
    assert_eq!(error_codes(&events), vec![error_code::HEARTBEAT_TIMEOUT]);
    assert!(after >= 19 * SECOND && after <= 41 * SECOND, "{after:?}");
    drop(ws);
}

#[tokio::test(start_paused = true)]
async fn our_close_ends_at_the_close_timeout_if_the_peer_never_answers() {
    let mut h = Harness::start(r#"{"close_timeout_ms": 5000}"#);
    let _silent = h.accept().await;
    h.events_until(is_open).await;
    h.command(Command::Close {
        code: 1000,
        reason: "bye".into(),
    });
    let asked = Instant::now();
    let events = h.events_until(is_terminated).await;
    let after = Instant::now() - asked;
    assert_at(after, 5 * SECOND);
    assert_eq!(states(&events), vec![State::Closing, State::Closed]);
    assert_eq!(error_codes(&events), vec![error_code::CLOSE_TIMEOUT]);
    assert_eq!(closed_codes(&events), vec![1006]);
    assert_eq!(h.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn our_close_completes_with_the_peers_answer_and_sends_the_queue_first() {
    let mut h = Harness::start("{}");
    let mut ws = h.accept().await;
    h.events_until(is_open).await;
    h.send_text("last words");
    h.command(Command::Close {
        code: 4000,
        reason: "done".into(),
    });
    let mut received = Vec::new();
    while let Some(Ok(message)) = ws.next().await {
        received.push(message);
    }
    assert_eq!(received[0], WsMessage::text("last words"));
    assert!(matches!(&received[1], WsMessage::Close(Some(f)) if u16::from(f.code) == 4000));
    drop(ws);
    let events = h.events_until(is_terminated).await;
    assert_eq!(states(&events), vec![State::Closing, State::Closed]);
    assert_eq!(closed_codes(&events), vec![4000]);
    assert!(error_codes(&events).is_empty(), "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_closes_but_keeps_tcp_open_ends_at_the_close_timeout_with_its_code() {
    let mut h = Harness::start(
        r#"{"close_timeout_ms": 5000, "ping_interval_ms": 1000, "pong_timeout_ms": 500,
            "reconnect": {"initial_delay_ms": 1000, "jitter": 0}}"#,
    );
    let mut ws = h.accept().await;
    h.events_until(is_open).await;
    ws.send(WsMessage::Close(Some(CloseFrame {
        code: CloseCode::Restart,
        reason: "restarting".into(),
    })))
    .await
    .unwrap();
    // ...and then neither reads nor hangs up.
    let closing = h.events_until(|e| *e == Event::State(State::Closing)).await;
    assert_eq!(states(&closing), vec![State::Closing]);
    let began = Instant::now();
    h.send_text("not during a close");
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    let after = Instant::now() - began;
    assert_at(after, 5 * SECOND);
    // No heartbeat verdict during the close: only the close timeout counts.
    assert!(error_codes(&events).is_empty(), "{events:?}");
    assert_eq!(closed_codes(&events), vec![1012]);
    assert_eq!(reconnecting(&events), vec![(1, SECOND)]);
    // What was sent during the close waits for the next connection.
    let mut next = h.accept().await;
    let Some(Ok(message)) = next.next().await else {
        panic!("nothing arrived")
    };
    assert_eq!(message, WsMessage::text("not during a close"));
    drop(ws);
}

#[tokio::test(start_paused = true)]
async fn pause_closes_politely_and_nothing_is_tried_until_resume() {
    let mut h = Harness::start("{}");
    h.accept_echo().await;
    h.events_until(is_open).await;
    h.command(Command::Pause);
    let events = h
        .events_until(|e| *e == Event::State(State::Reconnecting))
        .await;
    assert_eq!(states(&events), vec![State::Closing, State::Reconnecting]);
    assert_eq!(closed_codes(&events), vec![1001]);
    assert!(reconnecting(&events).is_empty());
    h.send_text("queued while paused");
    assert!(h.idle(3600 * SECOND).await.is_empty());
    assert_eq!(h.attempts().len(), 1);
    h.command(Command::Resume);
    let resumed = Instant::now();
    let mut ws = h.accept().await;
    assert_eq!(h.attempts()[1], resumed, "resume connects at once");
    let Some(Ok(message)) = ws.next().await else {
        panic!("nothing arrived")
    };
    assert_eq!(message, WsMessage::text("queued while paused"));
}

#[tokio::test(start_paused = true)]
async fn pause_and_close_abandon_an_attempt_in_progress() {
    let mut h = Harness::start(r#"{"connect_timeout_ms": 60000}"#);
    // A server that never answers the upgrade.
    let _mute = h.server().await;
    tokio::time::sleep(SECOND).await;
    h.command(Command::Pause);
    let events = h
        .events_until(|e| *e == Event::State(State::Reconnecting))
        .await;
    assert!(error_codes(&events).is_empty(), "{events:?}");
    assert!(h.idle(120 * SECOND).await.is_empty(), "paused: no attempts");
    h.command(Command::Resume);
    let _mute_again = h.server().await;
    h.command(Command::Close {
        code: 1000,
        reason: String::new(),
    });
    let events = h.events_until(is_terminated).await;
    assert_eq!(states(&events), vec![State::Closed]);
    assert_eq!(h.attempts().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_hits_the_connect_timeout() {
    let mut h = Harness::start(
        r#"{"connect_timeout_ms": 3000, "reconnect": {"initial_delay_ms": 1000, "jitter": 0}}"#,
    );
    let _mute = h.server().await;
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(error_codes(&events), vec![error_code::CONNECT_TIMEOUT]);
    assert!(closed_codes(&events).is_empty(), "never opened: no Closed");
    let after = Instant::now() - h.attempts()[0];
    assert_at(after, 3 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn network_hints_stop_and_restart_the_attempts() {
    let mut h = Harness::start(
        r#"{"reconnect": {"initial_delay_ms": 8000, "max_delay_ms": 8000, "jitter": 0}}"#,
    );
    h.set_up(false);
    h.events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    h.command(Command::NetworkChanged(false));
    assert!(
        h.idle(3600 * SECOND).await.is_empty(),
        "offline: no attempts"
    );
    assert_eq!(h.attempts().len(), 1);
    h.set_up(true);
    h.command(Command::NetworkChanged(true));
    let back = Instant::now();
    h.accept_echo().await;
    h.events_until(is_open).await;
    assert_eq!(h.attempts()[1], back, "network back skips the backoff");
}

#[tokio::test(start_paused = true)]
async fn a_network_change_while_open_checks_the_link_with_a_ping() {
    let mut h = Harness::start(r#"{"ping_interval_ms": 30000, "pong_timeout_ms": 2000}"#);
    let _silent = h.accept().await;
    h.events_until(is_open).await;
    tokio::time::sleep(SECOND).await;
    let changed = Instant::now();
    h.command(Command::NetworkChanged(true));
    let events = h.events_until(|e| matches!(e, Event::Error { .. })).await;
    assert_eq!(error_codes(&events), vec![error_code::HEARTBEAT_TIMEOUT]);
    let after = Instant::now() - changed;
    assert_at(after, 2 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn reconnect_drops_the_connection_and_opens_a_fresh_one_at_once() {
    let mut h = Harness::start("{}");
    h.accept_echo().await;
    h.events_until(is_open).await;
    h.command(Command::Reconnect);
    h.accept_echo().await;
    let events = h.events_until(is_open).await;
    assert_eq!(
        states(&events),
        vec![State::Closing, State::Reconnecting, State::Open]
    );
    assert_eq!(closed_codes(&events), vec![1001]);
    assert!(reconnecting(&events).is_empty(), "not a counted attempt");
    let attempts = h.attempts();
    assert_eq!(attempts.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_injected_stream_never_parks_the_writer_and_every_send_goes_through_the_task() {
    // Direct sends need a plain TCP socket (wire::websocket::tests); any
    // other stream keeps every write on the connection task.
    let mut h = Harness::start("{}");
    let mut texts = collect_texts(h.accept().await);
    h.events_until(is_open).await;
    h.idle(SECOND).await;
    assert!(!h.shared.queue.writer_parked());
    assert_eq!(
        h.shared.queue.push(Message::text("queued")).unwrap(),
        Pushed::Queued
    );
    assert_eq!(texts_in(&mut texts, 1).await, ["queued"]);
}

#[tokio::test(start_paused = true)]
async fn messages_sent_while_down_go_out_in_order_after_the_open() {
    let mut h = Harness::start(r#"{"reconnect": {"initial_delay_ms": 1000, "jitter": 0}}"#);
    h.set_up(false);
    for i in 0..3 {
        h.send_text(&format!("m{i}"));
    }
    h.events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    h.set_up(true);
    let mut ws = h.accept().await;
    for i in 0..3 {
        let Some(Ok(message)) = ws.next().await else {
            panic!("m{i} never arrived")
        };
        assert_eq!(message, WsMessage::text(format!("m{i}")));
    }
    assert_eq!(h.shared.queue.len(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_long_suspension_makes_the_open_link_stale_at_the_next_wakeup() {
    let mut h = Harness::start(
        r#"{"ping_interval_ms": 30000, "pong_timeout_ms": 10000,
            "reconnect": {"initial_delay_ms": 1000, "jitter": 0}}"#,
    );
    h.accept_echo().await;
    h.events_until(is_open).await;
    tokio::time::sleep(5 * SECOND).await;
    // The phone slept for ten minutes: the server gave up on us long ago.
    h.clock.suspend(600 * SECOND);
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    let Some(Event::Error { code, message }) =
        events.iter().find(|e| matches!(e, Event::Error { .. }))
    else {
        panic!("no error: {events:?}")
    };
    assert_eq!(*code, error_code::HEARTBEAT_TIMEOUT);
    assert!(message.contains("suspended for 600 s"), "{message}");
    h.accept_echo().await;
    h.events_until(is_open).await;
}

#[tokio::test(start_paused = true)]
async fn a_short_suspension_is_checked_with_a_ping_when_the_app_calls_in() {
    let mut h = Harness::start(r#"{"ping_interval_ms": 30000, "pong_timeout_ms": 2000}"#);
    let _silent = h.accept().await;
    h.events_until(is_open).await;
    tokio::time::sleep(SECOND).await;
    h.clock.suspend(10 * SECOND);
    // The app comes to the foreground and calls in.
    h.command(Command::Resume);
    let called = Instant::now();
    let events = h.events_until(|e| matches!(e, Event::Error { .. })).await;
    assert_eq!(error_codes(&events), vec![error_code::HEARTBEAT_TIMEOUT]);
    let after = Instant::now() - called;
    assert_at(after, 2 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_client_closes_with_1001_and_terminates() {
    let mut h = Harness::start("{}");
    let mut ws = h.accept().await;
    h.events_until(is_open).await;
    let Harness {
        commands, events, ..
    } = h;
    drop(commands);
    let mut received = Vec::new();
    while let Some(Ok(message)) = ws.next().await {
        received.push(message);
    }
    assert!(matches!(&received[..], [WsMessage::Close(Some(f))] if u16::from(f.code) == 1001));
    drop(ws);
    let deadline = Instant::now() + 60 * SECOND;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match events.recv(Some(Duration::ZERO)) {
            Ok(Event::Terminated) => return,
            Ok(event) => seen.push(event),
            Err(_) => tokio::time::sleep(MS).await,
        }
    }
    panic!("never terminated: {seen:?}");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_empty_messages_stops_the_reader_and_loses_nothing() {
    // 2 bytes a frame: far more than the pipe (64 KiB), the read-ahead
    // buffer (64 KiB) and what the limit lets the reader take hold.
    const FLOOD: usize = 200_000;
    let mut h = Harness::start(r#"{"max_unpolled_bytes": 65536, "ping_interval_ms": 0}"#);
    let mut ws = h.accept().await;
    h.events_until(is_open).await;
    let flood = tokio::spawn(async move {
        for _ in 0..FLOOD {
            ws.feed(WsMessage::text("")).await.unwrap();
        }
        ws.flush().await.unwrap();
        ws
    });
    // The app does not poll: the reader stops at the limit.
    tokio::time::sleep(10 * SECOND).await;
    let unpolled = h.events.unpolled_bytes();
    assert!(
        unpolled > 0 && unpolled <= 65536,
        "{unpolled} bytes unpolled"
    );
    assert!(
        !flood.is_finished(),
        "the reader should have stopped reading"
    );
    // Once it polls, every message arrives.
    let mut texts = 0;
    let deadline = Instant::now() + 600 * SECOND;
    while texts < FLOOD {
        assert!(Instant::now() < deadline, "{texts} of {FLOOD} arrived");
        match h.events.recv(Some(Duration::ZERO)) {
            Ok(Event::Text(t)) if t.is_empty() => texts += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => tokio::time::sleep(MS).await,
        }
    }
    let _ws = flood.await.unwrap();
    assert_eq!(h.events.unpolled_bytes(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_answer_naming_an_extension_not_offered_fails_without_retry() {
    let mut h = Harness::start("{}");
    let mut server = h.server().await;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(server.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let key = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Sec-WebSocket-Key: ")
                .or_else(|| l.strip_prefix("sec-websocket-key: "))
        })
        .expect("no key")
        .trim()
        .to_string();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    );
    server.write_all(answer.as_bytes()).await.unwrap();
    let events = h.events_until(is_terminated).await;
    assert_eq!(error_codes(&events), vec![error_code::HANDSHAKE]);
    assert!(closed_codes(&events).is_empty(), "never opened");
    assert!(!events.iter().any(is_open), "{events:?}");
    assert_eq!(h.attempts().len(), 1, "not retried");
}

/// A fresh folder for an outbox file, unique to this test, removed with
/// everything in it when dropped.
fn outbox_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tether-session-{name}-"))
        .tempdir()
        .unwrap()
}

fn outbox_json(dir: &std::path::Path, extra: &str) -> String {
    let path = serde_json::to_string(&dir.join("outbox.db")).unwrap();
    format!(
        r#"{{"outbox": {{"path": {path}}}, "ping_interval_ms": 0,
            "reconnect": {{"initial_delay_ms": 1000, "jitter": 0}}{extra}}}"#
    )
}

/// Reads what the client writes (answering its Pings, as tungstenite does
/// while it reads) and hands each text to the test.
fn collect_texts(mut ws: ServerWs) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = ws.next().await {
            if let WsMessage::Text(text) = message {
                let _ = tx.send(text.to_string());
            }
        }
    });
    rx
}

async fn texts_in(rx: &mut mpsc::UnboundedReceiver<String>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let text = tokio::time::timeout(3600 * SECOND, rx.recv())
            .await
            .expect("no text within an hour")
            .expect("the server's reader ended");
        got.push(text);
    }
    got
}

#[tokio::test(start_paused = true)]
async fn outbox_messages_leave_only_once_the_server_has_provably_read_them() {
    let dir = outbox_dir("receipts");
    let mut h = Harness::start(&outbox_json(dir.path(), ""));
    let ws = h.accept().await;
    h.events_until(is_open).await;
    for i in 0..3 {
        h.store(&format!("m{i}"), false);
    }
    // Written to the socket, but the server has not read a byte.
    h.idle(10 * SECOND).await;
    assert_eq!(h.outbox().pending(), 3, "written is not delivered");
    let mut texts = collect_texts(ws);
    assert_eq!(texts_in(&mut texts, 3).await, ["m0", "m1", "m2"]);
    // Its Pong to the Ping behind them proves the batch read.
    h.outbox_settles_at(0).await;
}

#[tokio::test(start_paused = true)]
async fn unconfirmed_outbox_messages_go_out_again_in_order_after_a_lost_connection() {
    let dir = outbox_dir("lost");
    let mut h = Harness::start(&outbox_json(dir.path(), ""));
    let ws = h.accept().await;
    h.events_until(is_open).await;
    for i in 0..3 {
        h.store(&format!("m{i}"), false);
    }
    h.idle(SECOND).await;
    // The link dies before the server read them (a kernel's buffers lost).
    drop(ws);
    h.events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    h.store("m3", false);
    let mut texts = collect_texts(h.accept().await);
    assert_eq!(texts_in(&mut texts, 4).await, ["m0", "m1", "m2", "m3"]);
    h.outbox_settles_at(0).await;
    let events = h.idle(SECOND).await;
    assert!(
        !events.iter().any(|e| matches!(e, Event::Resent { .. })),
        "untracked messages are not reported: {events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn tracked_messages_stay_until_acked_and_every_resend_is_reported() {
    let dir = outbox_dir("tracked");
    let mut h = Harness::start(&outbox_json(dir.path(), ""));
    let ws = h.accept().await;
    h.events_until(is_open).await;
    let first = h.store("t1", true);
    let second = h.store("t2", true);
    h.store("plain", false);
    let mut texts = collect_texts(ws);
    assert_eq!(texts_in(&mut texts, 3).await, ["t1", "t2", "plain"]);
    // Read by the server, but not acked: the tracked ones stay.
    h.outbox_settles_at(2).await;
    h.command(Command::Reconnect);
    let mut texts = collect_texts(h.accept().await);
    assert_eq!(texts_in(&mut texts, 2).await, ["t1", "t2"]);
    let events = h.events_until(|e| matches!(e, Event::Resent { .. })).await;
    assert_eq!(
        events.last(),
        Some(&Event::Resent {
            ids: vec![first, second]
        })
    );
    assert!(h.shared.ack(h.outbox(), first).unwrap());
    assert!(!h.shared.ack(h.outbox(), first).unwrap(), "acked twice");
    h.outbox_settles_at(1).await;
    h.command(Command::Reconnect);
    let mut texts = collect_texts(h.accept().await);
    assert_eq!(texts_in(&mut texts, 1).await, ["t2"]);
    let events = h.events_until(|e| matches!(e, Event::Resent { .. })).await;
    assert_eq!(events.last(), Some(&Event::Resent { ids: vec![second] }));
    assert!(h.shared.ack(h.outbox(), second).unwrap());
    h.outbox_settles_at(0).await;
}

#[tokio::test(start_paused = true)]
async fn a_reopened_outbox_sends_what_was_left_first_and_after_the_apps_flush() {
    let dir = outbox_dir("reopen");
    let json = outbox_json(dir.path(), r#", "queue": {"flush": "manual"}"#);
    let ids: Vec<u64> = {
        let h = Harness::start(&json);
        h.set_up(false);
        h.events_until(|e| matches!(e, Event::Reconnecting { .. }))
            .await;
        let ids = vec![h.store("left 1", false), h.store("left 2", true)];
        h.command(Command::Close {
            code: 1000,
            reason: String::new(),
        });
        let events = h.events_until(is_terminated).await;
        assert_eq!(error_codes(&events), vec![error_code::UNSENT]);
        ids
    };
    // The first client's session let go of the file when it ended.
    tokio::time::sleep(SECOND).await;
    let mut h = Harness::start(&json);
    assert_eq!(h.outbox().pending(), 2);
    let mut texts = collect_texts(h.accept().await);
    h.events_until(is_open).await;
    // The app's auth goes first; the backlog waits for its flush.
    h.store("auth", false);
    assert_eq!(texts_in(&mut texts, 1).await, ["auth"]);
    h.shared.queue.release_backlog();
    assert_eq!(texts_in(&mut texts, 2).await, ["left 1", "left 2"]);
    let events = h.events_until(|e| matches!(e, Event::Resent { .. })).await;
    assert_eq!(events.last(), Some(&Event::Resent { ids: vec![ids[1]] }));
    h.outbox_settles_at(1).await;
    let later = h.store("later", false);
    assert!(later > ids[1], "ids grow across restarts");
}

#[tokio::test(start_paused = true)]
async fn a_close_asked_during_the_servers_close_ends_with_the_servers_code() {
    let mut h =
        Harness::start(r#"{"close_timeout_ms": 5000, "reconnect": {"initial_delay_ms": 10}}"#);
    let mut ws = h.accept().await;
    h.events_until(is_open).await;
    ws.send(WsMessage::Close(Some(CloseFrame {
        code: CloseCode::Restart,
        reason: "restarting".into(),
    })))
    .await
    .unwrap();
    h.events_until(|e| *e == Event::State(State::Closing)).await;
    h.command(Command::Close {
        code: 1000,
        reason: String::new(),
    });
    let events = h.events_until(is_terminated).await;
    assert!(error_codes(&events).is_empty(), "{events:?}");
    assert_eq!(closed_codes(&events), vec![1012], "the server's code");
    assert!(reconnecting(&events).is_empty(), "the app asked to close");
    assert_eq!(h.attempts().len(), 1);
    drop(ws);
}

/// The opcodes of the client's frames read raw from `stream` until it ends
/// or `window` passes (virtual time).
async fn client_opcodes(mut stream: DuplexStream, window: Duration) -> Vec<u8> {
    let mut opcodes = Vec::new();
    let _ = tokio::time::timeout(window, async {
        loop {
            let mut head = [0u8; 2];
            if stream.read_exact(&mut head).await.is_err() {
                return;
            }
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                len = u64::from(stream.read_u16().await.unwrap());
            } else if len == 127 {
                len = stream.read_u64().await.unwrap();
            }
            let mut mask_and_payload = vec![0u8; 4 + len as usize];
            stream.read_exact(&mut mask_and_payload).await.unwrap();
            opcodes.push(head[0] & 0x0f);
        }
    })
    .await;
    opcodes
}

#[tokio::test(start_paused = true)]
async fn nothing_is_written_after_our_close_not_even_a_ping() {
    let mut h = Harness::start(
        r#"{"close_timeout_ms": 10000, "ping_interval_ms": 1000, "pong_timeout_ms": 500}"#,
    );
    let ws = h.accept().await;
    h.events_until(is_open).await;
    h.send_text("before");
    h.command(Command::Close {
        code: 1000,
        reason: String::new(),
    });
    // The server reads raw frames and never answers: ten ping intervals
    // pass before the close times out.
    let opcodes = client_opcodes(ws.into_inner(), 12 * SECOND).await;
    let close = opcodes
        .iter()
        .position(|&op| op == 0x8)
        .expect("no Close frame");
    assert_eq!(
        close,
        opcodes.len() - 1,
        "frames after the Close: {opcodes:?}"
    );
    assert!(opcodes.contains(&0x1), "the text went first: {opcodes:?}");
    let events = h.events_until(is_terminated).await;
    assert_eq!(error_codes(&events), vec![error_code::CLOSE_TIMEOUT]);
}

#[test]
fn the_session_future_stays_small() {
    let options = Options::default();
    let (accepted, _servers) = mpsc::unbounded_channel();
    let net = Arc::new(MemoryNet {
        up: AtomicBool::new(true),
        attempts: Mutex::new(Vec::new()),
        accepted,
    });
    let endpoint = Endpoint::parse("ws://memory.test/").unwrap();
    let wire = WebSocketWire::new(endpoint, &options, Box::new(MemoryDialer(net)));
    let (events, _rx) = event::channel(1);
    let (_commands, command_rx) = command_channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    let _guard = rt.enter();
    let session = Session::new(
        wire,
        &options,
        Arc::new(Shared::open(&options).unwrap()),
        events,
        command_rx,
        TestClock::new(),
    );
    let size = std::mem::size_of_val(&session.run());
    eprintln!("session future: {size} bytes");
    // What every idle connection keeps resident (DESIGN: 12 KiB each at
    // 10,000 connections, all of it counted).
    assert!(size < 5 * 1024, "the session future is {size} bytes");
}
