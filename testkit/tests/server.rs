//! The kit's server driven by a real Tether client on 127.0.0.1: each
//! scripted reply, handle command, fault and network condition, as the
//! client sees it. Timers are short (`FAST`); every wait is bounded.

use std::time::{Duration, Instant};

use tether::{error_code, Client, Event, Options};
use tether_testkit::{Faults, MessageKind, Network, Reply, TestServer};

/// Every Tether timer short: what an app's tests would use.
const FAST: &str = r#"{"ping_interval_ms": 100, "pong_timeout_ms": 300, "connect_timeout_ms": 1000,
    "close_timeout_ms": 500,
    "reconnect": {"initial_delay_ms": 10, "max_delay_ms": 100, "jitter": 0}}"#;
const WAIT: Duration = Duration::from_secs(20);

fn connect(url: &str, json: &str) -> Client {
    Client::connect(url, Options::from_json(Some(json)).unwrap()).unwrap()
}

/// Polls until `pred` matches, returning every event seen; panics after `WAIT`.
fn until(client: &Client, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; events: {seen:#?}");
        if let Some(event) = client.poll_event(Some(left)).unwrap() {
            let done = pred(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn is_open(e: &Event) -> bool {
    matches!(e, Event::Open { .. })
}

fn errors(events: &[Event]) -> Vec<i32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// Closes the client and polls to its end (unless it ended by itself).
fn end(client: Client) {
    if client.close(1000, "").is_ok() {
        until(&client, |e| matches!(e, Event::Terminated));
    }
}

#[test]
fn echoes_and_records_the_request_and_the_messages() {
    let server = TestServer::start().unwrap();
    let json = r#"{"headers": {"Authorization": "Bearer t0k3n"}}"#;
    let client = connect(&server.url("/chat?room=7"), json);
    until(&client, is_open);
    let request = server.await_request(WAIT).expect("no request");
    assert_eq!(
        (request.path.as_str(), request.method.as_str()),
        ("/chat?room=7", "GET")
    );
    assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
    client.send_text("hello").unwrap();
    client.send_binary(&[1, 2, 3]).unwrap();
    let events = until(&client, |e| matches!(e, Event::Binary(_)));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Text(t) if t.as_str() == "hello")));
    let text = server.await_message(WAIT).unwrap();
    assert_eq!(
        (text.text(), text.connection),
        (Some("hello"), request.connection)
    );
    let binary = server.await_message(WAIT).unwrap();
    assert_eq!(
        (binary.kind, binary.data),
        (MessageKind::Binary, vec![1, 2, 3])
    );
    end(client);
    let close = server.await_client_close(WAIT).expect("no Close frame");
    assert_eq!(close.code, Some(1000));
}

#[test]
fn refuses_with_retry_after_then_accepts_with_a_subprotocol() {
    let server = TestServer::start().unwrap();
    server
        .push_reply(Reply::refuse(503, &[("Retry-After", "1")]))
        .unwrap();
    server
        .push_reply(Reply::accept_subprotocol("chat.v2"))
        .unwrap();
    let client = connect(
        &server.url("/"),
        r#"{"subprotocols": ["chat.v1", "chat.v2"],
        "reconnect": {"initial_delay_ms": 10, "max_delay_ms": 50, "jitter": 0}}"#,
    );
    let events = until(&client, is_open);
    assert_eq!(errors(&events), [503]);
    let delays: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(
        delays,
        [Duration::from_secs(1)],
        "Retry-After sets the delay"
    );
    assert!(events.contains(&Event::Open {
        protocol: Some("chat.v2".into())
    }));
    assert_eq!(server.requests().len(), 2);
    end(client);
}

#[test]
fn a_connection_handle_sends_pings_and_closes_with_any_code() {
    let server = TestServer::start().unwrap();
    let client = connect(&server.url("/"), FAST);
    until(&client, is_open);
    let conn = server.await_connection(WAIT).unwrap();
    assert!(conn.send_text("from server"));
    assert!(conn.send_binary(b"\x00bin"));
    assert!(conn.ping(b"p"));
    assert!(conn.send_fragmented("in three pieces", 3));
    let events = until(
        &client,
        |e| matches!(e, Event::Text(t) if t.as_str() == "in three pieces"),
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Text(t) if t.as_str() == "from server")));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Binary(b) if b.as_ref() == b"\x00bin")));
    assert!(conn.close(4001, "bye"));
    let events = until(&client, |e| matches!(e, Event::Closed { .. }));
    assert!(events.contains(&Event::Closed {
        code: 4001,
        reason: "bye".into()
    }));
    end(client);
}

#[test]
fn a_black_hole_is_found_by_the_heartbeat_and_the_client_reconnects() {
    let server = TestServer::start().unwrap();
    let client = connect(&server.url("/"), FAST);
    until(&client, is_open);
    let first = server.await_connection(WAIT).unwrap();
    assert!(first.set_faults(Faults {
        black_hole: true,
        ..Faults::default()
    }));
    let events = until(&client, is_open);
    assert!(
        errors(&events).contains(&error_code::HEARTBEAT_TIMEOUT),
        "{events:#?}"
    );
    let second = server.await_connection(WAIT).unwrap();
    assert_ne!(first.id(), second.id());
    end(client);
}

