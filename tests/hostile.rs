//! The hostile-server suite: the client against a server that writes raw
//! HTTP and raw WebSocket frames by hand (tests/support/hostile.rs), one
//! `#[test]` per scenario.
//!
//! Every scenario checks the events the client reports (error codes, close
//! codes, states), that nothing permanent is retried (the server counts
//! its accepts; permanent failures run with the default reconnect
//! settings), and that the client reaches `Event::Terminated` in bounded
//! time, by itself or after `close(1000, "")`.
//!
//! What is expected, from DESIGN.md and the README:
//! - a refused or malformed upgrade: `Error` (the HTTP status, or
//!   `HANDSHAKE` / `SUBPROTOCOL`), no `Closed` (nothing was open), no
//!   retry; 5xx and lost or timed-out attempts are retried with backoff;
//! - a peer that breaks RFC 6455 on an open connection: `Error(PROTOCOL)`,
//!   or `MESSAGE_TOO_BIG` for the size limits; the client tells the server
//!   why in its Close frame (1002, 1007 for bad UTF-8, 1009 for size),
//!   reports that code in `Closed`, and does not reconnect;
//! - a lost connection (reset, EOF mid-frame, half-close): `Error(
//!   CONNECTION_LOST)`, `Closed(1006)`, then a reconnect;
//! - a server's Close without its TCP close: the client ends within
//!   `close_timeout_ms` reporting the server's code, and reconnects only
//!   for 1001, 1011, 1012 and 1013;
//! - floods are survived, delivered whole, and unpolled events stay
//!   bounded by `max_unpolled_bytes` whatever their sizes.
//!
//! Scenarios:
//! - handshake: wrong accept key, the key echoed as the accept, no accept,
//!   no Upgrade, `Upgrade: h2c`, no Connection, `Connection: close`, 200,
//!   302, 403, 404, 500 (retried), an extension not offered, a subprotocol
//!   when none was offered, one not offered, none when one was required,
//!   endless headers, a huge header, silence after connect, slow headers
//!   past `connect_timeout_ms`, an SSH banner, binary garbage, a status
//!   line without a status, close right after accept, reset right after
//!   accept, close in the middle of the status line, reset in the middle
//!   of the headers; and what must still work: headers in any case,
//!   `Connection: keep-alive, Upgrade`, a first frame in the same write as
//!   the 101;
//! - frames: payload lengths 2^63 and 2^63-1, a frame over
//!   `max_frame_bytes`, a message over `max_message_bytes` in one frame
//!   and in fragments, bad UTF-8 (one frame, across fragments, truncated,
//!   overlong, a surrogate), control frames over 125 bytes (Ping, Close),
//!   a fragmented Ping and Close, RSV1/RSV2/RSV3, a masked server frame,
//!   unknown data and control opcodes, close codes 0, 999, 1004, 1005,
//!   1006, 1015, 2999, 5000, a close reason that is not UTF-8, a 1-byte
//!   Close, data after Close, a continuation without a start, a new
//!   message inside a fragmented one; and what must still work: UTF-8
//!   split across fragments, a Ping between fragments, an unsolicited
//!   Pong, an empty Close (1005);
//! - floods: 10,000 Pings, 50,000 one-byte fragments, 100,000 empty
//!   fragments, 100,000 empty messages and 100,000 one-byte messages while
//!   the app does not poll;
//! - resets and half-closes: reset and FIN in the middle of a frame, reset
//!   right after the 101, half-close without a Close, half-close after a
//!   Close, reset right after a Close;
//! - Close without TCP close: codes 1000, 1001, 1008, 1011, 1012, 1013,
//!   4000 from the server, and the server's answer to the client's Close.

mod support;

use std::time::{Duration, Instant};

use support::hostile::{
    accept_key, binary, close, frame, header, masked_frame, parse_client_frame, ping, text, Head,
    HostileServer, Parsed, Step, FIN, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG,
    OP_TEXT, RSV1, RSV2, RSV3,
};
use support::{close_codes, closes, error_codes, poll_until, states, texts};
use tether::{error_code, Client, Event, Options, State};

/// Bound on any single wait of the suite.
const T: Duration = Duration::from_secs(10);
/// Options of every scenario: short timeouts, no heartbeat. Reconnection
/// keeps its defaults (first retry after 0.5-1 s) unless `FAST` is added.
const BASE: &str = r#""connect_timeout_ms": 2000, "close_timeout_ms": 1000, "ping_interval_ms": 0"#;
const CLOSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Quick retries, for scenarios where a retry is expected.
const FAST: &str = r#""reconnect": {"initial_delay_ms": 50, "max_delay_ms": 200, "jitter": 0.2, "jitter_seed": 7}"#;
/// After a client ended for good, no new attempt may come within this.
const QUIET: Duration = Duration::from_millis(300);
/// Scheduling slack on top of a configured timeout.
const SLACK: Duration = Duration::from_millis(800);

// ---------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------

fn connect(server: &HostileServer, extra: &str) -> Client {
    let json = if extra.is_empty() {
        format!("{{{BASE}}}")
    } else {
        format!("{{{BASE}, {extra}}}")
    };
    Client::connect(&server.url("/"), Options::from_json(Some(&json)).unwrap()).unwrap()
}

fn messages(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Text(_) | Event::Binary(_)))
        .count()
}

fn opened(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Open { .. }))
}

fn retried(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Reconnecting { .. }))
}

/// Polls until the client ends by itself or schedules a retry.
fn until_end_or_retry(client: &Client) -> Vec<Event> {
    poll_until(client, T, |e| {
        matches!(e, Event::Terminated | Event::Reconnecting { .. })
    })
}

