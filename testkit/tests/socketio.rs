//! The kit's Socket.IO server driven by a real Tether Socket.IO client
//! on 127.0.0.1, on each transport configuration: namespaces (refused and
//! accepted, with auth), the recorder, echo and acks both ways, server
//! emits, kicks, session closes, dropped transports, a stopped heartbeat
//! and a restart. Timers are short; every wait is bounded.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tether::event::SioEvent;
use tether::{Event, SocketIoClient};
use tether_testkit::{ConnectReply, SioTransport, SocketIoConfig, SocketIoTestServer};

const WAIT: Duration = Duration::from_secs(20);

/// (client transports, server config) for each scenario's runs.
fn configurations() -> Vec<(&'static str, SocketIoConfig)> {
    let both = fast(true, true);
    vec![
        (r#"["websocket"]"#, fast(false, true)),
        (r#"["polling"]"#, fast(true, false)),
        (r#"["polling","websocket"]"#, both),
    ]
}

/// Pings every 200 ms with a 200 ms timeout: a silent link is dead
/// within 0.4 s.
fn fast(polling: bool, websocket: bool) -> SocketIoConfig {
    SocketIoConfig {
        polling,
        websocket,
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(200),
        ..SocketIoConfig::default()
    }
}

fn client(server: &SocketIoTestServer, transports: &str, extra: &str) -> SocketIoClient {
    let options = format!(
        r#"{{"transports":{transports},"connect_timeout_ms":2000,
            "reconnect":{{"initial_delay_ms":10,"max_delay_ms":100,"jitter":0}}{extra}}}"#
    );
    SocketIoClient::connect(&server.url(), Some(&options)).unwrap()
}

/// Polls until `want` matches, returning every event seen; panics after `WAIT`.
fn until(client: &SocketIoClient, what: &str, want: impl Fn(&SioEvent) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {what} within {WAIT:?}; saw {seen:#?}");
        if let Some(event) = client.poll_event(Some(left)).unwrap() {
            let done = matches!(&event.socket_io(), Some(e) if want(e));
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
}

fn connect_of(nsp: &'static str) -> impl Fn(&SioEvent) -> bool {
    move |e| matches!(e, SioEvent::Connect { nsp: n, .. } if n == nsp)
}

fn event_named(name: &'static str) -> impl Fn(&SioEvent) -> bool {
    move |e| matches!(e, SioEvent::Event { name: n, .. } if n == name)
}

fn args(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn end(client: SocketIoClient) {
    if client.close().is_ok() {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(Event::Terminated)) = client.poll_event(Some(WAIT)) {
                return;
            }
        }
        panic!("the client did not terminate");
    }
}

#[test]
fn events_acks_and_server_emits_on_every_transport() {
    for (transports, config) in configurations() {
        let both = config.polling && config.websocket;
        let server = SocketIoTestServer::start_with(config).unwrap();
        let client = client(&server, transports, r#","auth":{"token":"t0k3n"}"#);
        until(&client, "CONNECT of /", connect_of("/"));
        let session = server.await_session(WAIT).expect("no session");
        let connect = server.await_connect(WAIT).expect("no CONNECT");
        assert_eq!(
            (connect.nsp.as_str(), connect.auth, connect.accepted),
            ("/", Some(json!({"token": "t0k3n"})), true),
            "{transports}"
        );
        let socket = server.await_socket(WAIT).expect("no socket");
        assert_eq!(socket.session(), session.id);
        let expected = if both || !transports.contains("polling") {
            SioTransport::WebSocket
        } else {
            SioTransport::Polling
        };
        assert_eq!(socket.transport(), expected, "{transports}");

        // The recorder, the echo and the ack of an emit.
        let ack = client
            .emit("/", "hello", r#"[1,{"a":"b"}]"#, true)
            .unwrap()
            .expect("no ack id");
        let seen = until(&client, "the ack", |e| matches!(e, SioEvent::Ack { .. }));
        let answered = seen.iter().find_map(|e| match e.socket_io() {
            Some(SioEvent::Ack {
                ack_id,
                args,
                error,
                ..
            }) if *ack_id == ack => Some((args.clone(), *error)),
            _ => None,
        });
        assert_eq!(
            answered.map(|(a, e)| (self::args(&a), e)),
            Some((json!([1, {"a": "b"}]), 0))
        );
        let event = server.await_event(WAIT).expect("no event recorded");
        assert_eq!(
            (event.nsp.as_str(), event.name.as_str(), event.args.clone()),
            ("/", "hello", vec![json!(1), json!({"a": "b"})])
        );
        assert!(event.ack_id.is_some());
        // The echo was queued before the ack.
        assert!(
            seen.iter().any(
                |e| matches!(e.socket_io(), Some(SioEvent::Event { name, args, .. })
                if name == "hello" && self::args(args) == json!([1, {"a": "b"}]))
            ),
            "no echo before the ack: {seen:#?}"
        );

        // A server emit, and one with an ack the client answers.
        assert!(socket.emit("news", &[json!("today")]));
        let seen = until(&client, "news", event_named("news"));
        assert!(
            matches!(seen.last().and_then(Event::socket_io), Some(SioEvent::Event { args, ack_id: 0, .. })
            if self::args(args) == json!(["today"]))
        );
        let pending = socket.emit_with_ack("question", &[json!(41)]).unwrap();
        let seen = until(&client, "question", event_named("question"));
        let Some(SioEvent::Event { ack_id, .. }) = seen.last().and_then(Event::socket_io) else {
            unreachable!()
        };
        assert!(*ack_id > 0);
        client.ack("/", *ack_id, "[42]").unwrap();
        let answer = pending.wait(WAIT).expect("no ack answer");
        assert_eq!(answer.args, vec![json!(42)]);
        assert!(pending.wait(Duration::from_millis(10)).is_none());
        end(client);
    }
}

#[test]
fn namespaces_are_refused_as_scripted_and_kicks_are_not_rejoined() {
    for (transports, config) in configurations() {
        let server = SocketIoTestServer::start_with(config).unwrap();
        server
            .push_connect_reply(Some("/admin"), ConnectReply::refuse("not an admin"))
            .unwrap();
        let client = client(&server, transports, "");
        until(&client, "CONNECT of /", connect_of("/"));
        client.join("/admin", Some(r#"{"role":"user"}"#)).unwrap();
        let seen = until(&client, "CONNECT_ERROR", |e| {
            matches!(e, SioEvent::ConnectError { .. })
        });
        assert!(
            matches!(seen.last().and_then(Event::socket_io), Some(SioEvent::ConnectError { nsp, data })
            if nsp == "/admin" && args(data) == json!({"message": "not an admin"}))
        );
        // The queue is used up: the next join is accepted.
        client.join("/admin", Some(r#"{"role":"admin"}"#)).unwrap();
        until(&client, "CONNECT of /admin", connect_of("/admin"));
        let connects = server.connects();
        let admin: Vec<_> = connects.iter().filter(|c| c.nsp == "/admin").collect();
        assert_eq!(admin.len(), 2, "{connects:?}");
        assert_eq!(
            (admin[0].accepted, admin[1].accepted),
            (false, true),
            "{transports}"
        );
        assert_eq!(admin[1].auth, Some(json!({"role": "admin"})));

        // Events land in their namespace.
        client.emit("/admin", "audit", "[]", false).unwrap();
        let event = server.await_event(WAIT).unwrap();
        assert_eq!((event.nsp.as_str(), event.ack_id), ("/admin", None));

        // A kick: the client sees `io server disconnect` and stays out.
        let _root = server.await_socket(WAIT).unwrap();
        let admin_socket = server.await_socket(WAIT).unwrap();
        assert_eq!(admin_socket.nsp(), "/admin");
        assert!(admin_socket.disconnect());
        let seen = until(&client, "the kick", |e| {
            matches!(e, SioEvent::Disconnect { .. })
        });
        assert!(
            matches!(seen.last().and_then(Event::socket_io), Some(SioEvent::Disconnect { nsp, reason })
            if nsp == "/admin" && reason == "io server disconnect")
        );
        assert!(!admin_socket.is_connected());
        assert!(
            !admin_socket.emit("late", &[]),
            "a kicked socket still emitted"
        );

        // A client leave is recorded.
        client.leave("/").unwrap();
        let left = server.await_disconnect(WAIT).expect("no DISCONNECT");
        assert_eq!(left.nsp, "/");
        end(client);
    }
}

#[test]
fn session_faults_make_the_client_reconnect_and_rejoin() {
    for (transports, config) in configurations() {
        let server = SocketIoTestServer::start_with(config).unwrap();
        let client = client(&server, transports, "");
        until(&client, "CONNECT of /", connect_of("/"));
        let first = server.await_socket(WAIT).unwrap();

        // A stopped heartbeat: the client finds the link dead by itself.
        assert!(first.set_heartbeat(false));
        until(&client, "the loss", |e| {
            matches!(e, SioEvent::Disconnect { .. })
        });
        until(&client, "the rejoin", connect_of("/"));
        let second = server.await_socket(WAIT).unwrap();
        assert_ne!(second.session(), first.session(), "{transports}");

        // The server closes the session.
        assert!(second.close_session());
        until(&client, "the rejoin after a close", connect_of("/"));
        let third = server.await_socket(WAIT).unwrap();
        assert!(!second.is_connected());

        // The transport is reset.
        assert!(third.drop_transport());
        assert!(!third.drop_transport(), "a dropped session dropped again");
        until(&client, "the rejoin after a reset", connect_of("/"));
        let fourth = server.await_socket(WAIT).unwrap();

        // A restart on the same port.
        server.restart().unwrap();
        until(&client, "the rejoin after a restart", connect_of("/"));
        let fifth = server.await_socket(WAIT).unwrap();
        assert!(!fourth.is_connected() && fifth.is_connected());
        assert!(fifth.emit("back", &[]));
        until(&client, "an emit after the restart", event_named("back"));
        assert_eq!(server.session_count(), 5, "{transports}");
        end(client);
    }
}

#[test]
fn offered_transports_are_enforced() {
    // A polling-only client cannot reach a WebSocket-only server.
    let server = SocketIoTestServer::start_with(fast(false, true)).unwrap();
    let client = client(&server, r#"["polling"]"#, "");
    let deadline = Instant::now() + WAIT;
    let mut refused = false;
    while Instant::now() < deadline && !refused {
        if let Some(Event::Error { .. } | Event::Reconnecting { .. }) =
            client.poll_event(Some(WAIT)).unwrap()
        {
            refused = true;
        }
    }
    assert!(
        refused,
        "no error from a polling handshake on a WebSocket-only server"
    );
    assert_eq!(server.session_count(), 0);
    end(client);
}

#[test]
fn binary_attachments_travel_both_ways() {
    for (transports, config) in configurations() {
        let server = SocketIoTestServer::start_with(config).unwrap();
        server.set_echo(false);
        let client = client(&server, transports, "");
        until(&client, "CONNECT of /", connect_of("/"));
        let socket = server.await_socket(WAIT).unwrap();
        client
            .emit_binary("/", "upload", r#"["photo"]"#, &[&[0, 1, 2, 255]], false)
            .unwrap();
        let event = server.await_event(WAIT).unwrap();
        assert_eq!(event.attachments, vec![vec![0, 1, 2, 255]], "{transports}");
        assert_eq!(event.args[1], json!({"_placeholder": true, "num": 0}));
        assert!(socket.emit_binary("file", &[json!("f")], &[vec![9, 8, 7]]));
        let seen = until(&client, "file", event_named("file"));
        assert!(
            matches!(seen.last().and_then(Event::socket_io), Some(SioEvent::Event { attachments, .. })
            if attachments.len() == 1 && attachments[0].as_ref() == [9, 8, 7])
        );
        // Echo off: nothing came back for the upload.
        assert!(!seen.iter().any(
            |e| matches!(e.socket_io(), Some(SioEvent::Event { name, .. }) if name == "upload")
        ));
        end(client);
    }
}

#[test]
fn a_payload_over_max_payload_ends_the_session() {
    for (transports, mut config) in configurations() {
        config.max_payload = 2000;
        let server = SocketIoTestServer::start_with(config).unwrap();
        let client = client(&server, transports, "");
        until(&client, "CONNECT of /", connect_of("/"));
        let first = server.await_socket(WAIT).unwrap();
        client.emit("/", "small", "[]", false).unwrap();
        assert_eq!(server.await_event(WAIT).unwrap().name, "small");
        let big = format!(r#"["{}"]"#, "x".repeat(5000));
        client.emit("/", "big", &big, false).unwrap();
        // The client sees its transport go (what it does next is its own
        // policy: Tether gives up after a 1009 on WebSocket).
        until(&client, "the loss", |e| {
            matches!(e, SioEvent::Disconnect { .. })
        });
        assert!(!first.is_connected(), "{transports}: the session survived");
        assert!(
            server.events().iter().all(|e| e.name != "big"),
            "{transports}: the big event got through"
        );
        end(client);
    }
}

#[test]
fn latency_delays_both_ways_and_a_cut_is_a_dead_link_until_lifted() {
    for (transports, mut config) in configurations() {
        // A round trip under latency must stay below pingTimeout.
        config.ping_timeout = Duration::from_millis(1500);
        let server = SocketIoTestServer::start_with(config).unwrap();
        let client = client(&server, transports, "");
        until(&client, "CONNECT of /", connect_of("/"));
        let first = server.await_socket(WAIT).unwrap();

        server.set_network(tether_testkit::Network {
            latency: Duration::from_millis(150),
            ..Default::default()
        });
        let started = Instant::now();
        let ack = client.emit("/", "slow", "[]", true).unwrap().unwrap();
        until(
            &client,
            "the ack",
            |e| matches!(e, SioEvent::Ack { ack_id, .. } if *ack_id == ack),
        );
        let rtt = started.elapsed();
        assert!(
            rtt >= Duration::from_millis(300),
            "{transports}: an ack in {rtt:?}"
        );

        // A cut: nothing moves; only the client's dead-link timer can tell.
        server.set_network(tether_testkit::Network {
            cut: true,
            ..Default::default()
        });
        until(&client, "the loss", |e| {
            matches!(e, SioEvent::Disconnect { .. })
        });
        server.set_network(tether_testkit::Network::default());
        until(&client, "the rejoin", connect_of("/"));
        let second = server.await_socket(WAIT).unwrap();
        assert_ne!(first.session(), second.session(), "{transports}");
        end(client);
    }
}
