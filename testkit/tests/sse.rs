//! The kit's SSE server driven by a real Tether SSE client
//! (`tether::SseClient`) on 127.0.0.1: each scripted reply in queue order,
//! the recorder, each stream command, and network conditions applied and
//! lifted. Timers are short (`FAST`); every wait is bounded.

use std::time::{Duration, Instant};

use tether::{error_code, Event, ServerSentEvent, SseClient, SseOptions};
use tether_testkit::{Network, SseEvent, SseReply, SseStream, SseTestServer};

/// Quick reconnects without jitter, a short read timeout (a stalled
/// stream is found within 0.5 s): what an app's tests would use.
const FAST: &str = r#"{"connect_timeout_ms": 1000, "read_timeout_ms": 500,
    "reconnect": {"initial_delay_ms": 10, "max_delay_ms": 100, "jitter": 0}}"#;
const WAIT: Duration = Duration::from_secs(20);

fn connect(url: &str, json: &str) -> SseClient {
    SseClient::connect(url, SseOptions::from_json(Some(json)).unwrap()).unwrap()
}

/// Polls until `pred` matches, returning every event seen; panics after `WAIT`.
fn until(client: &SseClient, pred: impl Fn(&Event) -> bool) -> Vec<Event> {
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

fn data_is(data: &'static str) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::ServerSent(m) if m.data == data)
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

fn received(events: &[Event]) -> Vec<ServerSentEvent> {
    events
        .iter()
        .filter_map(|e| e.server_sent().cloned())
        .collect()
}

fn stream(server: &SseTestServer) -> SseStream {
    server.await_stream(WAIT).expect("no stream")
}

/// Closes the client and polls to its end (unless it ended by itself).
fn end(client: SseClient) {
    if client.close().is_ok() {
        until(&client, |e| *e == Event::Terminated);
    }
}

#[test]
fn events_with_types_ids_retry_and_lines_arrive_and_the_request_is_recorded() {
    let server = SseTestServer::start().unwrap();
    let json = r#"{"headers": {"Authorization": "Bearer t0k3n"}, "read_timeout_ms": 0}"#;
    let client = connect(&server.url("/feed?room=7"), json);
    let feed = stream(&server);
    let request = server.await_request(WAIT).expect("no request");
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("GET", "/feed?room=7")
    );
    assert_eq!(request.header("accept"), Some("text/event-stream"));
    assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
    assert_eq!(request.header("last-event-id"), None);
    assert_eq!(request.connection, feed.id());
    until(&client, is_open);

    assert!(feed.send(&SseEvent::data("first")));
    assert!(feed.comment("keep-alive"));
    assert!(feed.send(&SseEvent::data("two\nlines").id("2").event("tick").retry(50)));
    // Raw bytes: one event written in two pieces, with a field to ignore.
    assert!(feed.send_raw(b"id: 3\nbogus: x\nda"));
    assert!(feed.send_raw(b"ta: raw\n\n"));
    let events = until(&client, data_is("raw"));
    let message = |t: &str, id: Option<&str>, data: &str| ServerSentEvent {
        event_type: t.into(),
        id: id.map(Into::into),
        data: data.into(),
    };
    assert_eq!(
        received(&events),
        [
            message("message", None, "first"),
            message("tick", Some("2"), "two\nlines"),
            message("message", Some("3"), "raw"),
        ]
    );
    // An event that could not be written is refused, not sent.
    assert!(!feed.send(&SseEvent::data("x").id("bad\nid")));
    end(client);
}

#[test]
fn replies_are_taken_in_queue_order_then_the_stream_is_accepted() {
    let server = SseTestServer::start().unwrap();
    server
        .push_reply(SseReply::refuse(503, &[("Retry-After", "1")]))
        .unwrap();
    server.push_reply(SseReply::refuse(500, &[])).unwrap();
    server
        .push_reply(SseReply::accept_with(&[("X-Feed", "v2")]))
        .unwrap();
    assert!(server.push_reply(SseReply::refuse(200, &[])).is_err());
    let client = connect(&server.url("/"), FAST);
    let events = until(&client, is_open);
    assert_eq!(errors(&events), [503, 500]);
    let delays: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Reconnecting { delay, .. } => Some(*delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays[0], Duration::from_secs(1), "Retry-After sets it");
    let requests: Vec<_> = (0..3)
        .map(|_| server.await_request(WAIT).unwrap())
        .collect();
    let ids: Vec<u64> = requests.iter().map(|r| r.connection).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(server.requests().len(), 3);
    // Only the accepted one is a stream.
    assert_eq!(stream(&server).id(), ids[2]);
    assert_eq!(server.stream_count(), 1);
    end(client);
}

#[test]
fn a_204_ends_the_client_and_a_404_or_a_wrong_content_type_is_not_retried() {
    let server = SseTestServer::start().unwrap();
    server.push_reply(SseReply::refuse(204, &[])).unwrap();
    let client = connect(&server.url("/done"), FAST);
    let events = until(&client, |e| *e == Event::Terminated);
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { .. })));

    server.push_reply(SseReply::refuse(404, &[])).unwrap();
    let client = connect(&server.url("/missing"), FAST);
    let events = until(&client, |e| *e == Event::Terminated);
    assert_eq!(errors(&events), [404]);

    server
        .push_reply(SseReply::wrong_content_type("text/html"))
        .unwrap();
    let client = connect(&server.url("/html"), FAST);
    let events = until(&client, |e| *e == Event::Terminated);
    assert_eq!(errors(&events).len(), 1, "{events:?}");
    assert_eq!(server.requests().len(), 3, "nothing was retried");
    assert_eq!(server.stream_count(), 0);
}