/// `close(1000, "")`, then the events up to `Terminated` (bounded).
fn close_and_terminate(client: &Client) -> Vec<Event> {
    client.close(1000, "").unwrap();
    poll_until(client, T, |e| *e == Event::Terminated)
}

/// After `Terminated`: no more events, and no new attempt at the server.
fn ended_for_good(client: &Client, server: &HostileServer) {
    assert!(
        matches!(
            client.poll_event(Some(Duration::ZERO)),
            Err(tether::Error::Closed(_))
        ),
        "events after Terminated"
    );
    assert!(
        !server.wait_accepts(2, QUIET),
        "a failure that retrying cannot fix was retried: {} attempts",
        server.accepts()
    );
    assert_eq!(server.accepts(), 1);
}

/// A raw `101` status line, `lines` (each ending "\r\n"), the blank line.
fn switching_with(lines: &str) -> Vec<u8> {
    format!("HTTP/1.1 101 Switching Protocols\r\n{lines}\r\n").into_bytes()
}

/// Every connection gets the answer `respond(head)`, then is held open.
fn answers(respond: impl Fn(&Head) -> Vec<u8> + Send + Sync + 'static) -> HostileServer {
    HostileServer::start(move |c| vec![Step::Write(respond(c.head()))])
}

/// Every connection gets a correct 101, then `after`.
fn open_then(after: Vec<Step>) -> HostileServer {
    HostileServer::start(move |c| {
        let mut steps = vec![Step::Write(c.head().switching(""))];
        steps.extend(after.iter().cloned());
        steps
    })
}

/// The first connection gets a correct 101 then `first`; later ones a
/// correct 101 and a polite close when the client asks for one.
fn first_then_polite(first: Vec<Step>) -> HostileServer {
    HostileServer::start(move |c| {
        let mut steps = vec![Step::Write(c.head().switching(""))];
        if c.index == 0 {
            steps.extend(first.iter().cloned());
        } else {
            steps.push(Step::ServeClose);
        }
        steps
    })
}

/// The upgrade is refused or malformed: one error with `code`, no open,
/// no `Closed`, no retry (default reconnect settings), terminated.
fn expect_refused(server: &HostileServer, extra: &str, code: i32) -> Vec<Event> {
    let client = connect(server, extra);
    let ev = poll_until(&client, T, |e| {
        matches!(
            e,
            Event::Terminated | Event::Reconnecting { .. } | Event::Open { .. }
        )
    });
    assert!(!opened(&ev), "the client accepted the upgrade: {ev:#?}");
    assert!(!retried(&ev), "a permanent failure was retried: {ev:#?}");
    assert_eq!(error_codes(&ev), vec![code], "{ev:#?}");
    assert!(close_codes(&ev).is_empty(), "{ev:#?}");
    assert_eq!(states(&ev), vec![State::Connecting, State::Closed]);
    ended_for_good(&client, server);
    ev
}

/// The attempt fails with `code` and is retried (with `FAST`): a second
/// attempt reaches the server; then close ends the client.
fn expect_retried(server: &HostileServer, extra: &str, code: i32) -> Vec<Event> {
    let extra = if extra.is_empty() {
        FAST.to_string()
    } else {
        format!("{extra}, {FAST}")
    };
    let client = connect(server, &extra);
    let ev = until_end_or_retry(&client);
    assert!(retried(&ev), "not retried: {ev:#?}");
    assert!(error_codes(&ev).contains(&code), "{ev:#?}");
    assert!(
        server.wait_accepts(2, T),
        "no second attempt: {} accepts",
        server.accepts()
    );
    let end = close_and_terminate(&client);
    assert_eq!(states(&end).last(), Some(&State::Closed), "{end:#?}");
    ev
}

/// The server broke the protocol on an open connection: one error with
/// `code`, the client's Close frame to the server and its `Closed` event
/// carry `close_code`, nothing is delivered, no retry, terminated.
fn expect_violation(server: &HostileServer, extra: &str, code: i32, close_code: u16) -> Vec<Event> {
    let client = connect(server, extra);
    let ev = until_end_or_retry(&client);
    assert!(opened(&ev), "{ev:#?}");
    assert!(!retried(&ev), "a protocol violation was retried: {ev:#?}");
    assert_eq!(
        error_codes(&ev),
        vec![code],
        "expected one Error {code}: {ev:#?}"
    );
    assert_eq!(close_codes(&ev), vec![close_code], "{ev:#?}");
    assert_eq!(messages(&ev), 0, "a broken message was delivered: {ev:#?}");
    assert_eq!(states(&ev).last(), Some(&State::Closed), "{ev:#?}");
    assert_eq!(
        server.client_close(0, T),
        Some(Some(close_code)),
        "the client's Close frame to the server: {:?}",
        server.conn(0).frames
    );
    assert!(server.wait_eof(0, T), "the client kept the socket open");
    ended_for_good(&client, server);
    ev
}

/// The server sends `bad` right after a correct 101 and holds the line.
fn violation_after_open(bad: Vec<u8>, extra: &str, code: i32, close_code: u16) -> Vec<Event> {
    let server = open_then(vec![Step::Write(bad)]);
    expect_violation(&server, extra, code, close_code)
}

fn protocol_violation(bad: Vec<u8>) {
    violation_after_open(bad, "", error_code::PROTOCOL, 1002);
}

fn utf8_violation(bad: Vec<u8>) {
    violation_after_open(bad, "", error_code::PROTOCOL, 1007);
}

fn polls_to_open(client: &Client) -> Vec<Event> {
    poll_until(client, T, |e| {
        matches!(e, Event::Open { .. } | Event::Terminated)
    })
}

