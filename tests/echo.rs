//! One connection against a real echo server on 127.0.0.1.

mod support;

use std::time::{Duration, Instant};

use support::{poll_until, states, wait_open, EchoServer};
use tether::{Client, Error, Event, Options, State};

const T: Duration = Duration::from_secs(10);

#[test]
fn text_and_binary_echo_then_close_terminates() {
    let server = EchoServer::start();
    let client = Client::connect(&server.url(), Options::default()).unwrap();
    let opening = wait_open(&client);
    assert_eq!(states(&opening), vec![State::Connecting, State::Open]);
    assert_eq!(opening.last(), Some(&Event::Open { protocol: None }));

    client.send_text("hello").unwrap();
    client.send_binary(&[0, 1, 2, 255]).unwrap();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Text(_)));
    assert!(matches!(ev.last(), Some(Event::Text(t)) if t.as_str() == "hello"));
    let ev = poll_until(&client, T, |e| matches!(e, Event::Binary(_)));
    assert!(matches!(ev.last(), Some(Event::Binary(b)) if b.as_ref() == [0, 1, 2, 255]));

    client.close(1000, "bye").unwrap();
    let closing = poll_until(&client, T, |e| *e == Event::Terminated);
    assert_eq!(states(&closing), vec![State::Closing, State::Closed]);
    assert!(
        closing.contains(&Event::Closed {
            code: 1000,
            reason: "bye".into()
        }),
        "{closing:?}"
    );
    assert!(matches!(
        client.poll_event(Some(Duration::ZERO)),
        Err(Error::Closed(_))
    ));
    assert!(matches!(client.send_text("late"), Err(Error::Closed(_))));
    assert!(matches!(client.close(1000, ""), Err(Error::Closed(_))));
}

#[test]
fn large_messages_in_both_directions() {
    let server = EchoServer::start();
    let client = Client::connect(&server.url(), Options::default()).unwrap();
    wait_open(&client);
    let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        client.send_binary(&big).unwrap();
    }
    for _ in 0..3 {
        let ev = poll_until(&client, T, |e| matches!(e, Event::Binary(_)));
        let Some(Event::Binary(b)) = ev.last() else {
            unreachable!()
        };
        assert_eq!(b.len(), big.len());
        assert!(b.as_ref() == big.as_slice());
    }
    let stats = client.stats();
    assert_eq!(stats.messages_out, 3);
    assert_eq!(stats.bytes_in, 3 * big.len() as u64);
}

#[test]
fn many_small_messages_keep_their_order() {
    let server = EchoServer::start();
    let client = Client::connect(&server.url(), Options::default()).unwrap();
    wait_open(&client);
    for i in 0..500 {
        client.send_text(&format!("m{i}")).unwrap();
    }
    for i in 0..500 {
        let ev = poll_until(&client, T, |e| matches!(e, Event::Text(_)));
        let Some(Event::Text(t)) = ev.last() else {
            unreachable!()
        };
        assert_eq!(t.as_str(), format!("m{i}"));
    }
}

#[test]
fn messages_sent_before_open_wait_and_go_out_in_order() {
    let server = EchoServer::start();
    let client = Client::connect(&server.url(), Options::default()).unwrap();
    for i in 0..10 {
        client.send_text(&format!("early{i}")).unwrap();
    }
    for i in 0..10 {
        let ev = poll_until(&client, T, |e| matches!(e, Event::Text(_)));
        let Some(Event::Text(t)) = ev.last() else {
            unreachable!()
        };
        assert_eq!(t.as_str(), format!("early{i}"));
    }
}

#[test]
fn server_close_with_code_and_reason_is_reported() {
    let server = EchoServer::start();
    let client = Client::connect(&server.url(), Options::default()).unwrap();
    wait_open(&client);
    client.send_text("close:4001:go away now").unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert!(
        ev.contains(&Event::Closed {
            code: 4001,
            reason: "go away now".into()
        }),
        "{ev:?}"
    );
    assert_eq!(states(&ev), vec![State::Closing, State::Closed]);
}

