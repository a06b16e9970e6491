//! Crash safety of the durable outbox: a child process sends through the
//! outbox and is killed with SIGKILL at random moments, hundreds of times,
//! while a real server on 127.0.0.1 receives (and restarts now and then).
//! Afterwards every message `send_text` had accepted reached the server at
//! least once, and first arrivals are in the order they were sent.
//!
//! The child is this test binary again, running `outbox_child` with
//! TETHER_OUTBOX_CHILD set. TETHER_OUTBOX_KILLS sets the number of kills
//! (default 200).

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use support::ServerThread;
use tether::{Client, Options};
use tokio_tungstenite::tungstenite::Message;

/// Texts the server received, in order of arrival.
type Received = Arc<Mutex<Vec<String>>>;

/// A WebSocket server that records every text it reads (tungstenite
/// answers the client's Pings as it reads, which is what confirms
/// delivery to the outbox).
fn recording_server(addr: SocketAddr, received: Received) -> ServerThread {
    ServerThread::start(addr, move |tcp| {
        let received = received.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(text) = message {
                    received.lock().unwrap().push(text.to_string());
                }
            }
        }
    })
}

fn options(path: &str, fsync: &str) -> Options {
    Options::from_json(Some(&format!(
        r#"{{"outbox": {{"path": {}, "fsync": "{fsync}", "max_messages": 100000}},
            "ping_interval_ms": 0,
            "reconnect": {{"initial_delay_ms": 5, "max_delay_ms": 50}}}}"#,
        serde_json::to_string(path).unwrap()
    )))
    .unwrap()
}

/// The child: sends m{start}, m{start+1}, … as fast as the outbox takes
/// them, printing each index once accepted, until killed. In drain mode,
/// waits until the outbox is empty and exits.
#[test]
fn outbox_child() {
    let Ok(mode) = std::env::var("TETHER_OUTBOX_CHILD") else {
        return; // not the child: nothing to do
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let client = Client::connect(
        &var("TETHER_OUTBOX_URL"),
        options(&var("TETHER_OUTBOX_PATH"), &var("TETHER_OUTBOX_FSYNC")),
    )
    .unwrap();
    if mode == "drain" {
        let deadline = Instant::now() + Duration::from_secs(120);
        while client.outbox_pending().unwrap() > 0 {
            assert!(Instant::now() < deadline, "the outbox never drained");
            let _ = client.poll_event(Some(Duration::from_millis(10)));
        }
        println!("drained");
        return;
    }
    let start: u64 = var("TETHER_OUTBOX_START").parse().unwrap();
    let mut out = std::io::stdout().lock();
    for i in start.. {
        match client.send_text(&format!("m{i}")) {
            Ok(()) => {
                use std::io::Write;
                let _ = writeln!(out, "accepted {i}");
                let _ = out.flush();
            }
            // The outbox is full while the server is down: wait.
            Err(tether::Error::QueueFull(_)) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("send failed: {e}"),
        }
        while let Ok(Some(_)) = client.poll_event(Some(Duration::ZERO)) {}
    }
}

/// A small deterministic generator for the kill delays.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn child(mode: &str, url: &str, path: &str, fsync: &str, start: u64) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "outbox_child", "--nocapture", "--test-threads=1"])
        .env("TETHER_OUTBOX_CHILD", mode)
        .env("TETHER_OUTBOX_URL", url)
        .env("TETHER_OUTBOX_PATH", path)
        .env("TETHER_OUTBOX_FSYNC", fsync)
        .env("TETHER_OUTBOX_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_sender_killed_hundreds_of_times_loses_no_accepted_message() {
    if std::env::var("TETHER_OUTBOX_CHILD").is_ok() {
        return;
    }
    let kills: usize = std::env::var("TETHER_OUTBOX_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("tether-outbox-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outbox.db").to_string_lossy().into_owned();

    let received: Received = Arc::default();
    let mut server = recording_server("127.0.0.1:0".parse().unwrap(), received.clone());
    let addr = server.addr;
    let url = format!("ws://{addr}/");
    let mut rng = Lcg(0x5eed);
    let mut accepted: Vec<u64> = Vec::new();
    let mut next = 0u64;
    let started = Instant::now();
    for kill in 0..kills {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{kill} kills took too long"
        );
        if kill % 25 == 24 {
            // The server restarts too: connections die, the port stays.
            drop(server);
            server = recording_server(addr, received.clone());
        }
        let fsync = if kill % 2 == 0 { "always" } else { "batch" };
        let mut process = child("send", &url, &path, fsync, next);
        let stdout = process.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| line.strip_prefix("accepted ")?.parse::<u64>().ok())
                .collect::<Vec<u64>>()
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(130)));
        process.kill().unwrap(); // SIGKILL, our own child
        process.wait().unwrap();
        let run = reader.join().unwrap();
        if let Some(last) = run.last() {
            // The send in progress when it died may be stored unprinted:
            // skip its index rather than send it twice with two meanings.
            next = last + 2;
        }
        accepted.extend(run);
    }
    assert!(
        accepted.len() >= kills,
        "too few messages were accepted to mean anything: {}",
        accepted.len()
    );

    // A last run that is not killed sends what is left.
    let mut drain = child("drain", &url, &path, "always", next);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut drain.stdout.take().unwrap(), &mut out).unwrap();
    assert!(drain.wait().unwrap().success(), "the draining run failed");
    assert!(out.contains("drained"), "{out}");

    let received = received.lock().unwrap().clone();
    let arrived: HashSet<&str> = received.iter().map(String::as_str).collect();
    let lost: Vec<u64> = accepted
        .iter()
        .copied()
        .filter(|i| !arrived.contains(format!("m{i}").as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted messages were lost over {kills} kills: {:?}",
        lost.len(),
        accepted.len(),
        &lost[..lost.len().min(20)]
    );
    // In order of first arrival.
    let mut seen = HashSet::new();
    let firsts: Vec<u64> = received
        .iter()
        .filter(|t| seen.insert(t.as_str()))
        .map(|t| t[1..].parse().unwrap())
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "first arrivals out of order"
    );
    println!(
        "outbox kill test: {kills} kills, {} messages accepted, 0 lost, {} arrivals ({} duplicates)",
        accepted.len(),
        received.len(),
        received.len() - firsts.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
