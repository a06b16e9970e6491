//! Interop: Tether against real servers from other ecosystems, each run as
//! a child process on 127.0.0.1: Node's `ws` (tests/interop/ws_server.js)
//! and Python's `websockets` (tests/interop/websockets_server.py).
//!
//! scripts/test-interop.sh installs both from their registries and runs
//! this with `TETHER_INTEROP=1`, which makes a missing peer a failure.
//! Without it (a plain `cargo test`), a peer that is not installed is
//! skipped with a note.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tether::{Client, Event, Options, State};

/// Bound on every wait for an event (16 MiB echoes included).
const T: Duration = Duration::from_secs(30);
/// Bound on a peer's start (Python imports included).
const START: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy)]
enum Peer {
    /// Node's `ws`, from npm.
    NodeWs,
    /// Python's `websockets`, from PyPI.
    PythonWebsockets,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn required() -> bool {
    std::env::var("TETHER_INTEROP").is_ok_and(|v| v == "1")
}

fn runs(program: &PathBuf, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Peer {
    /// The command that starts this peer on a free port, or why it cannot.
    fn command(self) -> Result<Command, String> {
        let interop = repo().join("tests/interop");
        match self {
            Peer::NodeWs => {
                let node = PathBuf::from("node");
                if !runs(&node, &["--version"]) {
                    return Err("`node` is not on PATH".into());
                }
                if !interop.join("node_modules/ws/package.json").exists() {
                    return Err("tests/interop/node_modules has no `ws`".into());
                }
                let mut command = Command::new(node);
                command.arg(interop.join("ws_server.js")).arg("0");
                Ok(command)
            }
            Peer::PythonWebsockets => {
                let python = repo().join(".tools/interop/venv/bin/python");
                if !runs(&python, &["-c", "import websockets"]) {
                    return Err(format!("{} cannot import websockets", python.display()));
                }
                let mut command = Command::new(python);
                command.arg(interop.join("websockets_server.py")).arg("0");
                Ok(command)
            }
        }
    }
}

/// A peer server process; killed (by its pid) and reaped when dropped,
/// whether the test passed or panicked.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `peer`, or returns `None` (after a note) when it is not
    /// installed and `TETHER_INTEROP=1` is not set.
    fn start(peer: Peer) -> Option<Server> {
        let mut command = match peer.command() {
            Ok(command) => command,
            Err(why) if required() => {
                panic!("{peer:?} is not installed: {why} (run scripts/test-interop.sh)")
            }
            Err(why) => {
                // Once per peer, and past the test harness's capture, so a
                // plain `cargo test` shows what it did not run.
                static NOTED: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
                if !NOTED[peer as usize].swap(true, Ordering::Relaxed) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "note: skipping the {peer:?} interop tests: {why}; \
                         scripts/test-interop.sh installs it"
                    );
                }
                return None;
            }
        };
        // stdin stays open while we live: the server exits when it closes,
        // even if this process is killed before the guard runs.
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {peer:?}: {e}"));
        let mut server = Server { child, port: 0 };
        let stdout = server.child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(START)
            .unwrap_or_else(|_| panic!("{peer:?} did not start within {START:?}"));
        server.port = line
            .strip_prefix("LISTENING ")
            .and_then(|port| port.trim().parse().ok())
            .unwrap_or_else(|| panic!("{peer:?} printed {line:?} instead of LISTENING <port>"));
        Some(server)
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

fn options(json: &str) -> Options {
    Options::from_json(Some(json)).unwrap()
}

/// One connection per test, never retried: a failure shows as it is.
const NO_RECONNECT: &str = r#"{"reconnect": {"enabled": false}, "ping_interval_ms": 0}"#;

/// Polls until `done` holds for an event; returns every event seen, the
/// last one included. Panics on timeout or on `Terminated` first.
fn poll_until(client: &Client, done: impl Fn(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + T;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match client.poll_event(Some(left)).expect("poll_event") {
            Some(event) => {
                let stop = done(&event);
                let terminated = event == Event::Terminated;
                seen.push(event);
                if stop {
                    return seen;
                }
                assert!(!terminated, "terminated early: {}", brief(&seen));
            }
            None => break,
        }
    }
    panic!("no such event within {T:?}: {}", brief(&seen));
}

/// Events for a failure message, with big payloads shortened.
fn brief(events: &[Event]) -> String {
    let items: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Text(t) if t.len() > 64 => format!("Text({} bytes)", t.len()),
            Event::Binary(b) if b.len() > 64 => format!("Binary({} bytes)", b.len()),
            other => format!("{other:?}"),
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Connects and waits for the handshake; returns the negotiated protocol.
fn open(server: &Server, options: Options) -> (Client, Option<String>) {
    let client = Client::connect(&server.url(), options).unwrap();
    let events = poll_until(&client, |e| matches!(e, Event::Open { .. }));
    let Some(Event::Open { protocol }) = events.last().cloned() else {
        unreachable!()
    };
    (client, protocol)
}

/// The next text or binary message.
fn next_message(client: &Client) -> Event {
    let events = poll_until(client, |e| matches!(e, Event::Text(_) | Event::Binary(_)));
    let message = events.last().cloned().unwrap();
    assert!(
        events.len() == 1,
        "unexpected events before a message: {}",
        brief(&events)
    );
    message
}

fn expect_text(client: &Client, expected: &str) {
    match next_message(client) {
        Event::Text(text) => assert!(
            text.as_str() == expected,
            "text of {} bytes differs from the {} expected",
            text.len(),
            expected.len()
        ),
        other => panic!("expected text, got {}", brief(&[other])),
    }
}

fn expect_binary(client: &Client, expected: &[u8]) {
    match next_message(client) {
        Event::Binary(data) => assert!(
            data.as_ref() == expected,
            "binary of {} bytes differs from the {} expected",
            data.len(),
            expected.len()
        ),
        other => panic!("expected binary, got {}", brief(&[other])),
    }
}

/// Closes from our side and checks the handshake completes cleanly.
fn close(client: &Client) {
    client.close(1000, "done").unwrap();
    let events = poll_until(client, |e| *e == Event::Terminated);
    assert!(
        events.contains(&Event::Closed {
            code: 1000,
            reason: "done".into()
        }),
        "{}",
        brief(&events)
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Error { .. })),
        "{}",
        brief(&events)
    );
}

