//! Server-Sent Events against real servers on 127.0.0.1:
//!
//! - a hand-written hostile server (tests/support/hostile.rs, raw bytes
//!   over TCP): an endless line, a 100 MB event bounded by
//!   `max_message_bytes`, bad UTF-8, a slow drip, a wrong Content-Type,
//!   204, 4xx, 5xx with Retry-After, a stream that ends, one that resets,
//!   one that goes silent past `read_timeout_ms`, a flood the app does not
//!   poll (backpressure), resume with Last-Event-ID across a server
//!   restart, and no retry storm on permanent errors;
//! - a server written with sse-starlette from PyPI
//!   (tests/interop/sse_server.py), installed by scripts/test-interop.sh
//!   (skipped with a note when missing, unless `TETHER_INTEROP=1`).
//!
//! No test asserts a speed: waits are bounded, and delays are checked as
//! the values the client announces.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::error_codes;
use support::hostile::{Ctx, HostileServer, Step};
use tether::{error_code, Event, ServerSentEvent, SseClient, SseOptions, State};

/// Bound on every wait for an event.
const T: Duration = Duration::from_secs(30);

const OPEN: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";

fn open_with(body: &str) -> Step {
    Step::Write(format!("{OPEN}{body}").into_bytes())
}

fn options(json: &str) -> SseOptions {
    SseOptions::from_json(Some(json)).unwrap()
}

fn connect(url: &str, json: &str) -> SseClient {
    SseClient::connect(url, options(json)).unwrap()
}

fn http_url(server: &HostileServer, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

/// Polls until `done` holds for an event; returns every event seen.
fn poll_until(client: &SseClient, done: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match client.poll_event(Some(left)).expect("poll_event") {
            Some(event) => {
                let stop = done(&event);
                seen.push(event);
                if stop {
                    return seen;
                }
                assert!(seen.len() < 1_000_000, "runaway events");
            }
            None => break,
        }
    }
    panic!("no such event within {T:?}: {}", brief(&seen));
}

/// Events for a failure message, big data shortened.
fn brief(events: &[Event]) -> String {
    let items: Vec<String> = events
        .iter()
        .rev()
        .take(40)
        .rev()
        .map(|e| match e.server_sent() {
            Some(m) if m.data.len() > 64 => {
                format!("ServerSent({} bytes)", m.data.len())
            }
            _ => format!("{e:?}"),
        })
        .collect();
    format!("[{} events, the last: {}]", events.len(), items.join(", "))
}

fn is_terminated(e: &Event) -> bool {
    *e == Event::Terminated
}

fn is_reconnecting(e: &Event) -> bool {
    matches!(e, Event::Reconnecting { .. })
}

fn messages(events: &[Event]) -> Vec<ServerSentEvent> {
    events
        .iter()
        .filter_map(|e| e.server_sent().cloned())
        .collect()
}

fn message(event_type: &str, id: Option<&str>, data: &str) -> ServerSentEvent {
    ServerSentEvent {
        event_type: event_type.into(),
        id: id.map(Into::into),
        data: data.into(),
    }
}

/// Quick retries, so that a retry storm would show within a short wait.
const QUICK: &str = r#"{"reconnect": {"initial_delay_ms": 20, "max_delay_ms": 50, "jitter": 0}}"#;

/// The client tried a permanent failure once and ended: after a wait in
/// which quick retries would have come many times, still one attempt.
fn assert_tried_once(server: &HostileServer, path: &str, events: &[Event]) {
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        server.accepts_for(path),
        1,
        "{path} was retried: {}",
        brief(events)
    );
}

