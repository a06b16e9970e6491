//! The Socket.IO client against a hostile Engine.IO server: raw HTTP/1.1
//! long-polling written by hand (tests/support/hostile_engineio.rs), one
//! `#[test]` per scenario, through the public API (`tether::SocketIoClient`).
//!
//! What is expected (DESIGN.md "Socket.IO (contract)" and "Behaviour users
//! count on", issue 13):
//! - a dead link (no ping within `pingInterval + pingTimeout`), a lost
//!   session (`400 Session ID unknown`, the server's close packet) and a
//!   5xx handshake are errors followed by a reconnect with a fresh
//!   handshake, every joined namespace joined again; a 4xx handshake is
//!   reported, not retried, and the client terminates;
//! - `Retry-After` sets the RECONNECTING delay, capped by
//!   `reconnect.max_retry_after_ms`;
//! - the client answers pings with pongs by POST, keeps its POST bodies
//!   under the server's `maxPayload`, and reads no more of a poll than
//!   `max_message_bytes`;
//! - a server that breaks Engine.IO or Socket.IO gets `Error(PROTOCOL)` (or
//!   `MESSAGE_TOO_BIG`), never a panic, and the client reconnects (as
//!   Socket.IO clients do after a parse error); packets that only make no
//!   sense (a CONNECT or event of a namespace never joined, an ack never
//!   asked for) are ignored;
//! - the client's close posts the namespace's DISCONNECT and the close
//!   packet and terminates within `close_timeout_ms`, whatever the server
//!   does with its requests.
//!
//! Every wait is bounded (deadline loops); no test asserts a speed.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::hostile_engineio::{Config, HostileEio, Reply, SEP};
use support::{error_codes, states};
use tether::event::SioEvent;
use tether::{error_code, Event, SocketIoClient, State};

/// Bound on any single wait of the suite.
const T: Duration = Duration::from_secs(15);
/// Quick retries, for scenarios where a retry is expected.
const FAST: &str = r#""reconnect": {"initial_delay_ms": 50, "max_delay_ms": 200, "jitter": 0.2, "jitter_seed": 7}"#;
const CLOSE_TIMEOUT_MS: u64 = 1000;
/// Scheduling slack on top of a configured timeout (2 shared cores).
const SLACK: Duration = Duration::from_secs(3);
/// After a client ended for good, no new request may come within this.
const QUIET: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

/// A polling-only client of `server` with short timeouts, `FAST` retries
/// unless `extra` sets `reconnect`, and `extra`.
fn connect(server: &HostileEio, extra: &str) -> SocketIoClient {
    let mut json = format!(
        r#"{{"allow_insecure": true, "transports": ["polling"], "connect_timeout_ms": 3000, "close_timeout_ms": {CLOSE_TIMEOUT_MS}"#
    );
    if !extra.contains("\"reconnect\"") {
        json.push_str(", ");
        json.push_str(FAST);
    }
    if !extra.is_empty() {
        json.push_str(", ");
        json.push_str(extra);
    }
    json.push('}');
    SocketIoClient::connect(&server.url(), Some(&json)).unwrap()
}

/// Polls until `want` matches (bounded by `T`), returning every event.
fn until(client: &SocketIoClient, what: &str, want: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {what} within {T:?}; saw {seen:#?}");
        let polled = client
            .poll_event(Some(left.min(Duration::from_millis(200))))
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}; saw {seen:#?}"));
        if let Some(event) = polled {
            let done = want(&event);
            let terminated = event == Event::Terminated;
            seen.push(event);
            if done {
                return seen;
            }
            assert!(!terminated, "terminated before {what}; saw {seen:#?}");
        }
    }
}

fn is_connect(e: &Event, nsp: &str) -> bool {
    matches!(e.socket_io(), Some(SioEvent::Connect { nsp: n, .. }) if n == nsp)
}

fn is_event(e: &Event, name: &str) -> bool {
    matches!(e.socket_io(), Some(SioEvent::Event { name: n, .. }) if n == name)
}

fn connected(client: &SocketIoClient, nsp: &str) -> Vec<Event> {
    until(client, &format!("CONNECT of {nsp}"), |e| is_connect(e, nsp))
}

fn retried(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { .. }))
}

/// `close()`, then every event up to `Terminated`, which must come within
/// `close_timeout_ms` (plus scheduling slack).
fn close_and_terminate(client: &SocketIoClient) -> Vec<Event> {
    let started = Instant::now();
    client.close().unwrap();
    let limit = Duration::from_millis(CLOSE_TIMEOUT_MS) + SLACK;
    let mut seen = Vec::new();
    loop {
        let left = limit.saturating_sub(started.elapsed());
        assert!(
            !left.is_zero(),
            "no Terminated within close_timeout_ms + slack; saw {seen:#?}"
        );
        if let Some(event) = client.poll_event(Some(left)).unwrap() {
            let done = event == Event::Terminated;
            seen.push(event);
            if done {
                break;
            }
        }
    }
    assert!(
        matches!(
            client.poll_event(Some(Duration::ZERO)),
            Err(tether::Error::Closed(_))
        ),
        "events after Terminated"
    );
    assert_eq!(states(&seen).last(), Some(&State::Closed), "{seen:#?}");
    seen
}

/// The client connects `/` on a default server, the server sends
/// `packet` (one Engine.IO packet or several joined by `\x1e`): the client
/// reports `code`, reconnects with a fresh handshake and joins `/` again.
fn expect_broken(config: Config, packet: &str, code: i32) -> Vec<Event> {
    let server = HostileEio::start(config);
    let client = connect(&server, "");
    connected(&client, "/");
    server.push(packet);
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert!(
        error_codes(&ev).contains(&code),
        "expected Error {code}: {ev:#?}"
    );
    for e in &ev {
        if let Some(SioEvent::Event { name, .. }) = e.socket_io() {
            panic!("a broken packet was delivered as event {name:?}: {ev:#?}");
        }
    }
    // The client told the server why and hung up this session (the close
    // packet), then opened a new one and joined `/` again.
    connected(&client, "/");
    assert!(server.handshakes() >= 2);
    assert!(
        server.posted_messages(1).iter().any(|m| m == "0"),
        "/ was not joined again: {:?}",
        server.posted_messages(1)
    );
    close_and_terminate(&client);
    ev
}