/// Byte i is i % 251: a pattern no shift or truncation keeps.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

// ------------------------------------------------------------- scenarios

fn echo_small_messages(server: &Server) {
    let (client, _) = open(server, options(NO_RECONNECT));
    client.send_text("hello \u{2713}").unwrap();
    client.send_binary(&[0, 1, 2, 255]).unwrap();
    client.send_text("").unwrap();
    client.send_binary(&[]).unwrap();
    expect_text(&client, "hello \u{2713}");
    expect_binary(&client, &[0, 1, 2, 255]);
    expect_text(&client, "");
    expect_binary(&client, &[]);
    close(&client);
}

fn echo_16_mib_messages(server: &Server) {
    // The default limits (16 MiB frames, 64 MiB messages and 16 MiB of
    // queue) take a 16 MiB message each way.
    let mut defaults = Options::default();
    defaults.reconnect.enabled = false;
    let (client, _) = open(server, defaults);
    let binary = pattern(16 << 20);
    client.send_binary(&binary).unwrap();
    expect_binary(&client, &binary);
    // 14 bytes + a 3-byte character, 2^20 times: 16 MiB of UTF-8.
    let text = "abcdefghijklm\u{2713}".repeat(1 << 20);
    assert_eq!(text.len(), 16 << 20);
    client.send_text(&text).unwrap();
    expect_text(&client, &text);
    close(&client);
}

fn fragmented_messages(server: &Server) {
    let (client, _) = open(server, options(NO_RECONNECT));
    client.send_text("cmd:fragment").unwrap();
    expect_text(&client, "fragmented text \u{2713}");
    expect_binary(&client, &pattern(256 * 1024));
    // The connection still works after fragments.
    client.send_text("after").unwrap();
    expect_text(&client, "after");
    close(&client);
}

fn server_close_with_code_and_reason(server: &Server) {
    for (code, reason) in [(4001, "bye \u{2713} from the server"), (1000, "")] {
        let (client, _) = open(server, options(NO_RECONNECT));
        client
            .send_text(&format!("cmd:close:{code}:{reason}"))
            .unwrap();
        let events = poll_until(&client, |e| *e == Event::Terminated);
        let closed: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Closed { .. }))
            .collect();
        assert_eq!(
            closed,
            [&Event::Closed {
                code,
                reason: reason.into()
            }],
            "{}",
            brief(&events)
        );
        assert!(
            !events.iter().any(|e| matches!(e, Event::Error { .. })),
            "{}",
            brief(&events)
        );
        assert!(events.contains(&Event::State(State::Closed)));
    }
}

fn server_pings_are_answered(server: &Server) {
    let (client, _) = open(server, options(NO_RECONNECT));
    for payload in ["tether-1", "tether-2"] {
        client.send_text(&format!("cmd:ping:{payload}")).unwrap();
        expect_text(&client, &format!("pong:{payload}"));
    }
    close(&client);
}

fn subprotocol_negotiation(server: &Server) {
    let cases: [(&[&str], Option<&str>); 3] = [
        (&["nope", "chat.v2"], Some("chat.v2")),
        (&["superchat"], Some("superchat")),
        (&[], None),
    ];
    for (offered, chosen) in cases {
        let mut options = options(NO_RECONNECT);
        options.subprotocols = offered.iter().map(|p| p.to_string()).collect();
        let (client, protocol) = open(server, options);
        assert_eq!(protocol.as_deref(), chosen, "offered {offered:?}");
        client.send_text("cmd:protocol").unwrap();
        expect_text(&client, &format!("protocol:{}", chosen.unwrap_or("")));
        close(&client);
    }
}

fn run(peer: Peer, scenario: fn(&Server)) {
    if let Some(server) = Server::start(peer) {
        scenario(&server);
    }
}

macro_rules! interop_tests {
    ($($scenario:ident),* $(,)?) => {
        /// Node's `ws`.
        mod ws {
            $(#[test] fn $scenario() { super::run(super::Peer::NodeWs, super::$scenario) })*
        }
        /// Python's `websockets`.
        mod websockets {
            $(#[test] fn $scenario() { super::run(super::Peer::PythonWebsockets, super::$scenario) })*
        }
    };
}

interop_tests!(
    echo_small_messages,
    echo_16_mib_messages,
    fragmented_messages,
    server_close_with_code_and_reason,
    server_pings_are_answered,
    subprotocol_negotiation,
);
