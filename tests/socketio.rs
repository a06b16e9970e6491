//! Socket.IO against the real npm `socket.io` server
//! (tests/interop/socketio_server.js, run as a child process on
//! 127.0.0.1), over each transport configuration: WebSocket only,
//! HTTP long-polling only, and polling upgraded to WebSocket.
//!
//! scripts/test-interop.sh installs the server with npm; without it
//! (a plain `cargo test` on a machine without node_modules) these tests
//! are skipped with a note, unless `TETHER_INTEROP=1` makes that a failure.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::socketio_server::{server_installed, Server};
use tether::event::SioEvent;
use tether::{Event, SocketIoClient, State};

/// Bound on every wait for an event.
const T: Duration = Duration::from_secs(20);

/// The transport configurations every scenario runs in.
const TRANSPORTS: [(&str, &str); 3] = [
    ("websocket", r#"["websocket"]"#),
    ("polling", r#"["polling"]"#),
    ("polling,websocket", r#"["polling","websocket"]"#),
];

fn options(transports: &str, extra: &str) -> String {
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(",{extra}")
    };
    format!(
        r#"{{"allow_insecure":true,"transports":{transports},"reconnect":{{"initial_delay_ms":100,"max_delay_ms":500}}{extra}}}"#
    )
}

/// A server on `server_transports` (plus `more` of its flags) and a client
/// on `transports` with the test options.
fn server_and_client(
    server_transports: &str,
    transports: &str,
    more: &[&str],
) -> (Server, SocketIoClient) {
    let mut args = vec!["--transports", server_transports];
    args.extend_from_slice(more);
    let server = Server::start(&args);
    let client = SocketIoClient::connect(&server.url(), Some(&options(transports, ""))).unwrap();
    (server, client)
}

/// Polls until `want` matches, returning every event seen on the way.
fn until(client: &SocketIoClient, what: &str, mut want: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let polled = client.poll_event(Some(Duration::from_millis(200)));
        let polled = polled.unwrap_or_else(|e| panic!("waiting for {what}: {e}; saw {seen:#?}"));
        if let Some(event) = polled {
            let done = want(&event);
            seen.push(event);
            if done {
                return seen;
            }
        }
    }
    panic!("no {what} within {T:?}; saw {seen:#?}");
}

fn connected(client: &SocketIoClient, nsp: &str) -> bool {
    let events = until(
        client,
        &format!("CONNECT of {nsp}"),
        |e| matches!(e.socket_io(), Some(SioEvent::Connect { nsp: n, .. }) if n == nsp),
    );
    matches!(events.last().and_then(Event::socket_io), Some(SioEvent::Connect { recovered, .. }) if *recovered)
}

/// The next event called `name`: its arguments, ack id and attachments.
fn event(client: &SocketIoClient, name: &str) -> (Value, u64, Vec<Vec<u8>>) {
    let events = until(
        client,
        &format!("event {name:?}"),
        |e| matches!(e.socket_io(), Some(SioEvent::Event { name: n, .. }) if n == name),
    );
    let Some(SioEvent::Event {
        args,
        ack_id,
        attachments,
        ..
    }) = events.last().and_then(Event::socket_io)
    else {
        unreachable!()
    };
    (
        serde_json::from_str(args).expect("args are JSON"),
        *ack_id,
        attachments.iter().map(|a| a.to_vec()).collect(),
    )
}

/// The ack of emit `id`: its arguments and error code.
fn ack(client: &SocketIoClient, id: u64) -> (Value, i32, Vec<Vec<u8>>) {
    let events = until(
        client,
        &format!("ack {id}"),
        |e| matches!(e.socket_io(), Some(SioEvent::Ack { ack_id, .. }) if *ack_id == id),
    );
    let Some(SioEvent::Ack {
        args,
        error,
        attachments,
        ..
    }) = events.last().and_then(Event::socket_io)
    else {
        unreachable!()
    };
    let args = if args.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(args).expect("ack args are JSON")
    };
    (
        args,
        *error,
        attachments.iter().map(|a| a.to_vec()).collect(),
    )
}

fn info(client: &SocketIoClient) -> Value {
    let id = client.emit("/", "info", "[]", true).unwrap().unwrap();
    let (args, error, _) = ack(client, id);
    assert_eq!(error, 0);
    args[0].clone()
}

