//! Reconnection, heartbeat, the outgoing queue and lifecycle hints, against
//! real servers on 127.0.0.1 and a fault-injecting proxy between them.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use support::proxy::{FaultProxy, Mode};
use support::{poll_until, states, texts, wait_open, EchoServer};
use tether::{error_code, Client, Event, Options, State};

const T: Duration = Duration::from_secs(15);

fn options(json: &str) -> Options {
    Options::from_json(Some(json)).unwrap()
}

/// Fast reconnection, deterministic jitter.
const FAST: &str = r#""reconnect": {"initial_delay_ms": 50, "max_delay_ms": 200, "jitter": 0.2, "jitter_seed": 7}"#;

fn has_error(events: &[Event], code: i32) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Error { code: c, .. } if *c == code))
}

/// Collects `n` text echoes, then checks nothing more arrives for a while.
fn expect_texts_exactly(client: &Client, expected: &[String]) {
    let mut got = Vec::new();
    let deadline = Instant::now() + T;
    while got.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "got {got:?}, expected {expected:?}");
        if let Some(Event::Text(t)) = client.poll_event(Some(left)).unwrap() {
            got.push(t.as_str().to_string());
        }
    }
    assert_eq!(got, expected);
    // Exactly once: no duplicate arrives afterwards.
    let extra = poll_for(client, Duration::from_millis(300));
    assert!(texts(&extra).is_empty(), "duplicates: {extra:?}");
}

/// Everything that arrives within `d`.
fn poll_for(client: &Client, d: Duration) -> Vec<Event> {
    let deadline = Instant::now() + d;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return seen;
        }
        if let Some(e) = client.poll_event(Some(left)).unwrap() {
            seen.push(e);
        }
    }
}

#[test]
fn messages_sent_while_the_server_is_down_arrive_once_in_order_after_restarts() {
    let mut server = EchoServer::start();
    let addr = server.addr;
    let client = Client::connect(&server.url(), options(&format!("{{{FAST}}}"))).unwrap();
    wait_open(&client);
    for round in 0..2 {
        server.kill();
        let down = poll_until(&client, T, |e| matches!(e, Event::Reconnecting { .. }));
        assert!(
            down.iter()
                .any(|e| matches!(e, Event::Closed { code: 1006, .. })),
            "{down:?}"
        );
        let batch: Vec<String> = (0..20).map(|i| format!("r{round}-m{i}")).collect();
        for m in &batch {
            client.send_text(m).unwrap();
        }
        assert_eq!(client.stats().queued_messages, 20);
        server = EchoServer::start_on(addr);
        let reopened = wait_open(&client);
        assert!(states(&reopened).contains(&State::Open), "{reopened:?}");
        expect_texts_exactly(&client, &batch);
        assert_eq!(client.stats().queued_messages, 0);
    }
    assert!(client.stats().reconnects >= 2);
    client.close(1000, "").unwrap();
    poll_until(&client, T, |e| *e == Event::Terminated);
}

#[test]
fn a_black_holed_link_is_declared_dead_by_the_heartbeat() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let (ping, pong) = (300u64, 300u64);
    let client = Client::connect(
        &proxy.url("/"),
        options(&format!(
            r#"{{"ping_interval_ms": {ping}, "pong_timeout_ms": {pong}, {FAST}}}"#
        )),
    )
    .unwrap();
    wait_open(&client);
    // Pings are answered while the link is healthy: an RTT is measured.
    let deadline = Instant::now() + T;
    while client.stats().last_rtt.is_none() {
        assert!(Instant::now() < deadline, "no RTT measured");
        poll_for(&client, Duration::from_millis(ping));
    }

    proxy.set_mode(Mode::BlackHole);
    let start = Instant::now();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Reconnecting { .. }));
    let detected = start.elapsed();
    assert!(has_error(&ev, error_code::HEARTBEAT_TIMEOUT), "{ev:?}");
    // At most one ping interval to the next Ping, one pong timeout, slack.
    let bound = Duration::from_millis(ping + pong) + Duration::from_millis(1500);
    assert!(detected <= bound, "dead link noticed after {detected:?}");

    // The link comes back: the client reconnects by itself.
    proxy.set_mode(Mode::Forward);
    wait_open(&client);
    client.send_text("after").unwrap();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Text(_)));
    assert_eq!(texts(&ev), vec!["after"]);
}