#[test]
fn dropped_pongs_are_a_dead_link_too() {
    let server = TestServer::start().unwrap();
    let client = connect(&server.url("/"), FAST);
    until(&client, is_open);
    let conn = server.await_connection(WAIT).unwrap();
    conn.set_faults(Faults {
        drop_pongs: true,
        ..Faults::default()
    });
    let events = until(&client, is_open);
    assert!(
        errors(&events).contains(&error_code::HEARTBEAT_TIMEOUT),
        "{events:#?}"
    );
    end(client);
}

#[test]
fn a_stall_stops_the_echo_until_lifted() {
    let server = TestServer::start().unwrap();
    // No heartbeat: the stall must not end the connection.
    let client = connect(&server.url("/"), r#"{"ping_interval_ms": 0}"#);
    until(&client, is_open);
    let conn = server.await_connection(WAIT).unwrap();
    conn.set_faults(Faults {
        stall: true,
        ..Faults::default()
    });
    client.send_text("held").unwrap();
    assert_eq!(server.await_message(Duration::from_millis(200)), None);
    conn.set_faults(Faults::default());
    assert_eq!(server.await_message(WAIT).unwrap().text(), Some("held"));
    until(
        &client,
        |e| matches!(e, Event::Text(t) if t.as_str() == "held"),
    );
    end(client);
}

#[test]
fn a_network_cut_is_survived_once_lifted_and_latency_keeps_order() {
    let server = TestServer::start().unwrap();
    let client = connect(&server.url("/"), FAST);
    until(&client, is_open);
    server.set_network(Network {
        cut: true,
        ..Network::default()
    });
    let events = until(&client, |e| matches!(e, Event::Reconnecting { .. }));
    assert!(
        errors(&events).contains(&error_code::HEARTBEAT_TIMEOUT),
        "{events:#?}"
    );
    // Attempts during the cut hear nothing; lifting it lets one through.
    server.set_network(Network {
        latency: Duration::from_millis(20),
        bandwidth: Some(100_000),
        cut: false,
    });
    until(&client, is_open);
    for i in 0..5 {
        client.send_text(&i.to_string()).unwrap();
    }
    let events = until(
        &client,
        |e| matches!(e, Event::Text(t) if t.as_str() == "4"),
    );
    let texts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Text(t) => Some(t.as_str().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["0", "1", "2", "3", "4"]);
    end(client);
}

#[test]
fn handshake_faults_reset_silence_and_slow_headers_are_retried() {
    let server = TestServer::start().unwrap();
    server.push_reply(Reply::Reset).unwrap();
    server.push_reply(Reply::Silence).unwrap();
    server.push_reply(Reply::SlowHeaders { gap_ms: 1 }).unwrap();
    let client = connect(&server.url("/"), FAST);
    let events = until(&client, is_open);
    let codes = errors(&events);
    assert!(codes.contains(&error_code::CONNECT_TIMEOUT), "{events:#?}");
    assert_eq!(server.requests().len(), 3);
    end(client);
}

#[test]
fn connection_faults_end_the_connection_and_the_client_reconnects() {
    type Fault = fn(&tether_testkit::Connection) -> bool;
    let faults: [(&str, Fault); 5] = [
        ("drop", |c| c.drop_connection()),
        ("reset", |c| c.reset()),
        ("reset mid-frame", |c| c.reset_mid_frame(&[7; 1000])),
        ("half-close", |c| c.half_close()),
        ("close without TCP close", |c| {
            c.close_without_tcp_close(1001, "going")
        }),
    ];
    let server = TestServer::start().unwrap();
    let client = connect(&server.url("/"), FAST);
    until(&client, is_open);
    for (name, fault) in faults {
        let conn = server.await_connection(WAIT).unwrap();
        assert!(fault(&conn), "{name}: the connection was gone");
        let events = until(&client, is_open);
        assert!(
            events.iter().any(|e| matches!(e, Event::Closed { .. })),
            "{name}: {events:#?}"
        );
    }
    end(client);
}

#[test]
fn an_oversize_frame_is_refused_by_the_client() {
    let server = TestServer::start().unwrap();
    let client = connect(
        &server.url("/"),
        r#"{"max_message_bytes": 1024, "reconnect": {"initial_delay_ms": 10, "jitter": 0}}"#,
    );
    until(&client, is_open);
    let conn = server.await_connection(WAIT).unwrap();
    conn.send_oversize(4096);
    let events = until(&client, |e| matches!(e, Event::Terminated));
    assert!(
        errors(&events).contains(&error_code::MESSAGE_TOO_BIG),
        "{events:#?}"
    );
    end(client);
}

#[test]
fn a_restart_kills_the_connections_and_the_client_comes_back() {
    let server = TestServer::start().unwrap();
    let port = server.port();
    let client = connect(&server.url("/"), FAST);
    until(&client, is_open);
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    let events = until(&client, is_open);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Closed { code: 1006, .. })),
        "{events:#?}"
    );
    assert_eq!(server.requests().len(), 2);
    let first = server.await_connection(WAIT).expect("the first connection");
    assert!(
        !first.is_open(),
        "a connection the restart killed still says open"
    );
    let second = server
        .await_connection(WAIT)
        .expect("the connection after the restart");
    assert!(second.is_open());
    server.kill_connections().unwrap();
    assert!(
        !second.is_open(),
        "a killed connection's handle still says open"
    );
    until(&client, is_open);
    end(client);
}