#[test]
fn an_end_a_reset_a_kill_and_a_restart_are_each_resumed_with_last_event_id() {
    let server = SseTestServer::start().unwrap();
    let client = connect(&server.url("/feed"), FAST);
    let first = stream(&server);
    assert!(first.send(&SseEvent::data("a").id("1")));
    until(&client, data_is("a"));
    assert!(first.end());
    let second = stream(&server);
    assert!(!first.is_open() && !first.send(&SseEvent::data("late")));
    assert!(second.send(&SseEvent::data("b").id("2")));
    until(&client, data_is("b"));
    assert!(second.reset());
    let third = stream(&server);
    assert!(third.send(&SseEvent::data("c").id("3")));
    until(&client, data_is("c"));
    server.kill_connections().unwrap();
    let fourth = stream(&server);
    assert!(!third.is_open() && fourth.is_open());
    assert!(fourth.send(&SseEvent::data("d").id("4")));
    until(&client, data_is("d"));
    server.restart().unwrap();
    let fifth = stream(&server);
    assert!(!fourth.is_open() && fifth.is_open());
    let last_ids: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("last-event-id").map(String::from))
        .collect();
    assert_eq!(
        last_ids,
        [None, Some("1"), Some("2"), Some("3"), Some("4")].map(|id| id.map(String::from))
    );
    end(client);
}

#[test]
fn a_stall_holds_what_is_sent_until_lifted_and_is_found_by_the_read_timeout() {
    let server = SseTestServer::start().unwrap();
    // No read timeout: only the stall decides what arrives when.
    let client = connect(&server.url("/patient"), r#"{"read_timeout_ms": 0}"#);
    let feed = stream(&server);
    until(&client, is_open);
    assert!(feed.set_stall(true));
    assert!(feed.send(&SseEvent::data("held 1")));
    assert!(feed.send(&SseEvent::data("held 2")));
    assert!(feed.end());
    let quiet = client.poll_event(Some(Duration::from_millis(300))).unwrap();
    assert!(quiet.is_none(), "{quiet:?} came through a stall");
    assert!(feed.is_open(), "a held end ended the stream");
    assert!(feed.set_stall(false));
    let events = until(&client, data_is("held 2"));
    let data: Vec<_> = received(&events).into_iter().map(|m| m.data).collect();
    assert_eq!(data, ["held 1", "held 2"]);
    // The held end came last: the client reopens.
    assert_ne!(stream(&server).id(), feed.id());
    end(client);

    // Stalled for good: the client's read timeout gives up and reconnects.
    let client = connect(&server.url("/impatient"), FAST);
    let first = stream(&server);
    until(&client, is_open);
    assert!(first.set_stall(true));
    assert!(first.send(&SseEvent::data("never")));
    let second = stream(&server);
    assert_ne!(first.id(), second.id());
    let events = until(&client, is_open);
    assert!(!events.iter().any(data_is("never")));
    end(client);
}

#[test]
fn a_network_cut_holds_events_until_lifted_and_latency_and_bandwidth_slow_them() {
    let server = SseTestServer::start().unwrap();
    let client = connect(&server.url("/"), r#"{"read_timeout_ms": 0}"#);
    let feed = stream(&server);
    until(&client, is_open);

    server.set_network(Network {
        cut: true,
        ..Network::default()
    });
    assert!(server.network().cut);
    assert!(feed.send(&SseEvent::data("through the cut")));
    // Nothing gets through while cut (a wait for what must not come).
    let quiet = client.poll_event(Some(Duration::from_millis(300))).unwrap();
    assert!(quiet.is_none(), "{quiet:?} came through a cut");
    server.set_network(Network::default());
    until(&client, data_is("through the cut"));

    let latency = Duration::from_millis(300);
    server.set_network(Network {
        latency,
        ..Network::default()
    });
    let sent = Instant::now();
    assert!(feed.send(&SseEvent::data("late")));
    until(&client, data_is("late"));
    assert!(sent.elapsed() >= latency, "latency not applied");

    // 10 kB/s: an event of 5 kB takes half a second.
    server.set_network(Network {
        bandwidth: Some(10_000),
        ..Network::default()
    });
    let sent = Instant::now();
    assert!(feed.send(&SseEvent::data(&"x".repeat(5_000))));
    until(
        &client,
        |e| matches!(e, Event::ServerSent(m) if m.data.len() == 5_000),
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(500),
        "bandwidth not limited"
    );
    server.set_network(Network::default());
    assert!(feed.is_open());
    end(client);
}

#[test]
fn an_https_server_is_trusted_through_its_ca() {
    let server = SseTestServer::start_tls().unwrap();
    assert!(server.url("/x").starts_with("https://localhost:"));
    let json = serde_json::json!({ "tls": { "extra_ca_pem": server.ca_pem().unwrap() } });
    let client = connect(&server.url("/secure"), &json.to_string());
    let feed = stream(&server);
    assert!(feed.send(&SseEvent::data("over tls")));
    until(&client, data_is("over tls"));
    end(client);
    // Without the CA: a trust failure, not retried.
    let client = connect(&server.url("/secure"), FAST);
    let events = until(&client, |e| *e == Event::Terminated);
    assert!(
        errors(&events).contains(&error_code::TLS_UNTRUSTED),
        "{events:?}"
    );
}

#[test]
fn awaits_time_out_when_nothing_came() {
    let server = SseTestServer::start().unwrap();
    assert!(server.await_request(Duration::from_millis(10)).is_none());
    assert!(server.await_stream(Duration::from_millis(10)).is_none());
    assert_eq!(server.ca_pem(), None);
}