/// Answers every connection with one fixed HTTP response, counting them.
struct HttpResponder {
    addr: SocketAddr,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl HttpResponder {
    fn start(response: &'static str) -> HttpResponder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            // Ends with the test process; each connection is served briefly.
            for stream in listener.incoming().take(1000) {
                let Ok(mut s) = stream else { continue };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(response.as_bytes());
            }
        });
        HttpResponder { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[test]
fn a_4xx_handshake_is_reported_and_not_retried() {
    let server = HttpResponder::start(
        "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    let client = Client::connect(
        &format!("ws://{}/", server.addr),
        options(&format!("{{{FAST}}}")),
    )
    .unwrap();
    // Once the client has ended, even before the app polled that far, a
    // send is refused rather than queued for nobody.
    let deadline = Instant::now() + T;
    loop {
        match client.send_text("too late") {
            Err(tether::Error::Closed(_)) => break,
            Ok(()) => {
                assert!(Instant::now() < deadline, "sends still accepted");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert!(has_error(&ev, 401), "{ev:?}");
    assert!(
        !ev.iter().any(|e| matches!(e, Event::Reconnecting { .. })),
        "{ev:?}"
    );
    assert_eq!(states(&ev), vec![State::Connecting, State::Closed]);
    assert_eq!(server.hits(), 1);
}

#[test]
fn a_503_with_retry_after_is_retried_no_sooner_than_asked() {
    let server = HttpResponder::start(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n",
    );
    let client = Client::connect(
        &format!("ws://{}/", server.addr),
        options(&format!("{{{FAST}}}")),
    )
    .unwrap();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Reconnecting { .. }));
    assert!(has_error(&ev, 503), "{ev:?}");
    let Some(Event::Reconnecting { attempt: 1, delay }) = ev.last() else {
        panic!("{ev:?}")
    };
    assert!(
        *delay >= Duration::from_secs(1),
        "Retry-After ignored: {delay:?}"
    );
    client.close(1000, "").unwrap();
    poll_until(&client, T, |e| *e == Event::Terminated);
}

#[test]
fn a_429_is_retried() {
    let server =
        HttpResponder::start("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n");
    let client = Client::connect(
        &format!("ws://{}/", server.addr),
        options(
            r#"{"reconnect": {"initial_delay_ms": 10, "max_delay_ms": 10, "max_attempts": 2}}"#,
        ),
    )
    .unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::Reconnecting { .. }))
            .count(),
        2
    );
    assert_eq!(server.hits(), 3);
}

#[test]
fn pause_closes_politely_keeps_the_queue_and_resume_reconnects() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let client = Client::connect(&proxy.url("/"), options(&format!("{{{FAST}}}"))).unwrap();
    wait_open(&client);
    client.pause().unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::State(State::Reconnecting));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Closed { code: 1001, .. })),
        "{ev:?}"
    );
    client.send_text("while paused").unwrap();
    // No attempt while paused, however long.
    let quiet = poll_for(&client, Duration::from_millis(600));
    assert!(quiet.is_empty(), "{quiet:?}");
    assert_eq!(proxy.connections(), 1);
    assert_eq!(client.stats().queued_messages, 1);

    client.resume().unwrap();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Text(_)));
    assert!(states(&ev).contains(&State::Open));
    assert_eq!(texts(&ev), vec!["while paused"]);
    assert_eq!(proxy.connections(), 2);
}

#[test]
fn network_back_skips_the_backoff_and_network_gone_stops_attempts() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    proxy.set_mode(Mode::Refuse);
    // A long backoff: only the hint can make the retry come early.
    let client = Client::connect(
        &proxy.url("/"),
        options(
            r#"{"reconnect": {"initial_delay_ms": 60000, "max_delay_ms": 60000, "jitter": 0}}"#,
        ),
    )
    .unwrap();
    poll_until(&client, T, |e| matches!(e, Event::Reconnecting { .. }));
    proxy.set_mode(Mode::Forward);
    let start = Instant::now();
    client.network_changed(true).unwrap();
    wait_open(&client);
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the hint did not cut the backoff"
    );

    // Offline: after the link drops, no attempt is made until it returns.
    client.network_changed(false).unwrap();
    let before = proxy.connections();
    proxy.kill_all();
    poll_until(&client, T, |e| matches!(e, Event::Closed { .. }));
    poll_for(&client, Duration::from_millis(500));
    assert_eq!(proxy.connections(), before, "attempted while offline");
    client.network_changed(true).unwrap();
    wait_open(&client);
}