#[test]
fn bad_scripts_are_refused_before_they_reach_the_wire() {
    let server = TestServer::start().unwrap();
    assert!(server.push_reply(Reply::refuse(101, &[])).is_err());
    assert!(server
        .push_reply(Reply::refuse(503, &[("X", "a\r\nb")]))
        .is_err());
    assert!(server.await_request(Duration::ZERO).is_none());
}

/// The options of a client that trusts `server`'s test CA (and pins its key).
fn trusting(server: &TestServer, pin: bool) -> String {
    let pins = if pin {
        format!("[\"{}\"]", server.pin_sha256().unwrap())
    } else {
        "[]".into()
    };
    format!(
        r#"{{"tls": {{"extra_ca_pem": {}, "pin_sha256": {pins}}},
            "reconnect": {{"initial_delay_ms": 10, "max_delay_ms": 50, "jitter": 0}}}}"#,
        serde_json::to_string(server.ca_pem().unwrap()).unwrap()
    )
}

#[test]
fn a_tls_server_is_trusted_through_its_ca_and_its_pin_is_the_served_key() {
    let server = TestServer::start_tls().unwrap();
    assert!(server.url("/").starts_with("wss://localhost:"));
    let client = connect(&server.url("/secure"), &trusting(&server, true));
    until(&client, is_open);
    client.send_text("over tls").unwrap();
    assert_eq!(server.await_message(WAIT).unwrap().text(), Some("over tls"));
    assert_eq!(server.await_request(WAIT).unwrap().path, "/secure");
    end(client);
}

#[test]
fn tls_faults_a_failed_handshake_and_a_key_that_does_not_match_the_pin() {
    let server = TestServer::start_tls().unwrap();
    server.push_reply(Reply::TlsFailure).unwrap();
    let client = connect(&server.url("/"), &trusting(&server, false));
    let events = until(&client, is_open);
    assert!(errors(&events).contains(&error_code::TLS), "{events:#?}");
    end(client);

    server.push_reply(Reply::OtherKey).unwrap();
    let client = connect(&server.url("/"), &trusting(&server, true));
    let events = until(&client, |e| matches!(e, Event::Terminated));
    assert!(
        errors(&events).contains(&error_code::TLS_PIN),
        "{events:#?}"
    );

    // Without the pin the other key is fine: same CA.
    server.push_reply(Reply::OtherKey).unwrap();
    let client = connect(&server.url("/"), &trusting(&server, false));
    until(&client, is_open);
    end(client);
    let plain = TestServer::start().unwrap();
    assert!(plain.push_reply(Reply::TlsFailure).is_err());
    assert_eq!(plain.ca_pem(), None);
}

#[test]
fn a_restart_also_kills_a_black_holed_connection() {
    let server = TestServer::start().unwrap();
    // No heartbeat: only the restart can end the connection.
    let client = connect(
        &server.url("/"),
        r#"{"ping_interval_ms": 0,
        "reconnect": {"initial_delay_ms": 10, "jitter": 0}}"#,
    );
    until(&client, is_open);
    let conn = server.await_connection(WAIT).unwrap();
    conn.set_faults(Faults {
        black_hole: true,
        ..Faults::default()
    });
    conn.send_text("held in the hole");
    server.restart().unwrap();
    let events = until(&client, is_open);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Closed { code: 1006, .. })),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Text(_))),
        "{events:#?}"
    );
    end(client);
}

#[test]
fn delayed_frames_keep_their_order_and_echo_can_be_turned_off() {
    let server = TestServer::start().unwrap();
    let client = connect(&server.url("/"), r#"{"ping_interval_ms": 0}"#);
    until(&client, is_open);
    let conn = server.await_connection(WAIT).unwrap();
    conn.set_faults(Faults {
        delay: Duration::from_millis(30),
        ..Faults::default()
    });
    assert_eq!(conn.faults().delay, Duration::from_millis(30));
    conn.send_text("first");
    conn.send_raw(&tether_testkit::wire::text("second"));
    let events = until(
        &client,
        |e| matches!(e, Event::Text(t) if t.as_str() == "second"),
    );
    let first = events
        .iter()
        .position(|e| matches!(e, Event::Text(t) if t.as_str() == "first"));
    assert!(first.is_some(), "{events:#?}");
    server.set_echo(false);
    client.send_text("not echoed").unwrap();
    assert_eq!(
        server.await_message(WAIT).unwrap().text(),
        Some("not echoed")
    );
    assert_eq!(
        client.poll_event(Some(Duration::from_millis(100))).unwrap(),
        None
    );
    end(client);
}
