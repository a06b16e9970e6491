//! The SSE wire under the session driver, on tokio's paused time: each
//! attempt is handed to the test as the server's end of an in-memory
//! stream, where the test answers with raw HTTP. Deterministic: no
//! sockets, no wall-clock windows.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::event::{self, Event, EventReceiver, ServerSentEvent};
use crate::session::{command_channel, Command, CommandSender, Session, Shared, SuspendClock};
use crate::state::State;
use crate::transport::{ConnectError, Dialer, Endpoint, Transport};

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

const OPEN: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";

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
            let (client, server) = tokio::io::duplex(16 * 1024);
            let _ = self.0.accepted.send(server);
            Ok(Transport::Injected(Box::new(client)))
        })
    }
}

/// Tokio's (paused) time plus the suspensions a test simulates.
struct VirtualClock {
    origin: Instant,
    slept: Mutex<Duration>,
}

impl SuspendClock for VirtualClock {
    fn since_boot(&self) -> Duration {
        self.origin.elapsed() + *self.slept.lock()
    }
}

struct Harness {
    net: Arc<MemoryNet>,
    servers: mpsc::UnboundedReceiver<DuplexStream>,
    events: EventReceiver,
    commands: CommandSender,
    shared: Arc<Shared>,
    clock: Arc<VirtualClock>,
}

/// The server's end of one attempt, with the request it read.
struct Peer {
    stream: DuplexStream,
    head: String,
    body: Vec<u8>,
}