#[test]
fn reconnect_after_set_header_uses_the_new_token() {
    let server = EchoServer::start();
    let client = Client::connect(
        &server.url(),
        options(r#"{"headers": {"Authorization": "Bearer old"}}"#),
    )
    .unwrap();
    wait_open(&client);
    client
        .set_header("authorization", Some("Bearer new"))
        .unwrap();
    client.set_header("X-Extra", Some("1")).unwrap();
    client.set_header("X-Extra", None).unwrap();
    client.reconnect().unwrap();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Open { .. }));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Closed { code: 1001, .. })),
        "{ev:?}"
    );
    let handshakes = server.handshakes.lock().unwrap().clone();
    assert_eq!(handshakes.len(), 2);
    let auth = |h: &Vec<(String, String)>| {
        h.iter()
            .filter(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(auth(&handshakes[0]), vec!["Bearer old"]);
    assert_eq!(auth(&handshakes[1]), vec!["Bearer new"]);
    assert!(!handshakes[1].iter().any(|(k, _)| k == "x-extra"));
    assert!(client.set_header("Bad Name", Some("x")).is_err());
    let err = client.set_header("X-Secret", Some("s3cr3t\n")).unwrap_err();
    assert!(!err.to_string().contains("s3cr3t"), "{err}");
}

#[test]
fn manual_flush_lets_the_auth_message_go_before_the_backlog() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    proxy.set_mode(Mode::Refuse);
    let client = Client::connect(
        &proxy.url("/"),
        options(&format!(r#"{{"queue": {{"flush": "manual"}}, {FAST}}}"#)),
    )
    .unwrap();
    for i in 0..3 {
        client.send_text(&format!("backlog{i}")).unwrap();
    }
    proxy.set_mode(Mode::Forward);
    wait_open(&client);
    client.send_text("auth").unwrap();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Text(_)));
    assert_eq!(texts(&ev), vec!["auth"]);
    // The backlog is still held.
    assert!(texts(&poll_for(&client, Duration::from_millis(300))).is_empty());
    client.flush().unwrap();
    client.send_text("after").unwrap();
    let expected: Vec<String> = ["backlog0", "backlog1", "backlog2", "after"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    expect_texts_exactly(&client, &expected);
}

#[test]
fn an_unanswered_close_ends_after_the_close_timeout() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let client = Client::connect(
        &proxy.url("/"),
        options(r#"{"close_timeout_ms": 300, "ping_interval_ms": 0}"#),
    )
    .unwrap();
    wait_open(&client);
    proxy.set_mode(Mode::BlackHole);
    client.close(1000, "bye").unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert!(has_error(&ev, error_code::CLOSE_TIMEOUT), "{ev:?}");
    assert_eq!(states(&ev), vec![State::Closing, State::Closed]);
}

#[test]
fn a_silent_server_hits_the_connect_timeout() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    proxy.set_mode(Mode::BlackHole);
    let client = Client::connect(
        &proxy.url("/"),
        options(r#"{"connect_timeout_ms": 300, "reconnect": {"enabled": false}}"#),
    )
    .unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert!(has_error(&ev, error_code::CONNECT_TIMEOUT), "{ev:?}");
}

#[test]
fn a_full_queue_refuses_or_drops_the_oldest_with_a_report() {
    let proxy_target = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = proxy_target.local_addr().unwrap();
    drop(proxy_target);
    let url = format!("ws://{dead}/");
    let reject = Client::connect(
        &url,
        options(r#"{"queue": {"max_messages": 2}, "reconnect": {"initial_delay_ms": 60000, "max_delay_ms": 60000}}"#),
    )
    .unwrap();
    reject.send_text("1").unwrap();
    reject.send_text("2").unwrap();
    assert!(matches!(
        reject.send_text("3"),
        Err(tether::Error::QueueFull(_))
    ));
    assert_eq!(reject.stats().queued_messages, 2);

    let drop_oldest = Client::connect(
        &url,
        options(r#"{"queue": {"max_messages": 2, "overflow": "drop_oldest"}, "reconnect": {"initial_delay_ms": 60000, "max_delay_ms": 60000}}"#),
    )
    .unwrap();
    for m in ["1", "2", "3"] {
        drop_oldest.send_text(m).unwrap();
    }
    let ev = poll_until(
        &drop_oldest,
        T,
        |e| matches!(e, Event::Error { code, .. } if *code == error_code::MESSAGE_DROPPED),
    );
    assert!(!ev.is_empty());
    assert_eq!(drop_oldest.stats().dropped_messages, 1);
    assert_eq!(drop_oldest.stats().queued_messages, 2);
    drop_oldest.close(1000, "").unwrap();
    let ev = poll_until(&drop_oldest, T, |e| *e == Event::Terminated);
    assert!(has_error(&ev, error_code::UNSENT), "{ev:?}");
}

#[test]
fn a_reset_connection_is_retried_and_what_was_written_is_counted() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let client = Client::connect(&proxy.url("/"), options(&format!("{{{FAST}}}"))).unwrap();
    wait_open(&client);
    client.send_text("one").unwrap();
    poll_until(&client, T, |e| matches!(e, Event::Text(_)));
    proxy.reset_all();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Reconnecting { .. }));
    assert!(has_error(&ev, error_code::CONNECTION_LOST), "{ev:?}");
    wait_open(&client);
    let stats = client.stats();
    assert_eq!((stats.messages_out, stats.bytes_out), (1, 3));
}