/// The client connects `/`, the server sends `packet`, then an event
/// `after`: `packet` changed nothing (no error, no event from it, no
/// reconnect), `after` arrives.
fn expect_ignored(packet: &str) -> Vec<Event> {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.push(packet);
    server.push(r#"42["after"]"#);
    let ev = until(&client, "the event after", |e| is_event(e, "after"));
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    assert!(!retried(&ev), "{ev:#?}");
    let others: Vec<&Event> = ev
        .iter()
        .filter(|e| e.socket_io().is_some() && !is_event(e, "after"))
        .collect();
    assert!(others.is_empty(), "{packet:?} gave {others:#?}");
    assert_eq!(server.handshakes(), 1);
    close_and_terminate(&client);
    ev
}

/// The first handshake is answered `reply`; the client reports `code`,
/// retries, and the next (correct) handshake opens and joins `/`.
fn expect_handshake_retried(reply: Reply, code: i32) -> Vec<Event> {
    let server = HostileEio::scripted(Config::default(), move |r, ctx| {
        if r.is_handshake() && ctx.index == 0 {
            reply.clone()
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, "");
    let ev = connected(&client, "/");
    assert!(retried(&ev), "{ev:#?}");
    assert_eq!(error_codes(&ev), vec![code], "{ev:#?}");
    assert_eq!(server.handshakes(), 1);
    close_and_terminate(&client);
    ev
}

// ---------------------------------------------------------------------
// The server itself
// ---------------------------------------------------------------------

#[test]
fn the_hostile_server_speaks_engine_io() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, r#""headers": {"X-Test": "1"}"#);
    connected(&client, "/");
    server.push(r#"42["hello",1,{"a":true}]"#);
    let ev = until(&client, "hello", |e| is_event(e, "hello"));
    let Some(SioEvent::Event { args, ack_id, .. }) = ev.last().and_then(Event::socket_io) else {
        unreachable!()
    };
    assert_eq!(args, r#"[1,{"a":true}]"#);
    assert_eq!(*ack_id, 0);
    client.emit("/", "echo", r#"["x"]"#, false).unwrap();
    let deadline = Instant::now() + T;
    while !server
        .posted_messages(0)
        .iter()
        .any(|m| m == r#"2["echo","x"]"#)
    {
        assert!(Instant::now() < deadline, "{:?}", server.posted_messages(0));
        std::thread::sleep(Duration::from_millis(10));
    }
    let requests = server.requests();
    let handshake = &requests[0];
    assert!(handshake.is_handshake());
    assert_eq!(handshake.query("EIO").as_deref(), Some("4"));
    assert_eq!(handshake.query("transport").as_deref(), Some("polling"));
    assert_eq!(handshake.header("x-test"), Some("1"));
    assert!(requests.iter().all(|r| r.header("x-test") == Some("1")));
    let end = close_and_terminate(&client);
    assert!(error_codes(&end).is_empty(), "{end:#?}");
    let posted = server.posted_messages(0);
    assert_eq!(posted.first().map(String::as_str), Some("0"), "{posted:?}");
    assert!(posted.iter().any(|m| m == "1"), "no DISCONNECT: {posted:?}");
    let last_post = server
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.is_post())
        .unwrap();
    assert_eq!(last_post.packets().last().map(String::as_str), Some("1"));
}

// ---------------------------------------------------------------------
// Heartbeat
// ---------------------------------------------------------------------

#[test]
fn no_ping_after_the_handshake_is_a_dead_link_and_a_fresh_handshake_follows() {
    let server = HostileEio::start(Config {
        ping_interval_ms: 300,
        ping_timeout_ms: 200,
        pings: false,
        ..Config::default()
    });
    let client = connect(&server, "");
    connected(&client, "/");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(
        error_codes(&ev),
        vec![error_code::HEARTBEAT_TIMEOUT],
        "{ev:#?}"
    );
    assert!(
        ev.iter().any(|e| matches!(
            e.socket_io(),
            Some(SioEvent::Disconnect { nsp, reason }) if nsp == "/" && reason == "transport close"
        )),
        "{ev:#?}"
    );
    connected(&client, "/");
    assert!(server.handshakes() >= 2);
    assert_eq!(
        server.posted_messages(1).first().map(String::as_str),
        Some("0")
    );
    close_and_terminate(&client);
}

#[test]
fn zero_ping_interval_and_timeout_is_a_dead_link_with_backoff_not_a_spin() {
    let server = HostileEio::start(Config {
        ping_interval_ms: 0,
        ping_timeout_ms: 0,
        pings: false,
        ..Config::default()
    });
    let client = connect(&server, "");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert!(
        error_codes(&ev).contains(&error_code::HEARTBEAT_TIMEOUT),
        "{ev:#?}"
    );
    let Some(Event::Reconnecting { delay, .. }) = ev.last() else {
        unreachable!()
    };
    assert!(!delay.is_zero(), "{ev:#?}");
    close_and_terminate(&client);
}

#[test]
fn pings_are_answered_with_pongs_by_post_within_the_window() {
    let server = HostileEio::start(Config {
        ping_interval_ms: 100,
        ping_timeout_ms: 5000,
        enforce_pongs: true,
        ..Config::default()
    });
    let client = connect(&server, "");
    connected(&client, "/");
    assert!(
        server.wait(T, |s| s.sessions.get("sid0").is_some_and(|s| s.pongs >= 5)),
        "no 5 pongs: {:?}",
        server.with(|s| s.sessions.get("sid0").map(|s| (s.pings, s.pongs)))
    );
    assert_eq!(server.with(|s| s.pong_timeouts), 0);
    assert_eq!(server.handshakes(), 1);
    // Pongs are posted as such, not carried by a poll.
    let pongs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_post() && r.packets().iter().any(|p| p == "3"))
        .collect();
    assert!(pongs.len() >= 5, "{pongs:#?}");
    let mut seen = Vec::new();
    while let Some(e) = client.poll_event(Some(Duration::ZERO)).unwrap() {
        seen.push(e);
    }
    assert!(error_codes(&seen).is_empty(), "{seen:#?}");
    assert!(!retried(&seen), "{seen:#?}");
    close_and_terminate(&client);
}

#[test]
fn a_ping_flood_is_answered_by_few_posts() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    let flood = vec!["2"; 10_000].join(&SEP.to_string());
    server.push(&flood);
    server.push(r#"42["after"]"#);
    until(&client, "the event after the flood", |e| {
        is_event(e, "after")
    });
    // One pong answers every ping still unanswered: the server is not
    // flooded back with 10,000 POSTs.
    client.emit("/", "marker", "[]", false).unwrap();
    assert!(server
        .wait(T, |s| s.requests.iter().any(
            |r| r.is_post() && r.packets().iter().any(|p| p == r#"42["marker"]"#)
        )));
    let posts = server.requests().iter().filter(|r| r.is_post()).count();
    assert!(posts < 100, "{posts} POSTs for a flood of pings");
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------

#[test]
fn handshake_that_is_not_engine_io_is_an_error_and_retried() {
    expect_handshake_retried(Reply::payload("hello world"), error_code::HANDSHAKE);
}

#[test]
fn handshake_that_is_not_an_open_packet_is_an_error_and_retried() {
    expect_handshake_retried(Reply::payload(r#"42["x"]"#), error_code::HANDSHAKE);
}

#[test]
fn handshake_open_packet_without_a_sid_is_an_error_and_retried() {
    expect_handshake_retried(
        Reply::payload(r#"0{"pingInterval":1000,"pingTimeout":1000}"#),
        error_code::HANDSHAKE,
    );
}

#[test]
fn handshake_open_packet_with_bad_json_is_an_error_and_retried() {
    expect_handshake_retried(Reply::payload(r#"0{"sid":"#), error_code::HANDSHAKE);
}

#[test]
fn handshake_html_page_is_an_error_and_retried() {
    expect_handshake_retried(
        Reply::payload("<html><body>It works!</body></html>"),
        error_code::HANDSHAKE,
    );
}

#[test]
fn handshake_empty_body_is_an_error_and_retried() {
    expect_handshake_retried(Reply::payload(""), error_code::HANDSHAKE);
}

#[test]
fn handshake_binary_packet_first_is_an_error_and_retried() {
    expect_handshake_retried(Reply::payload("bAQID"), error_code::HANDSHAKE);
}

#[test]
fn handshake_hang_up_is_an_error_and_retried() {
    expect_handshake_retried(Reply::HangUp, error_code::CONNECTION_LOST);
}

#[test]
fn handshake_body_over_max_message_bytes_is_an_error_and_retried() {
    let server = HostileEio::scripted(Config::default(), |r, ctx| {
        if r.is_handshake() && ctx.index == 0 {
            Reply::Endless {
                length: 1 << 30,
                chunk: vec![b'0'; 64 * 1024],
            }
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, r#""max_message_bytes": 65536"#);
    let ev = connected(&client, "/");
    assert!(retried(&ev), "{ev:#?}");
    assert_eq!(
        error_codes(&ev),
        vec![error_code::MESSAGE_TOO_BIG],
        "{ev:#?}"
    );
    assert!(server.wait(T, |s| s.stream_cut), "the client read on");
    assert!(server.with(|s| s.streamed) < 64 << 20);
    close_and_terminate(&client);
}

#[test]
fn handshake_500_is_retried() {
    expect_handshake_retried(Reply::status(500, "oops"), 500);
}

#[test]
fn handshake_403_is_reported_not_retried_and_terminates() {
    let server = HostileEio::scripted(Config::default(), |r, _| {
        if r.is_handshake() {
            Reply::status(403, "forbidden")
        } else {
            Reply::Default
        }
    });
    // Default reconnect settings: a retry would come within about a second.
    let client = connect(&server, r#""reconnect": {}"#);
    let ev = until(&client, "Terminated", |e| *e == Event::Terminated);
    assert_eq!(error_codes(&ev), vec![403], "{ev:#?}");
    assert!(!retried(&ev), "{ev:#?}");
    assert_eq!(states(&ev), vec![State::Connecting, State::Closed]);
    assert!(
        !server.wait(QUIET, |s| s.requests.len() > 1),
        "a 403 was retried"
    );
    assert!(matches!(
        client.poll_event(Some(Duration::ZERO)),
        Err(tether::Error::Closed(_))
    ));
}

/// The first handshake gets 503 with `Retry-After: retry_after`: the
/// RECONNECTING delay the client reports.
fn delay_after_503(retry_after: &str, extra: &str) -> Duration {
    let value = retry_after.to_string();
    let server = HostileEio::scripted(Config::default(), move |r, ctx| {
        if r.is_handshake() && ctx.index == 0 {
            Reply::Respond {
                status: 503,
                headers: vec![("Retry-After".into(), value.clone())],
                body: b"busy".to_vec(),
            }
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, extra);
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(error_codes(&ev), vec![503], "{ev:#?}");
    let Some(Event::Reconnecting { attempt, delay }) = ev.last() else {
        unreachable!()
    };
    assert_eq!(*attempt, 1);
    let delay = *delay;
    // Closing while waiting ends at once.
    close_and_terminate(&client);
    delay
}

#[test]
fn handshake_503_retry_after_sets_the_reconnecting_delay() {
    let delay = delay_after_503("3", "");
    // The backoff alone is at most 200 ms here.
    assert!(
        delay >= Duration::from_secs(3) && delay <= Duration::from_millis(3200),
        "{delay:?}"
    );
}

#[test]
fn handshake_503_retry_after_is_capped_by_max_retry_after_ms() {
    let delay = delay_after_503(
        "86400",
        r#""reconnect": {"initial_delay_ms": 50, "max_delay_ms": 200, "jitter": 0.2, "jitter_seed": 7, "max_retry_after_ms": 1500}"#,
    );
    assert_eq!(delay, Duration::from_millis(1500));
}

#[test]
fn handshake_503_with_an_overflowing_retry_after_is_capped() {
    let delay = delay_after_503(
        "99999999999999999999999999",
        r#""reconnect": {"initial_delay_ms": 50, "max_delay_ms": 200, "jitter": 0.2, "jitter_seed": 7, "max_retry_after_ms": 1500}"#,
    );
    assert_eq!(delay, Duration::from_millis(1500));
}

#[test]
fn sid_with_url_special_characters_is_percent_encoded() {
    let server = HostileEio::start(Config::default());
    let sid = "a b&transport=websocket/é+%\"";
    server.with(|s| s.sid_overrides.push_back(sid.to_string()));
    let client = connect(&server, "");
    let ev = connected(&client, "/");
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    let requests = server.requests();
    let polls: Vec<_> = requests.iter().filter(|r| !r.is_handshake()).collect();
    assert!(!polls.is_empty());
    for r in polls {
        assert_eq!(r.sid().as_deref(), Some(sid), "{}", r.target);
        assert_eq!(
            r.query("transport").as_deref(),
            Some("polling"),
            "{}",
            r.target
        );
        assert!(!r.target.contains(' '), "{}", r.target);
    }
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// Lost sessions
// ---------------------------------------------------------------------

#[test]
fn poll_400_session_unknown_reconnects_and_rejoins_every_namespace() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, r#""auth": {"token": "t"}"#);
    connected(&client, "/");
    client.join("/admin", Some(r#"{"k":1}"#)).unwrap();
    connected(&client, "/admin");
    // The server restarts: the held poll is answered 400.
    server.forget_sessions();
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(
        error_codes(&ev),
        vec![error_code::CONNECTION_LOST],
        "{ev:#?}"
    );
    let mut rejoined = Vec::new();
    let deadline = Instant::now() + T;
    while rejoined.len() < 2 {
        assert!(Instant::now() < deadline, "rejoined only {rejoined:?}");
        if let Some(SioEvent::Connect { nsp, .. }) = client
            .poll_event(Some(Duration::from_millis(200)))
            .unwrap()
            .and_then(Event::into_socket_io)
        {
            rejoined.push(nsp);
        }
    }
    rejoined.sort();
    assert_eq!(rejoined, vec!["/", "/admin"]);
    let posted = server.posted_messages(1);
    assert!(
        posted.iter().any(|m| m == r#"0{"token":"t"}"#),
        "{posted:?}"
    );
    assert!(
        posted.iter().any(|m| m == r#"0/admin,{"k":1}"#),
        "{posted:?}"
    );
    close_and_terminate(&client);
}

#[test]
fn post_400_session_unknown_reconnects() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.with(|s| s.sessions.clear());
    // The held poll is still held (the server was not woken): the next
    // POST finds the session gone.
    client.emit("/", "x", "[]", false).unwrap();
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert!(
        error_codes(&ev).contains(&error_code::CONNECTION_LOST),
        "{ev:#?}"
    );
    connected(&client, "/");
    // The emit was written on the lost session; it is not sent twice.
    close_and_terminate(&client);
}

#[test]
fn server_close_packet_reconnects() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.push("1");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(
        error_codes(&ev),
        vec![error_code::CONNECTION_LOST],
        "{ev:#?}"
    );
    connected(&client, "/");
    assert_eq!(server.handshakes(), 2);
    close_and_terminate(&client);
}

#[test]
fn poll_hang_up_reconnects() {
    let server = HostileEio::scripted(Config::default(), |r, ctx| {
        if r.is_poll() && ctx.session == Some(0) && ctx.polls == 1 {
            Reply::HangUp
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, "");
    connected(&client, "/");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert!(
        error_codes(&ev).contains(&error_code::CONNECTION_LOST),
        "{ev:#?}"
    );
    connected(&client, "/");
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------

#[test]
fn poll_body_over_max_message_bytes_is_cut_and_the_client_reconnects() {
    let server = HostileEio::scripted(Config::default(), |r, ctx| {
        if r.is_poll() && ctx.session == Some(0) && ctx.polls == 1 {
            Reply::Endless {
                length: 1 << 30,
                chunk: vec![b'4'; 64 * 1024],
            }
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, r#""max_message_bytes": 65536"#);
    connected(&client, "/");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(
        error_codes(&ev),
        vec![error_code::MESSAGE_TOO_BIG],
        "{ev:#?}"
    );
    // The client hung up: the server could write its kernel buffers' worth
    // at most, not the gigabyte it announced.
    assert!(server.wait(T, |s| s.stream_cut), "the client read on");
    let streamed = server.with(|s| s.streamed);
    assert!(streamed < 64 << 20, "{streamed} bytes streamed");
    connected(&client, "/");
    close_and_terminate(&client);
}

#[test]
fn attachments_together_over_max_message_bytes_are_too_big() {
    // Each attachment fits in a poll; together they pass the limit.
    let server = HostileEio::start(Config::default());
    let client = connect(&server, r#""max_message_bytes": 65536"#);
    connected(&client, "/");
    let attachment = format!("b{}", "A".repeat(40_000));
    let placeholders: Vec<String> = (0..4)
        .map(|i| format!(r#"{{"_placeholder":true,"num":{i}}}"#))
        .collect();
    server.push(&format!(
        "454-[\"files\",{}]{SEP}{attachment}",
        placeholders.join(",")
    ));
    for _ in 1..4 {
        // Once a poll took what was queued, the next one gets the next
        // attachment alone.
        assert!(server.wait(T, |s| s.sessions.values().all(|s| s.queued.is_empty())));
        server.push(&attachment);
    }
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(
        error_codes(&ev),
        vec![error_code::MESSAGE_TOO_BIG],
        "{ev:#?}"
    );
    assert!(!ev.iter().any(|e| is_event(e, "files")), "{ev:#?}");
    connected(&client, "/");
    close_and_terminate(&client);
}

/// This process's peak resident memory (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[test]
fn a_payload_of_millions_of_tiny_packets_costs_about_its_size() {
    // 16 MiB of noops, 8 million packets: decoded at once they would take
    // many times the payload's size (a hostile server's amplification).
    let Some(before) = peak_rss() else {
        eprintln!("note: no /proc/self/status; skipped");
        return;
    };
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    let mut noops = format!("6{SEP}").repeat(8 << 20);
    noops.pop();
    server.push(&noops);
    drop(noops);
    server.push(r#"42["after"]"#);
    until(&client, "the event after the noops", |e| {
        is_event(e, "after")
    });
    let after = peak_rss().unwrap();
    let grown = after.saturating_sub(before);
    assert!(
        // The test's and the server's own copies of the payload, and the
        // client's body, take some 100 MiB; decoded at once, 1.5 GiB.
        grown < 400 << 20,
        "peak memory grew by {} MiB for a 16 MiB payload",
        grown >> 20
    );
    close_and_terminate(&client);
}

#[test]
fn a_huge_max_payload_does_not_void_the_queue_limit() {
    // The server takes no POST after the CONNECT's and says any size is
    // fine: emits must meet a full queue, not pile up in one endless body.
    let server = HostileEio::scripted(
        Config {
            max_payload: u64::MAX,
            ..Config::default()
        },
        |r, _| {
            if r.is_post() && !r.packets().iter().any(|p| p.starts_with("40")) {
                Reply::Hold
            } else {
                Reply::Default
            }
        },
    );
    let client = connect(
        &server,
        r#""queue": {"max_messages": 100, "max_bytes": 1048576}"#,
    );
    connected(&client, "/");
    let arg = format!(r#"["{}"]"#, "x".repeat(1000));
    let mut refused = None;
    for i in 0..20_000 {
        match client.emit("/", "e", &arg, false) {
            Ok(_) => {}
            Err(tether::Error::QueueFull(_)) => {
                refused = Some(i);
                break;
            }
            Err(e) => panic!("{e:?}"),
        }
        if i % 10 == 0 {
            // Time for the connection to take what is queued.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(
        refused.is_some(),
        "20,000 emits of 1 KB were taken while nothing could be posted"
    );
    close_and_terminate(&client);
}

#[test]
fn post_bodies_stay_under_the_servers_max_payload() {
    let server = HostileEio::start(Config {
        max_payload: 64,
        post_delay: Duration::from_millis(20),
        ..Config::default()
    });
    let client = connect(&server, "");
    // Emitted before `/` is connected: held, then released all at once.
    let n = 40;
    for i in 0..n {
        client.emit("/", "e", &format!("[{i}]"), false).unwrap();
    }
    let big = format!(r#"["{}"]"#, "x".repeat(200));
    client.emit("/", "big", &big, false).unwrap();
    connected(&client, "/");
    assert!(
        server.wait(T, |s| s.requests.iter().any(
            |r| r.is_post() && r.packets().iter().any(|p| p.starts_with(r#"42["big""#))
        )),
        "{:?}",
        server.posted_messages(0)
    );
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_post())
        .collect();
    for post in &posts {
        assert!(
            post.body.len() <= 64 || post.packets().len() == 1,
            "a POST of {} bytes with {} packets: {:?}",
            post.body.len(),
            post.packets().len(),
            String::from_utf8_lossy(&post.body)
        );
    }
    assert!(
        posts.iter().any(|p| p.packets().len() > 1),
        "no POST carried more than one packet: the limit was not exercised"
    );
    let events: Vec<String> = server
        .posted_messages(0)
        .into_iter()
        .filter(|m| m.starts_with(r#"2["e""#))
        .collect();
    let want: Vec<String> = (0..n).map(|i| format!(r#"2["e",{i}]"#)).collect();
    assert_eq!(events, want, "emits lost or out of order");
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// Broken Engine.IO and Socket.IO packets: errors, then a reconnect
// ---------------------------------------------------------------------

#[test]
fn binary_event_announcing_more_attachments_than_the_limit() {
    expect_broken(
        Config::default(),
        r#"451025-["x",{"_placeholder":true,"num":0}]"#,
        error_code::PROTOCOL,
    );
}

#[test]
fn binary_event_announcing_an_attachment_count_out_of_range() {
    expect_broken(
        Config::default(),
        r#"4599999999999999999999999-["x"]"#,
        error_code::PROTOCOL,
    );
}

#[test]
fn binary_message_without_a_packet() {
    expect_broken(Config::default(), "bAQID", error_code::PROTOCOL);
}

#[test]
fn packet_while_attachments_are_due() {
    expect_broken(
        Config::default(),
        &format!(r#"451-["x",{{"_placeholder":true,"num":0}}]{SEP}42["y"]"#),
        error_code::PROTOCOL,
    );
}

#[test]
fn attachment_with_bad_base64() {
    expect_broken(
        Config::default(),
        &format!(r#"451-["x",{{"_placeholder":true,"num":0}}]{SEP}b!!!"#),
        error_code::PROTOCOL,
    );
}

#[test]
fn event_with_bad_json() {
    expect_broken(Config::default(), r#"42["x","#, error_code::PROTOCOL);
}

#[test]
fn event_with_deeply_nested_arrays() {
    let depth = 100_000;
    let packet = format!(r#"42["x",{}{}]"#, "[".repeat(depth), "]".repeat(depth));
    expect_broken(Config::default(), &packet, error_code::PROTOCOL);
}

#[test]
fn event_with_deeply_nested_objects() {
    let depth = 50_000;
    let packet = format!(
        r#"42["x",{}1{}]"#,
        r#"{"a":"#.repeat(depth),
        "}".repeat(depth)
    );
    expect_broken(Config::default(), &packet, error_code::PROTOCOL);
}

#[test]
fn event_without_a_name() {
    expect_broken(Config::default(), "42[1,2]", error_code::PROTOCOL);
}

#[test]
fn event_with_no_arguments_at_all() {
    expect_broken(Config::default(), "42[]", error_code::PROTOCOL);
}

#[test]
fn event_whose_data_is_an_object() {
    expect_broken(Config::default(), r#"42{"a":1}"#, error_code::PROTOCOL);
}

#[test]
fn unknown_socketio_packet_type() {
    expect_broken(Config::default(), r#"49["x"]"#, error_code::PROTOCOL);
}

#[test]
fn unknown_engineio_packet_type() {
    expect_broken(Config::default(), "9hello", error_code::PROTOCOL);
}

#[test]
fn engineio_packet_starting_with_a_multibyte_character() {
    expect_broken(Config::default(), "ö4", error_code::PROTOCOL);
}

#[test]
fn empty_engineio_packet_in_a_payload() {
    expect_broken(
        Config::default(),
        &format!("6{SEP}{SEP}6"),
        error_code::PROTOCOL,
    );
}

#[test]
fn ack_id_out_of_range() {
    expect_broken(
        Config::default(),
        r#"4399999999999999999999999["x"]"#,
        error_code::PROTOCOL,
    );
}

#[test]
fn event_ack_id_that_cannot_be_answered() {
    // The app's ack ids are the server's plus one: the largest u64 has no
    // answerable id, so it is refused rather than answered wrongly.
    expect_broken(
        Config::default(),
        r#"4218446744073709551615["x"]"#,
        error_code::PROTOCOL,
    );
}

#[test]
fn open_packet_with_garbage_mid_session() {
    expect_broken(Config::default(), "0garbage", error_code::PROTOCOL);
}

/// The second poll of session 0 is answered with `body`, raw.
fn expect_raw_poll_broken(body: &'static [u8], code: i32) {
    let armed = Arc::new(AtomicBool::new(false));
    let fire = armed.clone();
    let server = HostileEio::scripted(Config::default(), move |r, ctx| {
        if r.is_poll() && ctx.session == Some(0) && fire.swap(false, Ordering::SeqCst) {
            Reply::payload(body)
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, "");
    connected(&client, "/");
    armed.store(true, Ordering::SeqCst);
    // Releases the held poll: the next one gets `body`.
    server.push("6");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert!(error_codes(&ev).contains(&code), "{ev:#?}");
    connected(&client, "/");
    close_and_terminate(&client);
}

#[test]
fn poll_payload_that_is_not_utf8() {
    expect_raw_poll_broken(b"4\xff\xfe", error_code::PROTOCOL);
}

#[test]
fn poll_payload_that_is_empty() {
    expect_raw_poll_broken(b"", error_code::PROTOCOL);
}

#[test]
fn poll_payload_of_nul_bytes() {
    expect_raw_poll_broken(b"\0\0\0\0", error_code::PROTOCOL);
}

// ---------------------------------------------------------------------
// Packets that make no sense: ignored
// ---------------------------------------------------------------------

#[test]
fn connect_for_a_namespace_never_joined_is_ignored() {
    expect_ignored(r#"40/never,{"sid":"x"}"#);
}

#[test]
fn event_for_a_namespace_never_joined_is_ignored() {
    expect_ignored(r#"42/never,["x",1]"#);
}

#[test]
fn disconnect_for_a_namespace_never_joined_is_ignored() {
    expect_ignored("41/never,");
}

#[test]
fn ack_for_an_id_never_issued_is_ignored() {
    expect_ignored(r#"43[1]"#);
}

#[test]
fn binary_ack_for_an_id_never_issued_is_ignored() {
    expect_ignored(&format!(
        r#"461-7[{{"_placeholder":true,"num":0}}]{SEP}bAQID"#
    ));
}

#[test]
fn engineio_noop_upgrade_pong_and_open_are_ignored() {
    expect_ignored(&format!(
        r#"6{SEP}5{SEP}3{SEP}0{{"sid":"other","pingInterval":1,"pingTimeout":1}}"#
    ));
}

#[test]
fn a_second_connect_of_a_connected_namespace_is_harmless() {
    // Reported again (as Socket.IO clients do), nothing else changes.
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.push(r#"40{"sid":"again"}"#);
    server.push(r#"42["after"]"#);
    let ev = until(&client, "the event after", |e| is_event(e, "after"));
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    assert!(!retried(&ev), "{ev:#?}");
    client.emit("/", "still", "[]", false).unwrap();
    assert!(server
        .wait(T, |s| s.requests.iter().any(
            |r| r.is_post() && r.packets().iter().any(|p| p == r#"42["still"]"#)
        )));
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// What the server may end: namespaces
// ---------------------------------------------------------------------

#[test]
fn server_disconnect_of_a_namespace_is_not_rejoined() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.push("41");
    let ev = until(&client, "the DISCONNECT", |e| {
        matches!(e.socket_io(), Some(SioEvent::Disconnect { .. }))
    });
    assert!(matches!(
        ev.last().and_then(Event::socket_io),
        Some(SioEvent::Disconnect { nsp, reason }) if nsp == "/" && reason == "io server disconnect"
    ));
    assert!(
        client.emit("/", "x", "[]", false).is_err(),
        "an emit to a namespace the server ended was accepted"
    );
    // A server restart later: `/` is not joined again.
    server.push("1");
    until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert!(server.wait(T, |s| s.handshakes >= 2));
    assert!(
        !server.wait(QUIET, |s| s.requests.iter().any(|r| r.is_post()
            && r.sid().as_deref() == Some("sid1")
            && r.packets().iter().any(|p| p.starts_with("40"))))
    );
    close_and_terminate(&client);
}

#[test]
fn connect_for_a_namespace_the_server_disconnected_is_ignored() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.push("41");
    until(&client, "the DISCONNECT", |e| {
        matches!(e.socket_io(), Some(SioEvent::Disconnect { .. }))
    });
    // Nobody asked to join `/` again.
    server.push(r#"40{"sid":"unasked"}"#);
    server.push(r#"42["after"]"#);
    server.push("41/admin,");
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(e) = client.poll_event(Some(Duration::from_millis(50))).unwrap() {
            seen.push(e);
        }
    }
    assert!(
        !seen.iter().any(|e| is_connect(e, "/")),
        "a CONNECT nobody asked for was reported: {seen:#?}"
    );
    assert!(client.emit("/", "x", "[]", false).is_err());
    close_and_terminate(&client);
}

#[test]
fn connect_for_a_namespace_the_app_left_is_ignored() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    client.join("/admin", None).unwrap();
    connected(&client, "/admin");
    client.leave("/admin").unwrap();
    until(
        &client,
        "the DISCONNECT of /admin",
        |e| matches!(e.socket_io(), Some(SioEvent::Disconnect { nsp, .. }) if nsp == "/admin"),
    );
    assert!(server
        .wait(T, |s| s.requests.iter().any(
            |r| r.is_post() && r.packets().iter().any(|p| p == "41/admin,")
        )));
    server.push(r#"40/admin,{"sid":"unasked"}"#);
    server.push(r#"42["after"]"#);
    let ev = until(&client, "the event after", |e| is_event(e, "after"));
    assert!(
        !ev.iter().any(|e| is_connect(e, "/admin")),
        "a CONNECT of a namespace the app left was reported: {ev:#?}"
    );
    close_and_terminate(&client);
}

#[test]
fn connect_error_is_reported_with_the_servers_data() {
    let server = HostileEio::start(Config {
        auto_connect: false,
        ..Config::default()
    });
    let client = connect(&server, "");
    assert!(server.wait(T, |s| s.requests.iter().any(|r| r.is_post())));
    server.push(r#"44{"message":"not authorized","data":{"why":[1,2]}}"#);
    let ev = until(&client, "the CONNECT_ERROR", |e| {
        matches!(e.socket_io(), Some(SioEvent::ConnectError { .. }))
    });
    let Some(SioEvent::ConnectError { nsp, data }) = ev.last().and_then(Event::socket_io) else {
        unreachable!()
    };
    assert_eq!(nsp, "/");
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(data["message"], "not authorized");
    close_and_terminate(&client);
}

#[test]
fn ack_from_another_namespace_is_ignored() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    client.join("/admin", None).unwrap();
    connected(&client, "/admin");
    let id = client.emit("/", "q", "[]", true).unwrap().unwrap();
    let posted = format!(r#"42{id}["q"]"#);
    assert!(server.wait(T, |s| s
        .requests
        .iter()
        .any(|r| r.is_post() && r.packets().contains(&posted))));
    // The id is the one of an emit of `/`: an ack of it on `/admin` (or on
    // a namespace never joined) answers nothing.
    server.push(&format!(r#"43/admin,{id}["wrong"]"#));
    server.push(&format!(r#"43/never,{id}["wrong"]"#));
    server.push(&format!(r#"43{id}["right"]"#));
    let ev = until(&client, "the ack", |e| {
        matches!(e.socket_io(), Some(SioEvent::Ack { .. }))
    });
    let Some(SioEvent::Ack {
        nsp,
        ack_id,
        args,
        error,
        ..
    }) = ev.last().and_then(Event::socket_io)
    else {
        unreachable!()
    };
    assert_eq!(
        (nsp.as_str(), *ack_id, args.as_str(), *error),
        ("/", id, r#"["right"]"#, 0)
    );
    close_and_terminate(&client);
}

#[test]
fn event_acks_are_answered_with_the_servers_id() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.push(r#"429007199254740991["ask",1]"#);
    let ev = until(&client, "ask", |e| is_event(e, "ask"));
    let Some(SioEvent::Event { ack_id, .. }) = ev.last().and_then(Event::socket_io) else {
        unreachable!()
    };
    client.ack("/", *ack_id, r#"["ok"]"#).unwrap();
    assert!(
        server.wait(T, |s| s.requests.iter().any(|r| r.is_post()
            && r.packets()
                .iter()
                .any(|p| p == r#"439007199254740991["ok"]"#))),
        "{:?}",
        server.posted_messages(0)
    );
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// The client's close
// ---------------------------------------------------------------------

#[test]
fn close_posts_disconnect_and_close_and_terminates_though_the_poll_is_never_answered() {
    // The first poll answers the CONNECT; later ones are held for ever,
    // even after the close packet.
    let server = HostileEio::scripted(Config::default(), |r, ctx| {
        if r.is_poll() && ctx.polls >= 1 {
            Reply::Hold
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, "");
    connected(&client, "/");
    let end = close_and_terminate(&client);
    assert!(error_codes(&end).is_empty(), "{end:#?}");
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.is_post())
        .collect();
    let packets: Vec<String> = posts.iter().flat_map(|r| r.packets()).collect();
    let disconnect = packets.iter().position(|p| p == "41");
    let close = packets.iter().position(|p| p == "1");
    assert!(
        disconnect.is_some() && close.is_some() && disconnect < close,
        "{packets:?}"
    );
    assert_eq!(packets.last().map(String::as_str), Some("1"));
    assert!(
        !server.wait(QUIET, |s| s.handshakes > 1),
        "the client came back after its close"
    );
}

#[test]
fn close_terminates_within_close_timeout_though_the_close_post_is_never_answered() {
    let server = HostileEio::scripted(Config::default(), |r, _| {
        if r.is_post() && r.packets().iter().any(|p| p == "1") {
            Reply::Hold
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, "");
    connected(&client, "/");
    let end = close_and_terminate(&client);
    assert!(
        error_codes(&end)
            .iter()
            .all(|c| *c == error_code::CLOSE_TIMEOUT),
        "{end:#?}"
    );
    assert!(!server.wait(QUIET, |s| s.handshakes > 1));
}

#[test]
fn close_while_the_handshake_is_held_terminates() {
    let server = HostileEio::scripted(Config::default(), |_, _| Reply::Hold);
    let client = connect(&server, "");
    assert!(server.wait(T, |s| !s.requests.is_empty()));
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// The WebSocket transport, and the upgrade
// ---------------------------------------------------------------------

/// A client of `server` over `transports` (JSON array text).
fn connect_over(server: &HostileEio, transports: &str, extra: &str) -> SocketIoClient {
    let mut json = format!(
        r#"{{"allow_insecure": true, "transports": {transports}, "connect_timeout_ms": 3000, "close_timeout_ms": {CLOSE_TIMEOUT_MS}, {FAST}"#
    );
    if !extra.is_empty() {
        json.push_str(", ");
        json.push_str(extra);
    }
    json.push('}');
    SocketIoClient::connect(&server.url(), Some(&json)).unwrap()
}

const WEBSOCKET: &str = r#"["websocket"]"#;
const BOTH: &str = r#"["polling", "websocket"]"#;

#[test]
fn websocket_the_hostile_server_speaks_engine_io() {
    let server = HostileEio::start(Config {
        ping_interval_ms: 100,
        ping_timeout_ms: 5000,
        ..Config::default()
    });
    let client = connect_over(&server, WEBSOCKET, "");
    connected(&client, "/");
    server.push(r#"42["hello",1]"#);
    until(&client, "hello", |e| is_event(e, "hello"));
    client.emit("/", "echo", "[2]", false).unwrap();
    assert!(server.wait(T, |s| s.ws_messages.iter().any(|m| m == r#"42["echo",2]"#)));
    assert!(server.wait(T, |s| s.sessions.get("sid0").is_some_and(|s| s.pongs >= 3)));
    assert!(server
        .requests()
        .iter()
        .all(|r| r.query("transport").as_deref() == Some("websocket")));
    close_and_terminate(&client);
    assert!(server.wait(T, |s| s.ws_messages.iter().any(|m| m == "41")));
}

#[test]
fn websocket_no_ping_is_a_dead_link_and_reconnects() {
    let server = HostileEio::start(Config {
        ping_interval_ms: 300,
        ping_timeout_ms: 200,
        pings: false,
        ..Config::default()
    });
    let client = connect_over(&server, WEBSOCKET, "");
    connected(&client, "/");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(
        error_codes(&ev),
        vec![error_code::HEARTBEAT_TIMEOUT],
        "{ev:#?}"
    );
    connected(&client, "/");
    close_and_terminate(&client);
}

/// Over WebSocket, the server sends `packet` (a text frame, or binary if
/// it starts with `b`): `code`, then a reconnect and `/` joined again.
fn expect_websocket_broken(packet: &str, code: i32) {
    let server = HostileEio::start(Config::default());
    let client = connect_over(&server, WEBSOCKET, "");
    connected(&client, "/");
    server.push(packet);
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert!(error_codes(&ev).contains(&code), "{ev:#?}");
    connected(&client, "/");
    assert!(server.handshakes() >= 2);
    close_and_terminate(&client);
}

#[test]
fn websocket_packet_starting_with_a_multibyte_character() {
    expect_websocket_broken("ö4", error_code::PROTOCOL);
}

#[test]
fn websocket_event_without_a_name() {
    expect_websocket_broken("42[1]", error_code::PROTOCOL);
}

#[test]
fn websocket_binary_frame_without_a_packet() {
    expect_websocket_broken("bAQID", error_code::PROTOCOL);
}

#[test]
fn websocket_unknown_engineio_packet_type() {
    expect_websocket_broken("9", error_code::PROTOCOL);
}

#[test]
fn websocket_server_close_packet_reconnects() {
    expect_websocket_broken("1", error_code::CONNECTION_LOST);
}

#[test]
fn websocket_first_frame_not_an_open_packet_is_retried() {
    let server = HostileEio::start(Config {
        ws_open: Some(r#"42["early"]"#.into()),
        ..Config::default()
    });
    let client = connect_over(&server, WEBSOCKET, "");
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(error_codes(&ev), vec![error_code::HANDSHAKE], "{ev:#?}");
    assert!(server.wait(T, |s| s.handshakes >= 2));
    close_and_terminate(&client);
}

#[test]
fn websocket_binary_attachments_arrive_with_their_event() {
    let server = HostileEio::start(Config::default());
    let client = connect_over(&server, WEBSOCKET, "");
    connected(&client, "/");
    server.push(r#"451-["file",{"_placeholder":true,"num":0}]"#);
    server.push("bAQID");
    let ev = until(&client, "file", |e| is_event(e, "file"));
    let Some(SioEvent::Event { attachments, .. }) = ev.last().and_then(Event::socket_io) else {
        unreachable!()
    };
    assert_eq!(attachments.len(), 1);
    assert_eq!(&attachments[0][..], &[1, 2, 3]);
    close_and_terminate(&client);
}

#[test]
fn upgrade_to_websocket_completes_and_carries_the_session() {
    let server = HostileEio::start(Config {
        upgrades: r#"["websocket"]"#,
        ..Config::default()
    });
    let client = connect_over(&server, BOTH, "");
    connected(&client, "/");
    assert!(
        server.wait(T, |s| s.ws_messages.iter().any(|m| m == "2probe")
            && s.ws_messages.iter().any(|m| m == "5")
            && s.ws_messages.iter().any(|m| m == "40"))
    );
    server.push(r#"42["over-ws"]"#);
    until(&client, "over-ws", |e| is_event(e, "over-ws"));
    let ws = server
        .requests()
        .into_iter()
        .find(|r| r.query("transport").as_deref() == Some("websocket"))
        .unwrap();
    assert_eq!(ws.sid().as_deref(), Some("sid0"));
    close_and_terminate(&client);
}

#[test]
fn upgrade_refused_stays_on_polling() {
    let server = HostileEio::scripted(
        Config {
            upgrades: r#"["websocket"]"#,
            ..Config::default()
        },
        |r, _| {
            if r.query("transport").as_deref() == Some("websocket") {
                Reply::status(400, "no")
            } else {
                Reply::Default
            }
        },
    );
    let client = connect_over(&server, BOTH, "");
    let ev = connected(&client, "/");
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    server.push(r#"42["over-polling"]"#);
    until(&client, "over-polling", |e| is_event(e, "over-polling"));
    assert_eq!(server.handshakes(), 1);
    close_and_terminate(&client);
}

#[test]
fn upgrade_probe_never_answered_falls_back_to_polling() {
    let server = HostileEio::start(Config {
        upgrades: r#"["websocket"]"#,
        answer_probe: false,
        ..Config::default()
    });
    let client = connect_over(&server, BOTH, "");
    let ev = connected(&client, "/");
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    assert!(server.with(|s| s.ws_messages.iter().any(|m| m == "2probe")));
    server.push(r#"42["over-polling"]"#);
    until(&client, "over-polling", |e| is_event(e, "over-polling"));
    assert!(server.posted_messages(0).iter().any(|m| m == "0"));
    close_and_terminate(&client);
}

#[test]
fn websocket_first_frame_over_max_message_bytes_is_retried() {
    let server = HostileEio::start(Config {
        ws_open: Some(format!("0{}", "x".repeat(100_000))),
        ..Config::default()
    });
    let client = connect_over(&server, WEBSOCKET, r#""max_message_bytes": 65536"#);
    let ev = until(&client, "the reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    });
    assert_eq!(
        error_codes(&ev),
        vec![error_code::MESSAGE_TOO_BIG],
        "{ev:#?}"
    );
    assert!(server.wait(T, |s| s.handshakes >= 2));
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// What must still work: binary over polling, backpressure
// ---------------------------------------------------------------------

#[test]
fn binary_attachments_over_polling_both_ways() {
    let server = HostileEio::start(Config::default());
    let client = connect(&server, "");
    connected(&client, "/");
    server.push(&format!(
        r#"452-["files",{{"_placeholder":true,"num":1}},{{"_placeholder":true,"num":0}}]{SEP}bAQID{SEP}b"#
    ));
    let ev = until(&client, "files", |e| is_event(e, "files"));
    let Some(SioEvent::Event { attachments, .. }) = ev.last().and_then(Event::socket_io) else {
        unreachable!()
    };
    assert_eq!(attachments.len(), 2);
    assert_eq!(&attachments[0][..], &[1, 2, 3]);
    assert!(attachments[1].is_empty());
    client
        .emit_binary("/", "up", r#"["name"]"#, &[&[0xff, 0, 7]], false)
        .unwrap();
    assert!(server.wait(T, |s| s.requests.iter().any(|r| {
        let packets = r.packets();
        r.is_post()
            && packets.windows(2).any(|w| {
                w[0] == r#"451-["up","name",{"_placeholder":true,"num":0}]"# && w[1] == "b/wAH"
            })
    })));
    close_and_terminate(&client);
}

#[test]
fn unpolled_events_stop_the_polls_until_the_app_polls() {
    // Every poll is answered at once with 200 events: if the client kept
    // polling while the app does not read, it would take in without end.
    let batch = (0..200)
        .map(|i| format!(r#"42["flood",{i}]"#))
        .collect::<Vec<_>>()
        .join(&SEP.to_string());
    let armed = Arc::new(AtomicBool::new(false));
    let fire = armed.clone();
    let server = HostileEio::scripted(Config::default(), move |r, _| {
        if r.is_poll() && fire.load(Ordering::SeqCst) {
            Reply::payload(batch.clone())
        } else {
            Reply::Default
        }
    });
    let client = connect(&server, r#""max_unpolled_bytes": 65536"#);
    connected(&client, "/");
    armed.store(true, Ordering::SeqCst);
    server.push("6");
    let polls = || server.with(|s| s.requests.iter().filter(|r| r.is_poll()).count());
    // The app does not poll for a while.
    std::thread::sleep(Duration::from_millis(1000));
    let while_away = polls();
    assert!(
        while_away < 20,
        "{while_away} polls while the app was not reading"
    );
    // Then it reads: polls go on, events come in order.
    let mut last = None;
    let deadline = Instant::now() + T;
    let mut count = 0;
    while count < 2000 {
        assert!(Instant::now() < deadline, "{count} events");
        if let Some(SioEvent::Event { name, args, .. }) = client
            .poll_event(Some(Duration::from_millis(200)))
            .unwrap()
            .and_then(Event::into_socket_io)
        {
            assert_eq!(name, "flood");
            let i: u64 = serde_json::from_str::<serde_json::Value>(&args).unwrap()[0]
                .as_u64()
                .unwrap();
            if let Some(last) = last {
                assert_eq!(i, (last + 1) % 200, "out of order");
            }
            last = Some(i);
            count += 1;
        }
    }
    assert!(polls() > while_away);
    armed.store(false, Ordering::SeqCst);
    close_and_terminate(&client);
}
