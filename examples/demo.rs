//! The Tether demo: an echo server inside this process, a client that
//! talks to it, loses it twice, and delivers what it queued meanwhile.
//! Every event is printed as one line. Needs nothing but loopback.
//!
//! Run: scripts/demo.sh (or `cargo run --example demo`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::EchoServer;
use tether::{Client, Event, Options};

const LIMIT: Duration = Duration::from_secs(20);

fn main() {
    let started = Instant::now();
    let log = |line: String| println!("[{:>7.3}s] {line}", started.elapsed().as_secs_f64());

    let mut server = EchoServer::start();
    let addr = server.addr;
    log(format!("echo server listening on {addr}"));

    let options = Options::from_json(Some(
        r#"{
            "ping_interval_ms": 1000,
            "pong_timeout_ms": 1000,
            "reconnect": {"initial_delay_ms": 200, "max_delay_ms": 1600,
                          "multiplier": 2.0, "jitter": 0.3, "reset_after_ms": 300}
        }"#,
    ))
    .expect("demo options are valid");
    let client = Client::connect(&server.url(), options).expect("valid URL and options");
    log(format!("ws_connect {}", server.url()));

    wait_for(&client, &log, |e| matches!(e, Event::Open { .. }));
    client.send_text("hello, Tether").unwrap();
    client.send_binary(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
    log("sent a text and a binary message".into());
    wait_for(&client, &log, |e| matches!(e, Event::Binary(_)));

    for outage in 1..=2 {
        log(format!("--- outage {outage}: killing the server ---"));
        server.kill();
        wait_for(&client, &log, |e| matches!(e, Event::Reconnecting { .. }));
        for i in 1..=3 {
            client
                .send_text(&format!("queued during outage {outage}, #{i}"))
                .unwrap();
        }
        let stats = client.stats();
        log(format!(
            "queued while down: {} messages, {} bytes",
            stats.queued_messages, stats.queued_bytes
        ));
        // Let a retry or two fail before the server comes back.
        drain_for(&client, &log, Duration::from_millis(700));
        log(format!("--- restarting the server on {addr} ---"));
        server = EchoServer::start_on(addr);
        wait_for(&client, &log, |e| matches!(e, Event::Open { .. }));
        let mut echoed = 0;
        wait_for(&client, &log, |e| {
            if matches!(e, Event::Text(_)) {
                echoed += 1;
            }
            echoed == 3
        });
    }

    log("idle for a moment: heartbeat Pings measure the round trip".into());
    drain_for(&client, &log, Duration::from_millis(1300));
    let stats = client.stats();
    log(format!(
        "stats: {} reconnects, {} messages out, {} in, last RTT {}",
        stats.reconnects,
        stats.messages_out,
        stats.messages_in,
        stats
            .last_rtt
            .map_or("not measured yet".into(), |d| format!(
                "{} µs",
                d.as_micros()
            ))
    ));
    client.close(1000, "demo done").unwrap();
    log("ws_close 1000 \"demo done\"".into());
    wait_for(&client, &log, |e| *e == Event::Terminated);
    drop(server);
    log("done".into());
}

fn describe(event: &Event) -> String {
    match event {
        Event::State(s) => format!("state        {s:?}"),
        Event::Open { protocol } => format!("open         subprotocol: {protocol:?}"),
        Event::Text(t) => format!("text         {:?}", t.as_str()),
        Event::Binary(b) => format!(
            "binary       {} bytes: {:02x?}",
            b.len(),
            &b[..b.len().min(16)]
        ),
        Event::Closed { code, reason } => format!("closed       code {code}, reason {reason:?}"),
        Event::Reconnecting { attempt, delay } => {
            format!("reconnecting attempt {attempt} in {} ms", delay.as_millis())
        }
        Event::Error { code, message } => format!("error        {code}: {message}"),
        Event::Resent { ids } => format!("resent       tracked ids {ids:?}"),
        Event::ServerSent(e) => format!("sse          {} {:?}: {:?}", e.event_type, e.id, e.data),
        Event::Terminated => "terminated".to_string(),
        Event::SocketIo(e) => format!("socket.io    {e:?}"),
    }
}

/// Prints events until `done` says so; gives up (exit 1) after LIMIT.
fn wait_for(client: &Client, log: &impl Fn(String), mut done: impl FnMut(&Event) -> bool) {
    let deadline = Instant::now() + LIMIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            eprintln!("demo: timed out waiting for an event");
            std::process::exit(1);
        }
        match client.poll_event(Some(left)) {
            Ok(Some(event)) => {
                log(describe(&event));
                if done(&event) {
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("demo: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn drain_for(client: &Client, log: &impl Fn(String), d: Duration) {
    let deadline = Instant::now() + d;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if let Ok(Some(event)) = client.poll_event(Some(left)) {
            log(describe(&event));
        }
    }
}