fn hostile(c: &Ctx) -> Vec<Step> {
    match c.path() {
        "/endless-line" => vec![
            Step::Write(format!("{OPEN}data: ").into_bytes()),
            Step::Repeat(vec![b'x'; 64 * 1024], 16 * 1024),
        ],
        "/huge-event" => vec![
            open_with("data: small\n\n"),
            // 100 MB in 100 data lines of 1 MB, never dispatched.
            Step::Repeat(format!("data: {}\n", "y".repeat(1 << 20)).into_bytes(), 100),
            Step::Write(b"\n".to_vec()),
        ],
        "/bad-utf8" => vec![Step::Write(
            [
                OPEN.as_bytes(),
                b"data: a\xff\xfeb\xc3\n\nevent: t\xe9\ndata: ok\n\n",
            ]
            .concat(),
        )],
        "/drip" => vec![
            Step::Write(OPEN.as_bytes().to_vec()),
            Step::Trickle(
                b"\xEF\xBB\xBF: hi\r\nid: 7\r\nevent: drip\r\ndata: one\r\ndata: two\r\n\r\n"
                    .to_vec(),
                Duration::from_millis(5),
            ),
        ],
        "/text-plain" => vec![Step::Write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
        )],
        "/no-content" => vec![Step::Write(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec())],
        "/not-found" => vec![Step::Write(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )],
        "/unauthorized" => vec![Step::Write(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )],
        "/unavailable" if c.index == 0 => vec![Step::Write(
            b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        )],
        "/unavailable" => vec![open_with("data: back\n\n")],
        "/ends" => {
            let next = match c.head().header("last-event-id") {
                None => 1,
                Some(id) => id.parse::<u32>().unwrap() + 1,
            };
            vec![
                open_with(&format!("id: {next}\ndata: n{next}\n\n")),
                Step::Close,
            ]
        }
        "/reset" => vec![
            open_with("id: r\ndata: before\n\n"),
            Step::Sleep(Duration::from_millis(50)),
            Step::Reset,
        ],
        "/silent" => vec![open_with("id: s\ndata: then nothing\n\n")],
        "/flood" => vec![
            Step::Write(OPEN.as_bytes().to_vec()),
            Step::Repeat(
                format!("data: {}\n\n", "z".repeat(1000)).into_bytes(),
                20_000,
            ),
            Step::Write(b"event: last\ndata: end\n\n".to_vec()),
        ],
        _ => vec![Step::Write(
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )],
    }
}

#[test]
fn an_endless_line_is_cut_at_the_limit_without_retry() {
    let server = HostileServer::start(hostile);
    let client = connect(
        &http_url(&server, "/endless-line"),
        r#"{"max_message_bytes": 1048576, "reconnect": {"initial_delay_ms": 20}}"#,
    );
    let events = poll_until(&client, is_terminated);
    assert_eq!(
        error_codes(&events),
        [error_code::MESSAGE_TOO_BIG],
        "{}",
        brief(&events)
    );
    assert_tried_once(&server, "/endless-line", &events);
}

#[test]
fn a_100_mb_event_is_bounded_by_max_message_bytes() {
    let server = HostileServer::start(hostile);
    let client = connect(
        &http_url(&server, "/huge-event"),
        r#"{"max_message_bytes": 8388608, "reconnect": {"initial_delay_ms": 20}}"#,
    );
    let events = poll_until(&client, is_terminated);
    assert_eq!(messages(&events), [message("message", None, "small")]);
    assert_eq!(error_codes(&events), [error_code::MESSAGE_TOO_BIG]);
    assert!(
        client.stats().bytes_in < 1024,
        "only the small event counts"
    );
    assert_tried_once(&server, "/huge-event", &events);
}