impl Peer {
    async fn send(&mut self, bytes: &str) {
        self.stream.write_all(bytes.as_bytes()).await.unwrap();
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

impl Harness {
    fn start(json: &str) -> Harness {
        let options = SseOptions::from_json(Some(json)).unwrap();
        let (accepted, servers) = mpsc::unbounded_channel();
        let net = Arc::new(MemoryNet {
            up: AtomicBool::new(true),
            attempts: Mutex::new(Vec::new()),
            accepted,
        });
        let endpoint = Endpoint::parse_http("http://memory.test/events?topic=a").unwrap();
        let http = HttpClient::new(endpoint, Arc::new(MemoryDialer(net.clone())));
        let wire = SseWire::new(http, &options);
        let shared = Arc::new(Shared::open(&options.common).unwrap());
        let (event_tx, events) = event::channel(options.common.max_unpolled_bytes);
        let (commands, command_rx) = command_channel();
        let clock = Arc::new(VirtualClock {
            origin: Instant::now(),
            slept: Mutex::new(Duration::ZERO),
        });
        let session = Session::new(
            wire,
            &options.common,
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

    fn attempts(&self) -> usize {
        self.net.attempts.lock().len()
    }

    fn command(&self, command: Command) {
        self.commands.send(command).unwrap();
    }

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

    async fn events_until(&self, until: impl Fn(&Event) -> bool) -> Vec<Event> {
        let mut seen = Vec::new();
        loop {
            let event = self.next_event().await;
            let done = until(&event);
            seen.push(event);
            if done {
                return seen;
            }
            assert!(seen.len() < 100_000, "runaway events");
        }
    }

    async fn idle(&self, d: Duration) -> Vec<Event> {
        tokio::time::sleep(d).await;
        let mut seen = Vec::new();
        while let Ok(event) = self.events.recv(Some(Duration::ZERO)) {
            seen.push(event);
        }
        seen
    }

    /// The next attempt: reads its request (head and any body).
    async fn accept(&mut self) -> Peer {
        let mut stream = tokio::time::timeout(3600 * SECOND, self.servers.recv())
            .await
            .expect("no attempt within an hour")
            .expect("the network is gone");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert!(head.len() < 65536, "endless request head");
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let mut peer = Peer {
            stream,
            head,
            body: Vec::new(),
        };
        if let Some(len) = peer.header("content-length") {
            let mut body = vec![0u8; len.parse().unwrap()];
            peer.stream.read_exact(&mut body).await.unwrap();
            peer.body = body;
        }
        peer
    }

    /// Accepts the next attempt and answers it with `answer`.
    async fn answer(&mut self, answer: &str) -> Peer {
        let mut peer = self.accept().await;
        peer.send(answer).await;
        peer
    }
}

fn sse(event_type: &str, id: Option<&str>, data: &str) -> Event {
    Event::from(ServerSentEvent {
        event_type: event_type.into(),
        id: id.map(Into::into),
        data: data.into(),
    })
}

fn is_terminated(event: &Event) -> bool {
    *event == Event::Terminated
}

fn reconnecting(events: &[Event]) -> Vec<(u32, Duration)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
            _ => None,
        })
        .collect()
}

fn error_codes(events: &[Event]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

fn messages(events: &[Event]) -> Vec<&ServerSentEvent> {
    events.iter().filter_map(Event::server_sent).collect()
}

const STEADY: &str = r#"{"reconnect": {"initial_delay_ms": 1000, "jitter": 0}}"#;

#[tokio::test(start_paused = true)]
async fn events_come_in_the_websocket_order_and_the_request_asks_for_a_stream() {
    let mut h = Harness::start(STEADY);
    let mut peer = h.answer(OPEN).await;
    assert!(
        peer.head.starts_with("GET /events?topic=a HTTP/1.1\r\n"),
        "{}",
        peer.head
    );
    assert_eq!(peer.header("accept").as_deref(), Some("text/event-stream"));
    assert_eq!(peer.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(peer.header("host").as_deref(), Some("memory.test"));
    assert_eq!(peer.header("last-event-id"), None);
    peer.send("event: tick\ndata: 1\n\n").await;
    let events = h.events_until(|e| e.server_sent().is_some()).await;
    assert_eq!(
        events,
        [
            Event::State(State::Connecting),
            Event::State(State::Open),
            Event::Open { protocol: None },
            sse("tick", None, "1"),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_end_reconnects_with_last_event_id_after_the_retry_delay() {
    let mut h = Harness::start(STEADY);
    let mut peer = h.answer(OPEN).await;
    peer.send("retry: 250\nid: 5\ndata: a\n\nid: 6\ndata: cut off")
        .await;
    let ended = Instant::now();
    drop(peer);
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(
        messages(&events),
        [&ServerSentEvent {
            event_type: "message".into(),
            id: Some("5".into()),
            data: "a".into(),
        }]
    );
    assert_eq!(
        error_codes(&events),
        [] as [i32; 0],
        "an ended stream is no error"
    );
    assert_eq!(reconnecting(&events), [(1, 250 * MS)]);
    let peer = h.accept().await;
    let attempts = h.net.attempts.lock().clone();
    let waited = attempts[1] - ended;
    assert!(waited >= 250 * MS && waited < 260 * MS, "{waited:?}");
    assert_eq!(peer.header("last-event-id").as_deref(), Some("5"));
}

#[tokio::test(start_paused = true)]
async fn the_initial_last_event_id_goes_out_on_the_first_request() {
    let mut h = Harness::start(r#"{"last_event_id": "41"}"#);
    let mut peer = h.answer(OPEN).await;
    assert_eq!(peer.header("last-event-id").as_deref(), Some("41"));
    // An empty id: the stream resets it, and it is not sent again.
    peer.send("id\ndata: x\n\n").await;
    let events = h.events_until(|e| e.server_sent().is_some()).await;
    assert_eq!(messages(&events)[0].id.as_deref(), Some(""));
    drop(peer);
    let peer = h.accept().await;
    assert_eq!(peer.header("last-event-id"), None);
}

#[tokio::test(start_paused = true)]
async fn silence_past_the_read_timeout_reconnects_and_comments_keep_it_alive() {
    let mut h = Harness::start(
        r#"{"read_timeout_ms": 1000, "reconnect": {"initial_delay_ms": 100, "jitter": 0}}"#,
    );
    let mut peer = h.answer(OPEN).await;
    let opened = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(500 * MS).await;
        peer.send(": keep-alive\n").await;
    }
    let events = h.idle(MS).await;
    assert!(reconnecting(&events).is_empty(), "{events:?}");
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    let silent_for = opened.elapsed() - 3000 * MS;
    assert!(
        silent_for >= 1000 * MS && silent_for < 1010 * MS,
        "dead after {silent_for:?} of silence"
    );
    assert_eq!(error_codes(&events), [error_code::HEARTBEAT_TIMEOUT]);
    let _again = h.accept().await;
}

#[tokio::test(start_paused = true)]
async fn no_content_ends_the_client_for_good_without_an_error() {
    let mut h = Harness::start(STEADY);
    let _peer = h
        .answer("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        .await;
    let events = h.events_until(is_terminated).await;
    assert_eq!(
        events,
        [
            Event::State(State::Connecting),
            Event::State(State::Closed),
            Event::Terminated
        ]
    );
    h.idle(3600 * SECOND).await;
    assert_eq!(h.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn client_errors_and_wrong_content_types_are_not_retried() {
    for (answer, code) in [
        (
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n",
            401,
        ),
        ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404),
        (
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi",
            error_code::HANDSHAKE,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            error_code::HANDSHAKE,
        ),
        ("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 201),
        (
            "HTTP/1.1 301 Moved Permanently\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
            301,
        ),
    ] {
        let mut h = Harness::start(STEADY);
        let _peer = h.answer(answer).await;
        let events = h.events_until(is_terminated).await;
        assert_eq!(error_codes(&events), [code], "{answer}");
        assert!(reconnecting(&events).is_empty(), "{answer}");
        h.idle(3600 * SECOND).await;
        assert_eq!(h.attempts(), 1, "{answer}: a retry storm");
    }
}

#[tokio::test(start_paused = true)]
async fn server_errors_and_429_retry_after_their_retry_after() {
    let mut h = Harness::start(STEADY);
    let _peer = h
        .answer("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n")
        .await;
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(error_codes(&events), [503]);
    assert_eq!(reconnecting(&events), [(1, 7 * SECOND)]);
    let _peer = h
        .answer("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
        .await;
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(error_codes(&events), [429]);
    assert_eq!(reconnecting(&events), [(2, 2 * SECOND)]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_field_replaces_the_base_delay_the_backoff_grows_from() {
    let mut h = Harness::start(
        r#"{"reconnect": {"initial_delay_ms": 1000, "max_delay_ms": 3000, "jitter": 0}}"#,
    );
    let mut peer = h.answer(OPEN).await;
    peer.send("retry: 100\n\n").await;
    drop(peer);
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(reconnecting(&events), [(1, 100 * MS)]);
    for (attempt, delay) in [(2, 200 * MS), (3, 400 * MS)] {
        let _peer = h
            .answer("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
            .await;
        let events = h
            .events_until(|e| matches!(e, Event::Reconnecting { .. }))
            .await;
        assert_eq!(reconnecting(&events), [(attempt, delay)]);
    }
    // A huge retry is capped by max_delay_ms.
    let mut peer = h.answer(OPEN).await;
    peer.send(&format!("retry: {}\n", "9".repeat(30))).await;
    drop(peer);
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(reconnecting(&events), [(4, 3 * SECOND)]);
}

#[tokio::test(start_paused = true)]
async fn pause_drops_the_stream_and_resume_resumes_it_from_the_last_id() {
    let mut h = Harness::start(STEADY);
    let mut peer = h.answer(OPEN).await;
    peer.send("id: 9\ndata: x\n\n").await;
    h.events_until(|e| e.server_sent().is_some()).await;
    h.command(Command::Pause);
    let events = h.idle(3600 * SECOND).await;
    assert!(reconnecting(&events).is_empty(), "{events:?}");
    assert_eq!(error_codes(&events), [] as [i32; 0]);
    assert_eq!(h.attempts(), 1);
    h.command(Command::Resume);
    let peer = h.accept().await;
    assert_eq!(peer.header("last-event-id").as_deref(), Some("9"));
}

#[tokio::test(start_paused = true)]
async fn close_ends_the_stream_at_once() {
    let mut h = Harness::start(STEADY);
    let _peer = h.answer(OPEN).await;
    h.events_until(|e| matches!(e, Event::Open { .. })).await;
    let asked = Instant::now();
    h.command(Command::Close {
        code: 1000,
        reason: String::new(),
    });
    let events = h.events_until(is_terminated).await;
    assert!(
        asked.elapsed() < 10 * MS,
        "the close waited {:?}",
        asked.elapsed()
    );
    assert_eq!(
        events,
        [
            Event::State(State::Closing),
            Event::State(State::Closed),
            Event::Terminated
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn post_sends_its_body_on_every_attempt() {
    let mut h = Harness::start(
        r#"{"method": "POST", "body": "{\"prompt\":\"hi\"}",
            "headers": {"Content-Type": "application/json"}}"#,
    );
    let peer = h.answer(OPEN).await;
    assert!(peer.head.starts_with("POST /events?topic=a HTTP/1.1\r\n"));
    assert_eq!(peer.body, b"{\"prompt\":\"hi\"}");
    assert_eq!(
        peer.header("content-type").as_deref(),
        Some("application/json")
    );
    drop(peer);
    let peer = h.accept().await;
    assert_eq!(peer.body, b"{\"prompt\":\"hi\"}");
}

#[tokio::test(start_paused = true)]
async fn a_changed_header_goes_out_on_the_next_attempt() {
    let mut h = Harness::start(r#"{"headers": {"Authorization": "Bearer old"}}"#);
    let peer = h.answer(OPEN).await;
    assert_eq!(peer.header("authorization").as_deref(), Some("Bearer old"));
    h.shared
        .headers
        .lock()
        .insert("Authorization".into(), "Bearer new".into());
    h.command(Command::Reconnect);
    let peer = h.accept().await;
    assert_eq!(peer.header("authorization").as_deref(), Some("Bearer new"));
}

#[tokio::test(start_paused = true)]
async fn an_event_over_the_limit_is_an_error_without_retry() {
    let mut h = Harness::start(r#"{"max_message_bytes": 1000}"#);
    let mut peer = h.answer(OPEN).await;
    peer.send("data: small\n\n").await;
    let big = format!("data: {}\n\n", "x".repeat(2000));
    peer.send(&big).await;
    let events = h.events_until(is_terminated).await;
    assert_eq!(
        messages(&events).len(),
        1,
        "the event before it is delivered"
    );
    assert_eq!(error_codes(&events), [error_code::MESSAGE_TOO_BIG]);
    assert_eq!(h.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn reading_stops_while_the_app_does_not_poll_and_nothing_is_dropped() {
    let limit = 16 * 1024;
    let mut h = Harness::start(&format!(r#"{{"max_unpolled_bytes": {limit}}}"#));
    let mut peer = h.answer(OPEN).await;
    let total = 2000;
    let writer = tokio::spawn(async move {
        for i in 0..total {
            peer.send(&format!("id: {i}\ndata: {}\n\n", "y".repeat(200)))
                .await;
        }
        peer
    });
    tokio::time::sleep(10 * SECOND).await;
    assert!(!writer.is_finished(), "the client kept reading");
    let unpolled = h.events.unpolled_bytes();
    assert!(unpolled <= limit + 20 * 1024, "{unpolled} bytes unpolled");
    let events = h
        .events_until(|e| matches!(e.server_sent(), Some(m) if m.id.as_deref() == Some("1999")))
        .await;
    let ids: Vec<usize> = messages(&events)
        .iter()
        .map(|m| m.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (0..total).collect::<Vec<_>>());
    let _peer = writer.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_suspension_longer_than_the_read_timeout_reopens_the_stream_at_wakeup() {
    let mut h = Harness::start(r#"{"read_timeout_ms": 60000, "last_event_id": "3"}"#);
    let mut peer = h.answer(OPEN).await;
    peer.send("id: 4\ndata: before sleep\n\n").await;
    h.events_until(|e| e.server_sent().is_some()).await;
    *h.clock.slept.lock() += 120 * SECOND;
    // The app comes back to the foreground.
    h.command(Command::Resume);
    let events = h
        .events_until(|e| matches!(e, Event::Reconnecting { .. }))
        .await;
    assert_eq!(error_codes(&events), [error_code::HEARTBEAT_TIMEOUT]);
    let peer = h.accept().await;
    assert_eq!(peer.header("last-event-id").as_deref(), Some("4"));
}