/// The client opens and receives `want` (texts, in order), with no error;
/// then `close(1000)` completes politely.
fn expect_delivered(server: &HostileServer, extra: &str, want: &[&str]) {
    let client = connect(server, extra);
    let ev = polls_to_open(&client);
    assert!(opened(&ev), "{ev:#?}");
    let mut got = Vec::new();
    let mut errors = Vec::new();
    let deadline = Instant::now() + T;
    while got.len() < want.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "got {} of {} texts", got.len(), want.len());
        match client.poll_event(Some(left)).unwrap() {
            Some(Event::Text(t)) => got.push(t.as_str().to_string()),
            Some(Event::Error { code, message }) => errors.push((code, message)),
            Some(e @ (Event::Closed { .. } | Event::Terminated)) => {
                panic!("{e:?} after {} texts, errors {errors:?}", got.len())
            }
            _ => {}
        }
    }
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got, want);
    let end = close_and_terminate(&client);
    assert!(error_codes(&end).is_empty(), "{end:#?}");
    assert_eq!(close_codes(&end), vec![1000], "{end:#?}");
}

// ---------------------------------------------------------------------
// The server itself
// ---------------------------------------------------------------------

#[test]
fn the_raw_server_speaks_rfc_6455() {
    // RFC 6455 §1.3's example key.
    assert_eq!(
        accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(header(0x81, 125, None), vec![0x81, 125]);
    assert_eq!(header(0x81, 126, None), vec![0x81, 126, 0, 126]);
    assert_eq!(header(0x82, 1 << 16, None)[1], 127);
    let f = masked_frame(FIN | OP_CLOSE, &[0x03, 0xe8, b'x'], [1, 2, 3, 4]);
    let Parsed::Frame(parsed, n) = parse_client_frame(&f) else {
        panic!("not parsed")
    };
    assert_eq!(n, f.len());
    assert_eq!(parsed.close_code(), Some(1000));
    assert!(parsed.masked && parsed.fin);

    // A well-behaved script: the client opens, receives, sends masked
    // frames, and closes politely.
    let server = open_then(vec![
        Step::Write([text("hello"), binary(&[1, 2, 3])].concat()),
        Step::ServeClose,
    ]);
    let client = connect(&server, "");
    let ev = poll_until(&client, T, |e| matches!(e, Event::Binary(_)));
    assert_eq!(texts(&ev), vec!["hello"]);
    client.send_text("hi").unwrap();
    assert!(server.wait_until(T, |c| c[0].count(OP_TEXT) == 1));
    let end = close_and_terminate(&client);
    assert_eq!(close_codes(&end), vec![1000]);
    assert!(error_codes(&end).is_empty(), "{end:#?}");
    let conn = server.conn(0);
    let head = conn.head.clone().expect("a request head");
    assert_eq!(head.method, "GET");
    assert_eq!(
        head.header("upgrade").map(str::to_ascii_lowercase),
        Some("websocket".into())
    );
    assert!(conn.frames.iter().all(|f| f.masked), "{:?}", conn.frames);
    assert_eq!(conn.frames[0].payload, b"hi");
    assert_eq!(conn.close_frame().unwrap().close_code(), Some(1000));
    assert!(!conn.junk);
    assert_eq!(server.accepts(), 1);
}

// ---------------------------------------------------------------------
// Bad handshakes
// ---------------------------------------------------------------------

#[test]
fn handshake_wrong_accept_key() {
    let other = accept_key("dGhlIHNhbXBsZSBub25jZQ==");
    let server = answers(move |_| {
        switching_with(&format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {other}\r\n"
        ))
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_key_echoed_as_accept() {
    let server = answers(|h| {
        switching_with(&format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            h.key()
        ))
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_without_accept() {
    let server = answers(|_| switching_with("Upgrade: websocket\r\nConnection: Upgrade\r\n"));
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_without_upgrade_header() {
    let server = answers(|h| {
        switching_with(&format!(
            "Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            h.accept()
        ))
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_upgrade_to_another_protocol() {
    let server = answers(|h| {
        switching_with(&format!(
            "Upgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            h.accept()
        ))
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_without_connection_header() {
    let server = answers(|h| {
        switching_with(&format!(
            "Upgrade: websocket\r\nSec-WebSocket-Accept: {}\r\n",
            h.accept()
        ))
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_connection_close_instead_of_upgrade() {
    let server = answers(|h| {
        switching_with(&format!(
            "Upgrade: websocket\r\nConnection: close\r\nSec-WebSocket-Accept: {}\r\n",
            h.accept()
        ))
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_200_instead_of_101() {
    let server = answers(|_| {
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html></html>"
            .to_vec()
    });
    expect_refused(&server, "", 200);
}

#[test]
fn handshake_302_redirect_is_not_followed_or_retried() {
    let server = answers(|_| {
        b"HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n".to_vec()
    });
    expect_refused(&server, "", 302);
}

#[test]
fn handshake_403() {
    let server = answers(|_| {
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden"
            .to_vec()
    });
    expect_refused(&server, "", 403);
}

#[test]
fn handshake_404() {
    let server = answers(|_| b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec());
    expect_refused(&server, "", 404);
}

#[test]
fn handshake_500_is_retried() {
    let server =
        answers(|_| b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_vec());
    let ev = expect_retried(&server, "", 500);
    assert!(!opened(&ev), "{ev:#?}");
}

/// RFC 6455 §4.1: the client must fail the connection when the server
/// names an extension the client did not offer.
#[test]
fn handshake_extension_not_offered() {
    let server = answers(|h| h.switching("Sec-WebSocket-Extensions: permessage-deflate\r\n"));
    expect_refused(&server, "", error_code::HANDSHAKE);
    let head = server.conn(0).head.unwrap();
    assert_eq!(
        head.header("sec-websocket-extensions"),
        None,
        "the client offered an extension after all: {}",
        head.raw
    );
}

#[test]
fn handshake_subprotocol_when_none_offered() {
    let server = answers(|h| h.switching("Sec-WebSocket-Protocol: chat.v1\r\n"));
    expect_refused(&server, "", error_code::SUBPROTOCOL);
}

#[test]
fn handshake_subprotocol_not_offered() {
    let server = answers(|h| h.switching("Sec-WebSocket-Protocol: chat.v2\r\n"));
    expect_refused(
        &server,
        r#""subprotocols": ["chat.v1"]"#,
        error_code::SUBPROTOCOL,
    );
    let head = server.conn(0).head.unwrap();
    assert_eq!(head.header("sec-websocket-protocol"), Some("chat.v1"));
}

#[test]
fn handshake_no_subprotocol_when_one_required() {
    let server = answers(|h| h.switching(""));
    expect_refused(
        &server,
        r#""subprotocols": ["chat.v1"]"#,
        error_code::SUBPROTOCOL,
    );
}

#[test]
fn handshake_endless_headers() {
    let server = HostileServer::start(|_| {
        vec![
            Step::Write(b"HTTP/1.1 101 Switching Protocols\r\n".to_vec()),
            // ~58 MB at most: the client must give up long before.
            Step::Repeat(b"X-Endless: 0123456789abcdef\r\n".to_vec(), 2_000_000),
        ]
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
    assert!(
        server.wait_eof(0, T),
        "the client kept reading endless headers"
    );
}

#[test]
fn handshake_huge_header() {
    let server = answers(|h| {
        let mut response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nX-Huge: ",
            h.accept()
        )
        .into_bytes();
        response.extend(std::iter::repeat_n(b'a', 4 << 20));
        response.extend_from_slice(b"\r\n\r\n");
        response
    });
    expect_refused(&server, "", error_code::HANDSHAKE);
}

/// A timed-out attempt is worth retrying, after the backoff (not at once).
fn expect_connect_timeout(server: &HostileServer) {
    let client = connect(server, r#""connect_timeout_ms": 1000"#);
    let start = Instant::now();
    let ev = until_end_or_retry(&client);
    let took = start.elapsed();
    assert_eq!(
        error_codes(&ev),
        vec![error_code::CONNECT_TIMEOUT],
        "{ev:#?}"
    );
    assert!(!opened(&ev), "{ev:#?}");
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_millis(1000) + SLACK,
        "timed out after {took:?}, connect_timeout_ms is 1000"
    );
    let Some(Event::Reconnecting { attempt: 1, delay }) = ev.last() else {
        panic!("not retried: {ev:#?}")
    };
    // The default backoff: the first retry spread over [0, 2 s] around 1 s.
    assert!(
        *delay <= Duration::from_millis(2_000),
        "retry after {delay:?}"
    );
    close_and_terminate(&client);
    assert_eq!(server.accepts(), 1);
}

#[test]
fn handshake_silence_after_connect() {
    let server = HostileServer::start(|_| vec![]);
    expect_connect_timeout(&server);
}

#[test]
fn handshake_slow_headers_past_the_connect_timeout() {
    // A correct answer, one byte every 50 ms: ~8 s for all of it.
    let server = HostileServer::start(|c| {
        vec![Step::Trickle(
            c.head().switching(""),
            Duration::from_millis(50),
        )]
    });
    expect_connect_timeout(&server);
}

#[test]
fn handshake_ssh_banner_instead_of_http() {
    let server = answers(|_| b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n".to_vec());
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_binary_garbage_instead_of_http() {
    // A TLS alert record, as a TLS-only port would answer.
    let server = answers(|_| vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46, 0, 0, 0xff]);
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_status_line_without_a_status() {
    let server = answers(|_| b"HTTP/1.1 abc Nope\r\n\r\n".to_vec());
    expect_refused(&server, "", error_code::HANDSHAKE);
}

#[test]
fn handshake_close_right_after_accept() {
    let server = HostileServer::start_raw(|_| vec![Step::Close]);
    let ev = expect_retried(&server, "", error_code::CONNECTION_LOST);
    assert!(!opened(&ev));
}

#[test]
fn handshake_reset_right_after_accept() {
    let server = HostileServer::start_raw(|_| vec![Step::Reset]);
    let ev = expect_retried(&server, "", error_code::CONNECTION_LOST);
    assert!(!opened(&ev));
}

#[test]
fn handshake_close_in_the_status_line() {
    let server = HostileServer::start(|_| {
        vec![
            Step::Write(b"HTTP/1.1 101 Swi".to_vec()),
            Step::Sleep(Duration::from_millis(50)),
            Step::Close,
        ]
    });
    let ev = expect_retried(&server, "", error_code::CONNECTION_LOST);
    assert!(!opened(&ev));
}

#[test]
fn handshake_reset_in_the_headers() {
    let server = HostileServer::start(|_| {
        vec![
            Step::Write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n".to_vec()),
            Step::Sleep(Duration::from_millis(50)),
            Step::Reset,
        ]
    });
    let ev = expect_retried(&server, "", error_code::CONNECTION_LOST);
    assert!(!opened(&ev));
}

#[test]
fn handshake_headers_in_any_case_are_accepted() {
    let server = HostileServer::start(|c| {
        vec![
            Step::Write(switching_with(&format!(
                "upgrade: WebSocket\r\nCONNECTION: upgrade\r\nsec-websocket-accept: {}\r\n",
                c.head().accept()
            ))),
            Step::Write(text("in any case")),
            Step::ServeClose,
        ]
    });
    expect_delivered(&server, "", &["in any case"]);
}

/// RFC 6455 §4.1 (client step 3): the Connection header must *contain* the
/// token "Upgrade"; other tokens may come with it.
#[test]
fn handshake_connection_token_list_is_accepted() {
    let server = HostileServer::start(|c| {
        vec![
            Step::Write(switching_with(&format!(
                "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
                c.head().accept()
            ))),
            Step::Write(text("token list")),
            Step::ServeClose,
        ]
    });
    expect_delivered(&server, "", &["token list"]);
}

#[test]
fn handshake_first_frame_in_the_same_write_as_the_101() {
    let server = HostileServer::start(|c| {
        vec![
            Step::Write([c.head().switching(""), text("early")].concat()),
            Step::ServeClose,
        ]
    });
    expect_delivered(&server, "", &["early"]);
}

// ---------------------------------------------------------------------
// Bad frames
// ---------------------------------------------------------------------

/// A payload length at or above 2^63 (its top bit must be 0, RFC 6455
/// §5.2): refused from the header alone, before any allocation.
#[test]
fn frame_payload_length_2_pow_63() {
    let server = open_then(vec![Step::Write(
        [
            vec![FIN | OP_BINARY, 127],
            (1u64 << 63).to_be_bytes().to_vec(),
        ]
        .concat(),
    )]);
    let client = connect(&server, "");
    let ev = until_end_or_retry(&client);
    assert!(!retried(&ev), "{ev:#?}");
    let codes = error_codes(&ev);
    let close_code = match codes.as_slice() {
        [error_code::MESSAGE_TOO_BIG] => 1009,
        [error_code::PROTOCOL] => 1002,
        _ => panic!("expected MESSAGE_TOO_BIG or PROTOCOL: {ev:#?}"),
    };
    assert_eq!(close_codes(&ev), vec![close_code], "{ev:#?}");
    assert_eq!(server.client_close(0, T), Some(Some(close_code)));
    ended_for_good(&client, &server);
}

#[test]
fn frame_payload_length_2_pow_63_minus_1() {
    violation_after_open(
        header(FIN | OP_BINARY, (1u64 << 63) - 1, None),
        "",
        error_code::MESSAGE_TOO_BIG,
        1009,
    );
}

#[test]
fn frame_over_max_frame_bytes() {
    violation_after_open(
        binary(&[7u8; 1025]),
        r#""max_frame_bytes": 1024, "max_message_bytes": 4096"#,
        error_code::MESSAGE_TOO_BIG,
        1009,
    );
}

#[test]
fn frame_message_over_max_message_bytes_in_one_frame() {
    violation_after_open(
        text(&"x".repeat(2000)),
        r#""max_frame_bytes": 4096, "max_message_bytes": 1024"#,
        error_code::MESSAGE_TOO_BIG,
        1009,
    );
}

#[test]
fn frame_message_over_max_message_bytes_in_fragments() {
    let chunk = [b'x'; 1000];
    violation_after_open(
        [
            frame(OP_TEXT, &chunk),
            frame(OP_CONTINUATION, &chunk),
            frame(OP_CONTINUATION, &chunk),
            frame(FIN | OP_CONTINUATION, &chunk),
        ]
        .concat(),
        r#""max_frame_bytes": 1024, "max_message_bytes": 2048"#,
        error_code::MESSAGE_TOO_BIG,
        1009,
    );
}

#[test]
fn frame_text_with_bad_utf8() {
    utf8_violation(frame(FIN | OP_TEXT, b"bad \xff here"));
}

#[test]
fn frame_text_with_bad_utf8_in_a_later_fragment() {
    utf8_violation(
        [
            frame(OP_TEXT, b"fine so far "),
            frame(FIN | OP_CONTINUATION, b"\xc3\x28"),
        ]
        .concat(),
    );
}

#[test]
fn frame_text_ending_in_a_truncated_utf8_sequence() {
    utf8_violation(
        [
            frame(OP_TEXT, b"euro: "),
            frame(FIN | OP_CONTINUATION, b"\xe2\x82"),
        ]
        .concat(),
    );
}

#[test]
fn frame_text_with_an_overlong_utf8_encoding() {
    utf8_violation(frame(FIN | OP_TEXT, b"\xc0\xaf"));
}

#[test]
fn frame_text_with_a_utf16_surrogate() {
    utf8_violation(frame(FIN | OP_TEXT, b"\xed\xa0\x80"));
}

#[test]
fn frame_utf8_split_across_fragments_is_fine() {
    // "é€" with both characters cut between frames.
    let server = open_then(vec![
        Step::Write(
            [
                frame(OP_TEXT, b"\xc3"),
                frame(OP_CONTINUATION, b"\xa9\xe2"),
                frame(FIN | OP_CONTINUATION, b"\x82\xac"),
            ]
            .concat(),
        ),
        Step::ServeClose,
    ]);
    expect_delivered(&server, "", &["é€"]);
}

#[test]
fn frame_ping_longer_than_125_bytes() {
    protocol_violation(ping(&[0u8; 126]));
}

#[test]
fn frame_close_longer_than_125_bytes() {
    protocol_violation(close(1000, &[b'r'; 124]));
}

#[test]
fn frame_fragmented_ping() {
    protocol_violation(frame(OP_PING, b"frag"));
}

#[test]
fn frame_fragmented_close() {
    protocol_violation(frame(OP_CLOSE, &1000u16.to_be_bytes()));
}

#[test]
fn frame_rsv1_without_an_extension() {
    protocol_violation(frame(FIN | RSV1 | OP_TEXT, b"compressed?"));
}

#[test]
fn frame_rsv2_set() {
    protocol_violation(frame(FIN | RSV2 | OP_BINARY, b"x"));
}

#[test]
fn frame_rsv3_on_a_ping() {
    protocol_violation(frame(FIN | RSV3 | OP_PING, b"x"));
}

#[test]
fn frame_masked_server_frame() {
    protocol_violation(masked_frame(FIN | OP_TEXT, b"masked", [9, 8, 7, 6]));
}

#[test]
fn frame_unknown_data_opcode() {
    protocol_violation(frame(FIN | 0x3, b"what"));
}

#[test]
fn frame_unknown_control_opcode() {
    protocol_violation(frame(FIN | 0xB, b"what"));
}

/// Close codes no endpoint may send (RFC 6455 §7.4): a protocol error.
fn bad_close_code(code: u16) {
    protocol_violation(close(code, b""));
}

#[test]
fn frame_close_code_0() {
    bad_close_code(0);
}

#[test]
fn frame_close_code_999() {
    bad_close_code(999);
}

#[test]
fn frame_close_code_1004() {
    bad_close_code(1004);
}

#[test]
fn frame_close_code_1005() {
    bad_close_code(1005);
}

#[test]
fn frame_close_code_1006() {
    bad_close_code(1006);
}

#[test]
fn frame_close_code_1015() {
    bad_close_code(1015);
}

#[test]
fn frame_close_code_2999() {
    bad_close_code(2999);
}

#[test]
fn frame_close_code_5000() {
    bad_close_code(5000);
}

#[test]
fn frame_close_reason_not_utf8() {
    utf8_violation(close(1000, b"\xff\xfe"));
}

#[test]
fn frame_close_of_one_byte() {
    protocol_violation(frame(FIN | OP_CLOSE, &[0x03]));
}

/// Nothing may follow a Close frame: the text after it is not delivered,
/// the client reports a protocol error and does not reconnect.
#[test]
fn frame_data_after_close() {
    let server = open_then(vec![Step::Write(
        [close(1000, b"done"), text("late")].concat(),
    )]);
    let client = connect(&server, "");
    let ev = until_end_or_retry(&client);
    assert!(!retried(&ev), "{ev:#?}");
    assert!(texts(&ev).is_empty(), "data after Close delivered: {ev:#?}");
    assert_eq!(error_codes(&ev), vec![error_code::PROTOCOL], "{ev:#?}");
    assert!(
        server.client_close(0, T).is_some(),
        "no Close from the client"
    );
    ended_for_good(&client, &server);
}

#[test]
fn frame_continuation_without_a_start() {
    protocol_violation(frame(FIN | OP_CONTINUATION, b"orphan"));
}

#[test]
fn frame_new_message_inside_a_fragmented_one() {
    protocol_violation([frame(OP_TEXT, b"first "), frame(FIN | OP_TEXT, b"second")].concat());
}

#[test]
fn frame_ping_between_fragments_is_fine() {
    let server = open_then(vec![
        Step::Write(
            [
                frame(OP_TEXT, b"hel"),
                ping(b"mid"),
                frame(FIN | OP_CONTINUATION, b"lo"),
            ]
            .concat(),
        ),
        Step::ServeClose,
    ]);
    expect_delivered(&server, "", &["hello"]);
    let conn = server.conn(0);
    assert!(
        conn.frames
            .iter()
            .any(|f| f.opcode == OP_PONG && f.payload == b"mid"),
        "the Ping was not answered: {:?}",
        conn.frames
    );
}

#[test]
fn frame_unsolicited_pong_is_ignored() {
    let server = open_then(vec![
        Step::Write([frame(FIN | OP_PONG, b"nobody asked"), text("after")].concat()),
        Step::ServeClose,
    ]);
    expect_delivered(&server, "", &["after"]);
}

#[test]
fn frame_empty_close_is_1005_and_not_retried() {
    let server = open_then(vec![
        Step::Write(frame(FIN | OP_CLOSE, b"")),
        Step::AwaitClose(T),
        Step::Close,
    ]);
    let client = connect(&server, "");
    let ev = until_end_or_retry(&client);
    assert!(!retried(&ev), "{ev:#?}");
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    assert_eq!(close_codes(&ev), vec![1005], "{ev:#?}");
    assert!(server.client_close(0, T).is_some());
    ended_for_good(&client, &server);
}

// ---------------------------------------------------------------------
// Floods
// ---------------------------------------------------------------------

#[test]
fn flood_of_pings() {
    const PINGS: usize = 10_000;
    let server = open_then(vec![
        Step::Repeat(ping(b"12345678"), PINGS),
        Step::Write(text("done")),
        Step::ServeClose,
    ]);
    expect_delivered(&server, "", &["done"]);
    let conn = server.conn(0);
    let pongs = conn.count(OP_PONG);
    assert!(
        (1..=PINGS).contains(&pongs),
        "{pongs} Pongs for {PINGS} Pings"
    );
    assert!(conn
        .frames
        .iter()
        .filter(|f| f.opcode == OP_PONG)
        .all(|f| f.payload == b"12345678"));
}

#[test]
fn flood_of_one_byte_fragments() {
    const N: usize = 50_000;
    let server = open_then(vec![
        Step::Write(frame(OP_TEXT, b"a")),
        Step::Repeat(frame(OP_CONTINUATION, b"a"), N - 2),
        Step::Write(frame(FIN | OP_CONTINUATION, b"a")),
        Step::ServeClose,
    ]);
    let want = "a".repeat(N);
    expect_delivered(&server, "", &[want.as_str()]);
}

#[test]
fn flood_of_empty_fragments() {
    let server = open_then(vec![
        Step::Write(frame(OP_TEXT, b"x")),
        Step::Repeat(frame(OP_CONTINUATION, b""), 100_000),
        Step::Write(frame(FIN | OP_CONTINUATION, b"y")),
        Step::ServeClose,
    ]);
    expect_delivered(&server, "", &["xy"]);
}

/// 100,000 messages of `payload` while the app does not poll: the client
/// stops reading once `max_unpolled_bytes` are waiting, counting each
/// message as at least one byte (DESIGN: "unpolled events are bounded in
/// memory whatever their sizes (empty messages included)"). Then the app
/// polls: every message arrives, none is dropped.
fn unpolled_flood_stays_bounded(payload: &'static str) {
    const N: usize = 100_000;
    const LIMIT: u64 = 4096;
    let server = open_then(vec![
        Step::Repeat(text(payload), N),
        Step::Write(text("end")),
        Step::ServeClose,
    ]);
    let client = connect(&server, &format!(r#""max_unpolled_bytes": {LIMIT}"#));
    let ev = polls_to_open(&client);
    assert!(opened(&ev), "{ev:#?}");

    // The app does not poll now. Wait until the client stops taking
    // messages in (no change for 300 ms) or takes too many.
    let bound = LIMIT + 1;
    let deadline = Instant::now() + T;
    let (mut last, mut since) = (client.stats().messages_in, Instant::now());
    loop {
        let now = client.stats().messages_in;
        assert!(
            now <= bound,
            "{now} messages of {} bytes taken in while the app did not poll \
             (max_unpolled_bytes {LIMIT}): unpolled events are not bounded",
            payload.len()
        );
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= Duration::from_millis(300) {
            break;
        }
        assert!(Instant::now() < deadline, "messages_in never settled");
        std::thread::sleep(Duration::from_millis(10));
    }

    // Nothing was dropped: all arrive once the app polls.
    let mut got = 0usize;
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "only {got} of {N} messages arrived");
        match client.poll_event(Some(left)).unwrap() {
            Some(Event::Text(t)) if t.as_str() == "end" => break,
            Some(Event::Text(t)) => {
                assert_eq!(t.as_str(), payload);
                got += 1;
            }
            Some(e @ (Event::Error { .. } | Event::Closed { .. } | Event::Terminated)) => {
                panic!("{e:?} after {got} messages")
            }
            _ => {}
        }
    }
    assert_eq!(got, N);
    let end = close_and_terminate(&client);
    assert_eq!(close_codes(&end), vec![1000], "{end:#?}");
}

#[test]
fn flood_of_empty_messages_is_bounded_by_max_unpolled_bytes() {
    unpolled_flood_stays_bounded("");
}

#[test]
fn flood_of_one_byte_messages_is_bounded_by_max_unpolled_bytes() {
    unpolled_flood_stays_bounded("z");
}

// ---------------------------------------------------------------------
// Resets and half-closes
// ---------------------------------------------------------------------

/// The first connection is lost (`CONNECTION_LOST`, `Closed(1006)`); the
/// client reconnects to a polite second one, then closes.
fn expect_lost_then_reopened(server: &HostileServer) -> Vec<Event> {
    let client = connect(server, FAST);
    let ev = until_end_or_retry(&client);
    assert!(opened(&ev), "{ev:#?}");
    assert!(retried(&ev), "a lost connection was not retried: {ev:#?}");
    assert_eq!(
        error_codes(&ev),
        vec![error_code::CONNECTION_LOST],
        "{ev:#?}"
    );
    assert_eq!(close_codes(&ev), vec![1006], "{ev:#?}");
    let again = polls_to_open(&client);
    assert!(opened(&again), "{again:#?}");
    let end = close_and_terminate(&client);
    assert_eq!(close_codes(&end), vec![1000], "{end:#?}");
    assert_eq!(server.accepts(), 2);
    ev
}

#[test]
fn reset_in_the_middle_of_a_frame() {
    let server = first_then_polite(vec![
        Step::Write([header(FIN | OP_BINARY, 1000, None), vec![1u8; 10]].concat()),
        Step::Sleep(Duration::from_millis(100)),
        Step::Reset,
    ]);
    let ev = expect_lost_then_reopened(&server);
    assert_eq!(messages(&ev), 0, "{ev:#?}");
}

#[test]
fn fin_in_the_middle_of_a_frame() {
    let server = first_then_polite(vec![
        Step::Write([header(FIN | OP_TEXT, 1000, None), b"partial".to_vec()].concat()),
        Step::Sleep(Duration::from_millis(100)),
        Step::Close,
    ]);
    let ev = expect_lost_then_reopened(&server);
    assert_eq!(messages(&ev), 0, "{ev:#?}");
}

#[test]
fn reset_right_after_the_101() {
    let server = first_then_polite(vec![Step::Sleep(Duration::from_millis(100)), Step::Reset]);
    expect_lost_then_reopened(&server);
}

/// The server shuts down its write side without a Close: the connection
/// is lost; the client must hang up its side too, not keep it half-open.
#[test]
fn half_close_without_a_close_frame() {
    let server = first_then_polite(vec![
        Step::Write(text("before")),
        Step::ShutdownWrite,
        Step::AwaitEof(T),
    ]);
    let ev = expect_lost_then_reopened(&server);
    assert_eq!(texts(&ev), vec!["before"]);
    assert!(
        server.wait_eof(0, T),
        "the client kept the half-closed socket"
    );
}

/// A Close then a FIN: the close handshake completes at once (no wait
/// for `close_timeout_ms`), with the server's code, and no reconnect.
#[test]
fn half_close_after_a_close_frame() {
    let server = open_then(vec![
        Step::Write(close(1000, b"bye")),
        Step::ShutdownWrite,
        Step::AwaitEof(T),
    ]);
    let client = connect(&server, r#""close_timeout_ms": 5000"#);
    let start = Instant::now();
    let ev = until_end_or_retry(&client);
    let took = start.elapsed();
    assert!(!retried(&ev), "{ev:#?}");
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    assert_eq!(closes(&ev), vec![(1000, "bye".to_string())], "{ev:#?}");
    assert!(
        took < Duration::from_secs(2),
        "took {took:?}: waited for the close timeout"
    );
    assert_eq!(server.client_close(0, T), Some(Some(1000)));
    ended_for_good(&client, &server);
}

/// A reset right after the server's Close: the Close still counts (1012,
/// reconnect), not a lost connection.
#[test]
fn reset_right_after_a_close_frame() {
    let server = first_then_polite(vec![
        Step::Write(close(1012, b"restart")),
        Step::Sleep(Duration::from_millis(100)),
        Step::Reset,
    ]);
    let client = connect(&server, FAST);
    let ev = until_end_or_retry(&client);
    assert!(retried(&ev), "{ev:#?}");
    assert_eq!(closes(&ev), vec![(1012, "restart".to_string())], "{ev:#?}");
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    assert!(opened(&polls_to_open(&client)));
    close_and_terminate(&client);
}

// ---------------------------------------------------------------------
// Close without TCP close
// ---------------------------------------------------------------------

/// The server sends Close(`code`, "bye") and never closes TCP: the client
/// answers with the same code, ends the connection within
/// `close_timeout_ms`, reports the server's code, and reconnects only if
/// `reconnects`.
fn server_close_without_tcp_close(code: u16, reconnects: bool) {
    let server = first_then_polite(vec![Step::Write(close(code, b"bye"))]);
    let client = connect(&server, if reconnects { FAST } else { "" });
    let ev = polls_to_open(&client);
    assert!(opened(&ev), "{ev:#?}");
    let start = Instant::now();
    let ev = poll_until(&client, T, |e| matches!(e, Event::Closed { .. }));
    let took = start.elapsed();
    assert_eq!(closes(&ev), vec![(code, "bye".to_string())], "{ev:#?}");
    assert!(
        took <= CLOSE_TIMEOUT + SLACK,
        "the close took {took:?}; close_timeout_ms is {}",
        CLOSE_TIMEOUT.as_millis()
    );
    assert_eq!(
        server.client_close(0, T),
        Some(Some(code)),
        "the client's answer"
    );
    assert!(server.wait_eof(0, T), "the client did not hang up");
    let rest = until_end_or_retry(&client);
    // A legitimate close, if slow to hang up: nothing to report as an error.
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    assert!(error_codes(&rest).is_empty(), "{rest:#?}");
    if reconnects {
        assert!(retried(&rest), "close code {code} not retried: {rest:#?}");
        assert!(server.wait_accepts(2, T), "no second attempt");
        assert!(opened(&polls_to_open(&client)));
        close_and_terminate(&client);
    } else {
        assert!(!retried(&rest), "close code {code} retried: {rest:#?}");
        assert_eq!(rest.last(), Some(&Event::Terminated));
        ended_for_good(&client, &server);
    }
}

#[test]
fn close_1000_without_tcp_close() {
    server_close_without_tcp_close(1000, false);
}

#[test]
fn close_1001_without_tcp_close_reconnects() {
    server_close_without_tcp_close(1001, true);
}

#[test]
fn close_1008_without_tcp_close() {
    server_close_without_tcp_close(1008, false);
}

#[test]
fn close_1011_without_tcp_close_reconnects() {
    server_close_without_tcp_close(1011, true);
}

#[test]
fn close_1012_without_tcp_close_reconnects() {
    server_close_without_tcp_close(1012, true);
}

#[test]
fn close_1013_without_tcp_close_reconnects() {
    server_close_without_tcp_close(1013, true);
}

#[test]
fn close_4000_without_tcp_close() {
    server_close_without_tcp_close(4000, false);
}

/// The client closes; the server answers with its Close but never closes
/// TCP. The handshake is complete: the client ends within
/// `close_timeout_ms` and reports the server's answer, not a timeout
/// (CLOSE_TIMEOUT means "the peer did not answer our Close frame").
#[test]
fn close_answered_without_tcp_close() {
    let server = open_then(vec![Step::AwaitClose(T), Step::Write(close(1000, b"ok"))]);
    let client = connect(&server, "");
    assert!(opened(&polls_to_open(&client)));
    let start = Instant::now();
    client.close(1000, "bye").unwrap();
    let ev = poll_until(&client, T, |e| *e == Event::Terminated);
    let took = start.elapsed();
    assert!(
        took <= CLOSE_TIMEOUT + SLACK,
        "the close took {took:?}; close_timeout_ms is {}",
        CLOSE_TIMEOUT.as_millis()
    );
    assert_eq!(server.client_close(0, T), Some(Some(1000)));
    assert!(!retried(&ev), "{ev:#?}");
    assert_eq!(closes(&ev), vec![(1000, "ok".to_string())], "{ev:#?}");
    assert!(error_codes(&ev).is_empty(), "{ev:#?}");
    ended_for_good(&client, &server);
}