#[test]
fn bad_utf8_is_replaced_and_the_stream_goes_on() {
    let server = HostileServer::start(hostile);
    let client = connect(&http_url(&server, "/bad-utf8"), QUICK);
    let events = poll_until(
        &client,
        |e| matches!(e.server_sent(), Some(m) if m.data == "ok"),
    );
    assert_eq!(
        messages(&events),
        [
            message("message", None, "a\u{FFFD}\u{FFFD}b\u{FFFD}"),
            message("t\u{FFFD}", None, "ok"),
        ]
    );
    assert_eq!(error_codes(&events), [] as [i32; 0]);
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn a_slow_drip_with_a_bom_and_crlf_makes_one_event() {
    let server = HostileServer::start(hostile);
    let client = connect(&http_url(&server, "/drip"), QUICK);
    let events = poll_until(&client, |e| e.server_sent().is_some());
    assert_eq!(messages(&events), [message("drip", Some("7"), "one\ntwo")]);
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn permanent_refusals_end_the_client_after_one_attempt() {
    let server = HostileServer::start(hostile);
    for (path, expected) in [
        ("/text-plain", Some(error_code::HANDSHAKE)),
        ("/not-found", Some(404)),
        ("/unauthorized", Some(401)),
        ("/no-content", None),
    ] {
        let client = connect(&http_url(&server, path), QUICK);
        let events = poll_until(&client, is_terminated);
        assert_eq!(
            error_codes(&events),
            expected.into_iter().collect::<Vec<_>>(),
            "{path}"
        );
        assert!(
            !events.iter().any(is_reconnecting),
            "{path}: {}",
            brief(&events)
        );
        assert_eq!(
            events.iter().rev().nth(1),
            Some(&Event::State(State::Closed)),
            "{path}"
        );
        assert_tried_once(&server, path, &events);
        assert!(client.poll_event(Some(Duration::ZERO)).is_err(), "{path}");
    }
}

#[test]
fn a_503_is_retried_after_its_retry_after() {
    let server = HostileServer::start(hostile);
    let client = connect(&http_url(&server, "/unavailable"), QUICK);
    let events = poll_until(&client, |e| e.server_sent().is_some());
    assert_eq!(error_codes(&events), [503]);
    assert_eq!(
        events.iter().find(|e| is_reconnecting(e)),
        Some(&Event::Reconnecting {
            attempt: 1,
            delay: Duration::from_secs(1)
        })
    );
    assert_eq!(messages(&events), [message("message", None, "back")]);
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn a_stream_that_ends_is_resumed_with_last_event_id() {
    let server = HostileServer::start(hostile);
    let client = connect(&http_url(&server, "/ends"), QUICK);
    let events = poll_until(
        &client,
        |e| matches!(e.server_sent(), Some(m) if m.data == "n3"),
    );
    let ids: Vec<Option<String>> = messages(&events).into_iter().map(|m| m.id).collect();
    assert_eq!(ids, [Some("1".into()), Some("2".into()), Some("3".into())]);
    assert_eq!(
        error_codes(&events),
        [] as [i32; 0],
        "an ended stream is no error"
    );
    let sent: Vec<Option<String>> = server
        .conns()
        .iter()
        .take(3)
        .map(|c| {
            c.head
                .as_ref()
                .and_then(|h| h.header("last-event-id").map(String::from))
        })
        .collect();
    assert_eq!(sent, [None, Some("1".into()), Some("2".into())]);
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn a_reset_is_a_lost_connection_and_reconnects() {
    let server = HostileServer::start(hostile);
    let client = connect(&http_url(&server, "/reset"), QUICK);
    let events = poll_until(&client, is_reconnecting);
    assert_eq!(messages(&events), [message("message", Some("r"), "before")]);
    assert_eq!(error_codes(&events), [error_code::CONNECTION_LOST]);
    assert_eq!(second_last_event_id(&server).as_deref(), Some("r"));
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

/// The Last-Event-ID of the server's second request.
fn second_last_event_id(server: &HostileServer) -> Option<String> {
    let second = |conns: &[support::hostile::ConnRecord]| conns.get(1).and_then(|c| c.head.clone());
    assert!(
        server.wait_until(T, |conns| second(conns).is_some()),
        "no second request"
    );
    second(&server.conns())?
        .header("last-event-id")
        .map(String::from)
}

#[test]
fn silence_past_read_timeout_reconnects() {
    let server = HostileServer::start(hostile);
    let client = connect(
        &http_url(&server, "/silent"),
        r#"{"read_timeout_ms": 300, "reconnect": {"initial_delay_ms": 20, "jitter": 0}}"#,
    );
    let events = poll_until(&client, is_reconnecting);
    assert_eq!(
        error_codes(&events),
        [error_code::HEARTBEAT_TIMEOUT],
        "{}",
        brief(&events)
    );
    assert_eq!(second_last_event_id(&server).as_deref(), Some("s"));
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn an_unpolled_flood_stops_reading_and_loses_nothing() {
    let server = HostileServer::start(hostile);
    let limit = 64 * 1024;
    let client = connect(
        &http_url(&server, "/flood"),
        &format!(r#"{{"max_unpolled_bytes": {limit}, "read_timeout_ms": 0}}"#),
    );
    // The app does not poll: what it has not polled stays bounded.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut most = 0;
    while Instant::now() < deadline {
        most = most.max(client.stats().unpolled_bytes);
        std::thread::sleep(Duration::from_millis(20));
    }
    // One chunk's events may follow the limit in (a read is at most
    // hyper's buffer).
    assert!(
        most > 0 && most < (limit + 512 * 1024) as u64,
        "{most} bytes unpolled"
    );
    let events = poll_until(
        &client,
        |e| matches!(e.server_sent(), Some(m) if m.event_type == "last"),
    );
    let got = messages(&events);
    assert_eq!(got.len(), 20_001);
    assert!(got[..20_000].iter().all(|m| m.data.len() == 1000));
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn resume_with_last_event_id_across_a_server_restart() {
    let script = |c: &Ctx| match c.head().header("last-event-id") {
        None => vec![open_with("id: 1\ndata: a\n\nid: 2\ndata: b\n\n")],
        Some(id) => vec![open_with(&format!("data: resumed after {id}\n\n"))],
    };
    let server = HostileServer::start(script);
    let addr = server.addr;
    let client = connect(
        &format!("http://{addr}/feed"),
        r#"{"reconnect": {"initial_delay_ms": 50, "max_delay_ms": 200, "jitter": 0}}"#,
    );
    poll_until(
        &client,
        |e| matches!(e.server_sent(), Some(m) if m.data == "b"),
    );
    drop(server);
    let events = poll_until(&client, |e| {
        matches!(e, Event::Reconnecting { attempt: 2, .. })
    });
    assert!(
        error_codes(&events).contains(&error_code::CONNECT),
        "{}",
        brief(&events)
    );
    let server = HostileServer::start_on(addr, script);
    let events = poll_until(&client, |e| e.server_sent().is_some());
    assert_eq!(
        messages(&events),
        [message("message", Some("2"), "resumed after 2")]
    );
    client.close().unwrap();
    poll_until(&client, is_terminated);
    drop(server);
}

#[test]
fn bad_urls_and_options_are_refused_with_a_reason() {
    for (url, json, needle) in [
        ("ws://127.0.0.1:1/", "", "scheme"),
        ("http://127.0.0.1:1/#x", "", "fragment"),
        (
            "http://127.0.0.1:1/",
            r#"{"subprotocols": ["a"]}"#,
            "subprotocols",
        ),
        (
            "http://127.0.0.1:1/",
            r#"{"allow_insecure": false}"#,
            "cleartext",
        ),
        (
            "http://127.0.0.1:1/",
            r#"{"method": "GET", "body": "x"}"#,
            "body",
        ),
    ] {
        let err = SseOptions::from_json(Some(json))
            .and_then(|o| SseClient::connect(url, o))
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{url} {json}: {err}");
    }
}

// ---- sse-starlette (PyPI)

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The sse-starlette server as a child process; killed (by its pid) and
/// reaped when dropped.
struct Starlette {
    child: Child,
    port: u16,
}

impl Drop for Starlette {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Starlette {
    fn start() -> Option<Starlette> {
        let python = repo().join(".tools/interop/sse-venv/bin/python");
        let installed = Command::new(&python)
            .args(["-c", "import sse_starlette, uvicorn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            if std::env::var("TETHER_INTEROP").is_ok_and(|v| v == "1") {
                panic!("sse-starlette is not installed (run scripts/test-interop.sh)");
            }
            let _ = writeln!(
                std::io::stderr(),
                "note: skipping the sse-starlette tests: {} cannot import it; \
                 scripts/test-interop.sh installs it",
                python.display()
            );
            return None;
        }
        let child = Command::new(python)
            .arg(repo().join("tests/interop/sse_server.py"))
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the sse-starlette server");
        let mut server = Starlette { child, port: 0 };
        let stdout = server.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the sse-starlette server did not start in 20 s");
        server.port = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("it printed {line:?}"));
        Some(server)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

#[test]
fn starlette_ticks_resume_after_the_stream_ends_with_its_retry_delay() {
    let Some(server) = Starlette::start() else {
        return;
    };
    let client = connect(
        &server.url("/ticks"),
        r#"{"reconnect": {"initial_delay_ms": 5000, "jitter": 0}}"#,
    );
    let events = poll_until(
        &client,
        |e| matches!(e.server_sent(), Some(m) if m.id.as_deref() == Some("6")),
    );
    let got = messages(&events);
    let expected: Vec<ServerSentEvent> = (1..=6)
        .map(|n| ServerSentEvent {
            event_type: "tick".into(),
            id: Some(n.to_string()),
            data: format!("tick {n}\nsecond line"),
        })
        .collect();
    assert_eq!(got, expected, "{}", brief(&events));
    // The stream's retry: 200 replaced the 5 s the options asked for.
    assert_eq!(
        events.iter().find(|e| is_reconnecting(e)),
        Some(&Event::Reconnecting {
            attempt: 1,
            delay: Duration::from_millis(200)
        })
    );
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn starlette_streams_the_answer_to_a_post() {
    let Some(server) = Starlette::start() else {
        return;
    };
    let client = connect(
        &server.url("/echo"),
        r#"{"method": "POST", "body": "{\"prompt\": \"hi\"}",
            "headers": {"Content-Type": "application/json"}, "read_timeout_ms": 2000}"#,
    );
    let events = poll_until(&client, |e| e.server_sent().is_some());
    assert_eq!(
        messages(&events),
        [message("echo", None, "{\"prompt\": \"hi\"}")]
    );
    // Its pings (comments) keep the stream alive past the read timeout.
    std::thread::sleep(Duration::from_secs(3));
    let later = poll_until_quiet(&client);
    assert!(!later.iter().any(is_reconnecting), "{}", brief(&later));
    client.close().unwrap();
    poll_until(&client, is_terminated);
}

#[test]
fn starlette_refuses_a_refreshed_bad_token_and_ends_quietly_on_204() {
    let Some(server) = Starlette::start() else {
        return;
    };
    let client = connect(
        &server.url("/private"),
        r#"{"headers": {"Authorization": "Bearer good"}}"#,
    );
    let events = poll_until(&client, |e| e.server_sent().is_some());
    assert_eq!(messages(&events), [message("welcome", None, "hello")]);
    client
        .set_header("Authorization", Some("Bearer expired"))
        .unwrap();
    client.reconnect().unwrap();
    let events = poll_until(&client, is_terminated);
    assert_eq!(error_codes(&events), [401], "{}", brief(&events));

    let client = connect(&server.url("/gone"), QUICK);
    let events = poll_until(&client, is_terminated);
    assert_eq!(error_codes(&events), [] as [i32; 0]);
    assert!(!events.iter().any(is_reconnecting));
}

/// Events already pending, without waiting.
fn poll_until_quiet(client: &SseClient) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Some(event) = client.poll_event(Some(Duration::ZERO)).unwrap() {
        seen.push(event);
        assert!(seen.len() < 10_000);
    }
    seen
}

// ---- https (TLS with the WebSocket path's trust and pins) and proxies

/// An `https://` SSE server: reads the request head, answers one event,
/// holds the stream. Counts the TCP connections it accepted.
struct TlsSse {
    addr: std::net::SocketAddr,
    accepts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _server: support::ServerThread,
}

impl TlsSse {
    fn start(config: std::sync::Arc<rustls::ServerConfig>) -> TlsSse {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let accepts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepts.clone();
        let server = support::ServerThread::start("127.0.0.1:0".parse().unwrap(), move |tcp| {
            counted.fetch_add(1, Ordering::SeqCst);
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                    match tls.read_u8().await {
                        Ok(b) => head.push(b),
                        Err(_) => return,
                    }
                }
                let _ = tls
                    .write_all(format!("{OPEN}data: secure\n\n").as_bytes())
                    .await;
                let _ = tls.flush().await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
        TlsSse {
            addr: server.addr,
            accepts,
            _server: server,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/events", self.addr.port())
    }

    fn accepts(&self) -> usize {
        self.accepts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

fn trusting(ca: &support::pki::TestCa, extra: &str) -> String {
    format!(
        r#"{{"tls": {{"extra_ca_pem": {}{extra}}}, "reconnect": {{"initial_delay_ms": 20, "max_delay_ms": 50}}}}"#,
        serde_json::to_string(&ca.pem).unwrap()
    )
}

#[test]
fn https_uses_the_websocket_trust_and_pins() {
    let ca = support::pki::TestCa::new("Tether SSE Test CA");
    let cert = ca.server(&["127.0.0.1"]);
    let pin = tether::spki_sha256_base64(&cert.der).unwrap();
    let server = TlsSse::start(cert.config);

    let client = connect(
        &server.url(),
        &trusting(&ca, &format!(r#", "pin_sha256": ["sha256/{pin}"]"#)),
    );
    let events = poll_until(&client, |e| e.server_sent().is_some());
    assert_eq!(messages(&events), [message("message", None, "secure")]);
    client.close().unwrap();
    poll_until(&client, is_terminated);

    // Untrusted and pin failures: one attempt each, no retry storm.
    let stranger = support::pki::TestCa::new("Someone Else");
    let other_pin = tether::spki_sha256_base64(&stranger.server(&["127.0.0.1"]).der).unwrap();
    for (json, code) in [
        (trusting(&stranger, ""), error_code::TLS_UNTRUSTED),
        (
            trusting(&ca, &format!(r#", "pin_sha256": ["{other_pin}"]"#)),
            error_code::TLS_PIN,
        ),
    ] {
        let before = server.accepts();
        let client = connect(&server.url(), &json);
        let events = poll_until(&client, is_terminated);
        assert_eq!(error_codes(&events), [code], "{}", brief(&events));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(
            server.accepts() - before,
            1,
            "a TLS trust failure was retried"
        );
    }
}

#[test]
fn a_stream_goes_through_an_http_proxy() {
    let server = HostileServer::start(hostile);
    let proxy = support::connect_proxy::ConnectProxy::start(None);
    let client = connect(
        &http_url(&server, "/drip"),
        &format!(r#"{{"proxy": "http://{}"}}"#, proxy.addr),
    );
    let events = poll_until(&client, |e| e.server_sent().is_some());
    assert_eq!(messages(&events), [message("drip", Some("7"), "one\ntwo")]);
    let requests = proxy.requests.lock().unwrap().clone();
    assert!(
        requests[0].starts_with(&format!("CONNECT {} HTTP/1.1\r\n", server.addr)),
        "{requests:?}"
    );
    client.close().unwrap();
    poll_until(&client, is_terminated);
}