#[test]
fn emits_events_and_acks_on_every_transport() {
    if !server_installed() {
        return;
    }
    for (server_transports, transports) in TRANSPORTS {
        let server = Server::start(&["--transports", server_transports]);
        let client = SocketIoClient::connect(
            &format!("{}/?room=7", server.url()),
            Some(&options(transports, r#""auth":{"user":"ann"}"#)),
        )
        .unwrap();
        // Emitted before the namespace is connected: it waits for it.
        client
            .emit("/", "echo", r#"["early",{"n":1}]"#, false)
            .unwrap();
        assert!(!connected(&client, "/"));
        let (args, ack_id, _) = event(&client, "echo");
        assert_eq!(args, json!(["early", {"n": 1}]), "{transports}");
        assert_eq!(ack_id, 0);

        // An ack we ask for.
        let id = client
            .emit("/", "ack-me", r#"["x",[1,2,3],null]"#, true)
            .unwrap()
            .expect("an ack id");
        let (args, error, _) = ack(&client, id);
        assert_eq!((args, error), (json!(["x", [1, 2, 3], null]), 0));

        // An ack the server asks for.
        client.emit("/", "ask", "[5]", false).unwrap();
        let (args, ack_id, _) = event(&client, "question");
        assert_eq!(args, json!([5]));
        assert!(ack_id > 0, "the server asked for an ack");
        client.ack("/", ack_id, r#"["yes",42]"#).unwrap();
        let (args, _, _) = event(&client, "answered");
        assert_eq!(args, json!(["yes", 42]));

        // What the server saw of the handshake.
        let info = info(&client);
        assert_eq!(info["auth"], json!({"user": "ann"}), "{transports}");
        assert_eq!(info["query"]["room"], json!("7"));
        let expected_transport = if server_transports == "polling" {
            "polling"
        } else {
            "websocket"
        };
        assert_eq!(info["transport"], json!(expected_transport), "{transports}");

        client.close().unwrap();
        until(&client, "Terminated", |e| *e == Event::Terminated);
    }
}

#[test]
fn binary_attachments_travel_both_ways() {
    if !server_installed() {
        return;
    }
    for (server_transports, transports) in TRANSPORTS {
        let (_server, client) = server_and_client(server_transports, transports, &[]);
        connected(&client, "/");
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        client
            .emit_binary(
                "/",
                "binary-echo",
                r#"[{"name":"f","data":{"_placeholder":true,"num":1}}]"#,
                &[&[1, 2, 3], &big],
                false,
            )
            .unwrap();
        let (args, _, attachments) = event(&client, "binary");
        assert_eq!(attachments.len(), 2, "{transports}");
        // The server re-numbers placeholders as it meets them.
        let num = |v: &Value| v["num"].as_u64().unwrap() as usize;
        assert_eq!(attachments[num(&args[0]["data"])], big);
        assert_eq!(attachments[num(&args[1])], vec![1, 2, 3]);

        let id = client.emit("/", "binary-ack", "[]", true).unwrap().unwrap();
        let (args, error, attachments) = ack(&client, id);
        assert_eq!(error, 0);
        assert_eq!(args, json!([{"_placeholder": true, "num": 0}]));
        assert_eq!(attachments, vec![vec![1, 2, 3]]);
        client.close().unwrap();
    }
}

#[test]
fn namespaces_join_with_auth_and_report_refusals() {
    if !server_installed() {
        return;
    }
    let server = Server::start(&["--transports", "websocket"]);
    let client =
        SocketIoClient::connect(&server.url(), Some(&options(r#"["websocket"]"#, ""))).unwrap();
    connected(&client, "/");
    client.join("/admin", Some(r#"{"token":"wrong"}"#)).unwrap();
    let events = until(&client, "CONNECT_ERROR", |e| {
        matches!(e.socket_io(), Some(SioEvent::ConnectError { .. }))
    });
    let Some(SioEvent::ConnectError { nsp, data }) = events.last().and_then(Event::socket_io)
    else {
        unreachable!()
    };
    assert_eq!(nsp, "/admin");
    let data: Value = serde_json::from_str(data).unwrap();
    assert_eq!(data, json!({"message": "bad token", "data": {"code": 401}}));
    // Refused: emits to it are refused at once.
    assert!(client.emit("/admin", "echo", "[1]", false).is_err());

    client
        .join("/admin", Some(r#"{"token":"secret"}"#))
        .unwrap();
    connected(&client, "/admin");
    client
        .emit("/admin", "echo", r#"["in admin"]"#, false)
        .unwrap();
    let events = until(
        &client,
        "echo in /admin",
        |e| matches!(e.socket_io(), Some(SioEvent::Event { nsp, .. }) if nsp == "/admin"),
    );
    assert!(
        matches!(events.last().and_then(Event::socket_io), Some(SioEvent::Event { args, .. }) if args == r#"["in admin"]"#)
    );

    client.leave("/admin").unwrap();
    let events = until(&client, "DISCONNECT of /admin", |e| {
        matches!(e.socket_io(), Some(SioEvent::Disconnect { .. }))
    });
    assert!(
        matches!(events.last().and_then(Event::socket_io), Some(SioEvent::Disconnect { nsp, reason }) if nsp == "/admin" && reason == "io client disconnect")
    );
    assert!(client.emit("/admin", "echo", "[1]", false).is_err());
    assert!(client.leave("/admin").is_err(), "left already");
    // Bad input is refused with nothing sent.
    assert!(client.emit("/", "connect", "[]", false).is_err());
    assert!(client.emit("/", "echo", "{}", false).is_err());
    assert!(client.emit("/", "echo", "[", false).is_err());
    assert!(client.join("admin", None).is_err());
    assert!(client.join("/x", Some("[1]")).is_err());
    assert!(client.ack("/", 0, "[]").is_err());
    client.close().unwrap();
}

#[test]
fn a_refused_main_namespace_is_reported() {
    if !server_installed() {
        return;
    }
    let server = Server::start(&["--transports", "websocket"]);
    let client = SocketIoClient::connect(
        &server.url(),
        Some(&options(
            r#"["websocket"]"#,
            r#""auth":{"reject":"banned"}"#,
        )),
    )
    .unwrap();
    let events = until(&client, "CONNECT_ERROR", |e| {
        matches!(e.socket_io(), Some(SioEvent::ConnectError { .. }))
    });
    let Some(SioEvent::ConnectError { nsp, data }) = events.last().and_then(Event::socket_io)
    else {
        unreachable!()
    };
    assert_eq!(nsp, "/");
    assert_eq!(
        serde_json::from_str::<Value>(data).unwrap(),
        json!({"message": "refused", "data": {"reason": "banned"}})
    );
    client.close().unwrap();
}

#[test]
fn after_a_server_restart_every_namespace_rejoins_and_queued_emits_follow_in_order() {
    if !server_installed() {
        return;
    }
    for (server_transports, transports) in TRANSPORTS {
        let (server, client) = server_and_client(server_transports, transports, &[]);
        connected(&client, "/");
        client
            .join("/admin", Some(r#"{"token":"secret"}"#))
            .unwrap();
        connected(&client, "/admin");

        let server = server.restart();
        let events = until(&client, "both DISCONNECTs", {
            let mut left = 2;
            move |e| {
                if matches!(e.socket_io(), Some(SioEvent::Disconnect { reason, .. }) if reason == "transport close")
                {
                    left -= 1;
                }
                left == 0
            }
        });
        assert!(
            events.iter().all(|e| !matches!(e, Event::Terminated)),
            "{events:#?}"
        );
        until(&client, "Reconnecting", |e| {
            *e == Event::State(State::Reconnecting)
        });
        // Sent while the link is down (or not yet known to be): they wait.
        for i in 0..5 {
            client
                .emit("/admin", "echo", &format!("[{i}]"), false)
                .unwrap();
        }
        connected(&client, "/");
        connected(&client, "/admin");
        for i in 0..5 {
            let (args, _, _) = event(&client, "echo");
            assert_eq!(args, json!([i]), "{transports}: emits kept their order");
        }
        // The server saw two connections of "/": the first and the rejoin.
        let id = client.emit("/", "count", "[]", true).unwrap().unwrap();
        let (args, _, _) = ack(&client, id);
        assert_eq!(args, json!([1]), "a fresh server counts the rejoin");
        client.close().unwrap();
        until(&client, "Terminated", |e| *e == Event::Terminated);
        drop(server);
    }
}

#[test]
fn a_server_disconnect_is_not_rejoined() {
    if !server_installed() {
        return;
    }
    let server = Server::start(&["--transports", "websocket"]);
    let client =
        SocketIoClient::connect(&server.url(), Some(&options(r#"["websocket"]"#, ""))).unwrap();
    connected(&client, "/");
    client
        .join("/admin", Some(r#"{"token":"secret"}"#))
        .unwrap();
    connected(&client, "/admin");
    client.emit("/", "kick", "[]", false).unwrap();
    let events = until(&client, "DISCONNECT", |e| {
        matches!(e.socket_io(), Some(SioEvent::Disconnect { .. }))
    });
    assert!(
        matches!(events.last().and_then(Event::socket_io), Some(SioEvent::Disconnect { nsp, reason }) if nsp == "/" && reason == "io server disconnect")
    );
    assert!(client.emit("/", "echo", "[1]", false).is_err());
    // After a lost connection only /admin comes back.
    client
        .emit("/admin", "echo", r#"["still here"]"#, false)
        .unwrap();
    event(&client, "echo");
    client.reconnect().unwrap();
    connected(&client, "/admin");
    // "/" stays left: a second of events holds no CONNECT of it.
    let quiet_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet_until {
        if let Some(e) = client.poll_event(Some(Duration::from_millis(100))).unwrap() {
            assert!(
                !matches!(&e.socket_io(), Some(SioEvent::Connect { nsp, .. }) if nsp == "/"),
                "the kicked namespace was rejoined"
            );
        }
    }
    client.close().unwrap();
}

#[test]
fn an_ack_that_never_comes_times_out() {
    if !server_installed() {
        return;
    }
    let server = Server::start(&["--transports", "websocket"]);
    let client = SocketIoClient::connect(
        &server.url(),
        Some(&options(r#"["websocket"]"#, r#""ack_timeout_ms":300"#)),
    )
    .unwrap();
    connected(&client, "/");
    // Nobody handles "void": no ack comes.
    let id = client.emit("/", "void", "[]", true).unwrap().unwrap();
    let (args, error, _) = ack(&client, id);
    assert_eq!((args, error), (Value::Null, 1), "WS_TIMEOUT");
    // An ack still awaited at close fails before Terminated.
    let id = client.emit("/", "void", "[]", true).unwrap().unwrap();
    client.close().unwrap();
    let events = until(&client, "Terminated", |e| *e == Event::Terminated);
    assert!(
        events.iter().any(
            |e| matches!(e.socket_io(), Some(SioEvent::Ack { ack_id, error: 1, .. }) if *ack_id == id)
        ),
        "{events:#?}"
    );
}

#[test]
fn connection_state_is_recovered_after_a_drop() {
    if !server_installed() {
        return;
    }
    for (server_transports, transports) in TRANSPORTS {
        let (_server, client) = server_and_client(server_transports, transports, &["--recovery"]);
        assert!(
            !connected(&client, "/"),
            "a first connection recovers nothing"
        );
        // An event with an offset, so the server knows where we are.
        client
            .emit("/", "broadcast-later", r#"[0,"seen"]"#, false)
            .unwrap();
        event(&client, "later");
        // Broadcast while we are away: the recovered session replays it.
        client
            .emit("/", "broadcast-later", r#"[300,"missed"]"#, false)
            .unwrap();
        client.emit("/", "drop", "[]", false).unwrap();
        assert!(
            connected(&client, "/"),
            "{transports}: the server recovered the session"
        );
        let (args, _, _) = event(&client, "later");
        assert_eq!(args[0], json!("missed"), "{transports}");
        client.close().unwrap();
    }
}

#[test]
fn pause_keeps_emits_and_resume_rejoins() {
    if !server_installed() {
        return;
    }
    for (server_transports, transports) in TRANSPORTS {
        let (_server, client) = server_and_client(server_transports, transports, &[]);
        connected(&client, "/");
        client.pause().unwrap();
        until(&client, "DISCONNECT on pause", |e| {
            matches!(e.socket_io(), Some(SioEvent::Disconnect { .. }))
        });
        // Emits while paused wait; the network coming back does not
        // reconnect a paused client.
        client
            .emit("/", "echo", r#"["while paused"]"#, false)
            .unwrap();
        client.network_changed(true).unwrap();
        let quiet_until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < quiet_until {
            if let Some(e) = client.poll_event(Some(Duration::from_millis(100))).unwrap() {
                assert!(
                    !matches!(e.socket_io(), Some(SioEvent::Connect { .. })),
                    "{transports}: a paused client connected: {e:?}"
                );
            }
        }
        client.resume().unwrap();
        connected(&client, "/");
        let (args, _, _) = event(&client, "echo");
        assert_eq!(args, json!(["while paused"]), "{transports}");
        client.close().unwrap();
        until(&client, "Terminated", |e| *e == Event::Terminated);
    }
}