#[test]
fn headers_and_subprotocols_reach_the_server() {
    let server = EchoServer::start();
    let options = Options::from_json(Some(
        r#"{"headers": {"Authorization": "Bearer t0k3n", "X-App": "demo"},
            "subprotocols": ["chat.v2", "chat.v1"]}"#,
    ))
    .unwrap();
    let client = Client::connect(&server.url(), options).unwrap();
    let ev = wait_open(&client);
    assert_eq!(
        ev.last(),
        Some(&Event::Open {
            protocol: Some("chat.v2".into())
        })
    );
    let seen = server.handshakes.lock().unwrap()[0].clone();
    let get = |n: &str| seen.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("authorization").as_deref(), Some("Bearer t0k3n"));
    assert_eq!(get("x-app").as_deref(), Some("demo"));
    assert_eq!(
        get("sec-websocket-protocol").as_deref(),
        Some("chat.v2, chat.v1")
    );
}

#[test]
fn oversized_incoming_message_is_refused_with_1009() {
    let server = EchoServer::start();
    let options = Options::from_json(Some(
        r#"{"max_message_bytes": 1024, "reconnect": {"enabled": false}}"#,
    ))
    .unwrap();
    let client = Client::connect(&server.url(), options).unwrap();
    wait_open(&client);
    client.send_binary(&vec![7u8; 4096]).unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Error { code, .. } if *code == tether::error_code::MESSAGE_TOO_BIG)),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Closed { code: 1009, .. })),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, Event::Binary(_))));
}

#[test]
fn unpolled_events_stop_the_reader_without_losing_anything() {
    let server = EchoServer::start();
    let options = Options::from_json(Some(r#"{"max_unpolled_bytes": 65536}"#)).unwrap();
    let client = Client::connect(&server.url(), options).unwrap();
    wait_open(&client);
    let chunk = vec![1u8; 16 * 1024];
    for _ in 0..64 {
        client.send_binary(&chunk).unwrap();
    }
    // Wait, while nobody polls, until the reader has stopped at the limit
    // (one more echo would pass it).
    let deadline = Instant::now() + T;
    while client.stats().unpolled_bytes + chunk.len() as u64 <= 65536 {
        assert!(Instant::now() < deadline, "the echoes never came back");
        std::thread::sleep(Duration::from_millis(5));
    }
    let unpolled = client.stats().unpolled_bytes;
    assert!(
        unpolled <= 65536 + chunk.len() as u64,
        "reader kept reading: {unpolled} bytes unpolled"
    );
    let mut got = 0;
    while got < 64 {
        let ev = poll_until(&client, T, |e| matches!(e, Event::Binary(_)));
        assert!(matches!(ev.last(), Some(Event::Binary(b)) if b.len() == chunk.len()));
        got += 1;
    }
}

#[test]
fn refused_connection_is_reported_and_retried() {
    // A port with nothing listening: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = Options::from_json(Some(
        r#"{"reconnect": {"initial_delay_ms": 10, "max_delay_ms": 20, "max_attempts": 2}}"#,
    ))
    .unwrap();
    let client = Client::connect(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    let errors = ev
        .iter()
        .filter(|e| matches!(e, Event::Error { code, .. } if *code == tether::error_code::CONNECT))
        .count();
    assert_eq!(errors, 3, "{ev:?}");
    let attempts: Vec<u32> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { attempt, .. } => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, vec![1, 2]);
    assert_eq!(
        states(&ev),
        vec![State::Connecting, State::Reconnecting, State::Closed]
    );
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    assert!(
        matches!(Client::connect("http://x/", Options::default()), Err(Error::InvalidArgument(m)) if m.contains("scheme"))
    );
    assert!(matches!(
        Client::connect("not a url", Options::default()),
        Err(Error::InvalidArgument(_))
    ));
    let server = EchoServer::start();
    let client = Client::connect(&server.url(), Options::default()).unwrap();
    assert!(matches!(client.close(1005, ""), Err(Error::InvalidArgument(m)) if m.contains("1005")));
    assert!(matches!(
        client.close(999, ""),
        Err(Error::InvalidArgument(_))
    ));
    client.close(1000, "").unwrap();
}
