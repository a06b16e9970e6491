//! The test echo server (tests/support, `EchoServer`) as a process, for tests
//! written in other languages (the Kotlin/Native tests of
//! scripts/test-kotlin-native.sh). Listens on 127.0.0.1 only.
//!
//! Prints `PORT <n>` once listening, then obeys one command per line on
//! stdin, answering each with one line:
//! - `kill`: stop listening and drop every connection without a close
//!   handshake (`killed`);
//! - `start`: listen again on the same port (`started`);
//! - `restart`: both (`restarted`).
//!
//! Exits when stdin closes, or after `--max-seconds N` (default 600) in case
//! the process that started it forgot it.
//!
//! Run: `cargo run --example echo_server`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, Write};
use std::time::Duration;

use support::EchoServer;

fn main() {
    let max_seconds = max_seconds();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max_seconds));
        eprintln!("echo_server: --max-seconds {max_seconds} reached, exiting");
        std::process::exit(2);
    });

    let mut server = Some(EchoServer::start());
    let addr = server.as_ref().map(|s| s.addr).expect("just started");
    say(&format!("PORT {}", addr.port()));

    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "kill" => {
                if let Some(s) = server.take() {
                    s.kill();
                }
                say("killed");
            }
            "start" => {
                if server.is_none() {
                    server = Some(EchoServer::start_on(addr));
                }
                say("started");
            }
            "restart" => {
                if let Some(s) = server.take() {
                    s.kill();
                }
                server = Some(EchoServer::start_on(addr));
                say("restarted");
            }
            "" => {}
            other => say(&format!("unknown command {other:?}")),
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn max_seconds() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--max-seconds") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--max-seconds needs a number of seconds"),
        None => 600,
    }
}
