//! Throughput and latency of Tether against raw tokio-tungstenite, on one
//! tokio-tungstenite echo server on 127.0.0.1 (in this process, own thread).
//! Run with scripts/bench.sh (release build). Numbers, not assertions.
//!
//! For each client: pipelined 64-byte messages (messages/s), pipelined
//! 1 MiB messages (GB/s), sequential round trips of 64 bytes (median µs).
//! "tether (C ABI)" drives the exported `ws_*` functions, as a C app would.
//! "idle" and "wakeups" (resident memory per idle connection; process
//! wakeups per idle minute with 30 s pings) use the echo server as another
//! process (examples/echo_server.rs), so that only the client side counts.

#[path = "../tests/support/mod.rs"]
mod support;

use std::ffi::CString;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tether::ffi;
use tether::{Client, Error, Event, Options};
use tokio_tungstenite::tungstenite::Message;

const SMALL: usize = 64;
const SMALL_COUNT: usize = 200_000;
const LARGE: usize = 1 << 20;
const LARGE_COUNT: usize = 200;
const ROUND_TRIPS: usize = 5_000;
/// Bytes in flight at most, like the socket buffers bound the raw client.
const WINDOW_BYTES: usize = 16 << 20;

/// Messages of `size` bytes in flight at most.
fn window(size: usize) -> usize {
    (WINDOW_BYTES / size.max(1)).clamp(1, 10_000)
}
const LIMIT: Duration = Duration::from_secs(120);

/// Big enough that the queue never refuses within the window.
const BENCH_OPTIONS: &str = r#"{"queue": {"max_messages": 100000, "max_bytes": 1073741824},
    "max_unpolled_bytes": 268435456, "ping_interval_ms": 0}"#;

fn main() {
    let server = support::EchoServer::start();
    let url = server.url();
    println!("echo server: tokio-tungstenite on {}", server.addr);
    println!(
        "{:<22} {:>16} {:>14} {:>16}",
        "client", "64 B msgs/s", "1 MiB GB/s", "RTT median µs"
    );
    // Arguments pick what runs: raw, api, c, outbox, idle, wakeups
    // (default: all).
    let picked: Vec<String> = std::env::args().skip(1).collect();
    let runs = |name: &str| picked.is_empty() || picked.iter().any(|p| p == name);
    if runs("raw") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let raw = (
            rt.block_on(raw_pipelined(&url, SMALL, SMALL_COUNT)),
            rt.block_on(raw_pipelined(&url, LARGE, LARGE_COUNT)),
            rt.block_on(raw_round_trips(&url)),
        );
        report("tokio-tungstenite", raw);
    }
    if runs("api") {
        let api = (
            tether_pipelined(&url, SMALL, SMALL_COUNT),
            tether_pipelined(&url, LARGE, LARGE_COUNT),
            tether_round_trips(&url),
        );
        report("tether (Rust API)", api);
    }
    if runs("c") {
        let c = (
            cabi_pipelined(&url, SMALL, SMALL_COUNT),
            cabi_pipelined(&url, LARGE, LARGE_COUNT),
            cabi_round_trips(&url),
        );
        report("tether (C ABI)", c);
    }
    if runs("outbox") {
        for (fsync, count) in [("always", 2_000), ("batch", 50_000)] {
            for senders in [1, 4] {
                outbox_throughput(&url, fsync, senders, count);
            }
        }
    }
    drop(server);
    if runs("idle") {
        idle_memory();
    }
    if runs("wakeups") {
        idle_wakeups();
    }
}

/// Durable sends: `count` 64 B messages from `senders` threads through an
/// outbox with `fsync`; how fast `send_text` accepts them (each returns
/// once the message is stored, synced with "always"), and how long until
/// the server has provably read them all (the outbox is empty).
fn outbox_throughput(url: &str, fsync: &str, senders: usize, count: usize) {
    let dir = std::env::temp_dir().join(format!("tether-bench-outbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("outbox.db");
    let options = Options::from_json(Some(&format!(
        r#"{{"outbox": {{"path": {}, "fsync": "{fsync}", "max_messages": 1000000}},
            "ping_interval_ms": 0, "max_unpolled_bytes": 268435456}}"#,
        serde_json::to_string(&path).unwrap()
    )))
    .unwrap();
    let client = std::sync::Arc::new(Client::connect(url, options).unwrap());
    wait_open(&client);
    let payload = "x".repeat(SMALL);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..senders {
            let (client, payload) = (client.clone(), payload.as_str());
            scope.spawn(move || {
                for _ in 0..count / senders {
                    client.send_text(payload).unwrap();
                }
            });
        }
    });
    let accepted = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.outbox_pending().unwrap() > 0 {
        assert!(Instant::now() < deadline, "the outbox never drained");
        while let Ok(Some(_)) = client.poll_event(Some(Duration::from_millis(1))) {}
    }
    let delivered = start.elapsed();
    println!(
        "outbox fsync={fsync:<6} {senders} sender(s): {:>9.0} msgs/s accepted, {:>9.0} msgs/s delivered ({count} × 64 B)",
        count as f64 / accepted.as_secs_f64(),
        count as f64 / delivered.as_secs_f64()
    );
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Connections held open for the idle-memory measurement (env
/// BENCH_IDLE_CLIENTS overrides; DESIGN's budget is stated at 10,000).
fn idle_clients() -> usize {
    std::env::var("BENCH_IDLE_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// The echo server as another process (examples/echo_server.rs), so that
/// only the client side counts in this one. It exits when dropped (its
/// stdin closes) or after `max_seconds` in any case.
struct EchoProcess {
    child: std::process::Child,
    url: String,
}

impl EchoProcess {
    fn start(max_seconds: u64) -> EchoProcess {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe()
            .unwrap()
            .with_file_name("echo_server");
        let mut child = Command::new(&exe)
            .arg("--max-seconds")
            .arg(max_seconds.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (scripts/bench.sh builds it)", exe.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .expect("PORT line")
            .to_string();
        let url = format!("ws://127.0.0.1:{port}/");
        EchoProcess { child, url }
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the server exits when its stdin closes
        let _ = self.child.wait();
    }
}

/// `count` clients with `options`, each one Open.
fn open_idle_clients(url: &str, count: usize, options: &str) -> Vec<Client> {
    let clients: Vec<Client> = (0..count)
        .map(|_| Client::connect(url, Options::from_json(Some(options)).unwrap()).unwrap())
        .collect();
    for client in &clients {
        let deadline = Instant::now() + LIMIT;
        while !matches!(
            client.poll_event(Some(LIMIT)).unwrap(),
            Some(Event::Open { .. })
        ) {
            assert!(Instant::now() < deadline, "idle client did not open");
        }
    }
    clients
}

/// Resident memory per idle connection, client side only.
fn idle_memory() {
    let server = EchoProcess::start(300);
    let before = resident_kib();
    let count = idle_clients();
    let clients = open_idle_clients(&server.url, count, r#"{"ping_interval_ms": 0}"#);
    std::thread::sleep(Duration::from_millis(500));
    let after = resident_kib();
    println!(
        "idle: {count} open connections cost {:.1} KiB resident each (client side)",
        (after.saturating_sub(before)) as f64 / count as f64
    );
    drop(clients);
    drop(server);
}

/// Length of each wakeup window in seconds (env BENCH_WAKEUP_SECS, default
/// 60, at most an hour).
fn wakeup_secs() -> u64 {
    std::env::var("BENCH_WAKEUP_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
        .clamp(1, 3_600)
}

/// Process wakeups per idle minute with 30 s pings, for 1 and for 100 Open
/// connections to the echo server in its own process: the context switches
/// (voluntary + nonvoluntary) of every thread of this process but the
/// measuring one, which sleeps through the window.
fn idle_wakeups() {
    const SETTLE: Duration = Duration::from_secs(2);
    let secs = wakeup_secs();
    let server = EchoProcess::start(300 + 2 * (secs + SETTLE.as_secs()));
    for count in [1, 100] {
        let clients = open_idle_clients(&server.url, count, r#"{"ping_interval_ms": 30000}"#);
        // Let the handshakes' and earlier runs' closing traffic die down.
        std::thread::sleep(SETTLE);
        let me = own_tid();
        let before = thread_switches();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let elapsed = start.elapsed();
        let after = thread_switches();
        drop(clients);
        let switches: u64 = after
            .iter()
            .filter(|(tid, _)| **tid != me)
            .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
            .sum();
        let per_minute = switches as f64 * 60.0 / elapsed.as_secs_f64();
        println!(
            "wakeups: {count} idle connection(s), 30 s pings: {per_minute:.0} per minute (target <= 10)"
        );
        let ended = before.keys().filter(|t| !after.contains_key(t)).count();
        if ended > 0 {
            println!("wakeups: ({ended} thread(s) ended in the window; their last switches are not counted)");
        }
    }
    drop(server);
}

/// Context switches (voluntary + nonvoluntary) of each thread of this
/// process, by thread id.
fn thread_switches() -> std::collections::HashMap<u64, u64> {
    let mut switches = std::collections::HashMap::new();
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task (Linux only)");
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread may end between listing and reading: skip it.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let count = |key: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        switches.insert(
            tid,
            count("voluntary_ctxt_switches:") + count("nonvoluntary_ctxt_switches:"),
        );
    }
    switches
}

/// The calling thread's id ("Pid:" of /proc/thread-self/status).
fn own_tid() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("own thread id from /proc/thread-self/status")
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn report(name: &str, (small, large, rtt): (Duration, Duration, Duration)) {
    let msgs = SMALL_COUNT as f64 / small.as_secs_f64();
    let gbs = (LARGE * LARGE_COUNT) as f64 / large.as_secs_f64() / 1e9;
    println!(
        "{name:<22} {msgs:>16.0} {gbs:>14.2} {:>16.1}",
        rtt.as_secs_f64() * 1e6
    );
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

// ---- raw tokio-tungstenite

type RawWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn raw_connect(url: &str) -> RawWs {
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .unwrap()
        .0
}

async fn raw_pipelined(url: &str, size: usize, count: usize) -> Duration {
    let (mut tx, mut rx) = raw_connect(url).await.split();
    let payload = vec![7u8; size];
    let start = Instant::now();
    let writer = async {
        for i in 0..count {
            tx.feed(Message::binary(payload.clone())).await.unwrap();
            if i % 64 == 63 {
                tx.flush().await.unwrap();
            }
        }
        tx.flush().await.unwrap();
        tx
    };
    let reader = async {
        let mut got = 0;
        while got < count {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) => {
                    assert_eq!(b.len(), size);
                    got += 1;
                }
                Some(Ok(_)) => {}
                other => panic!("raw client: {other:?}"),
            }
        }
    };
    let (mut tx, ()) = tokio::time::timeout(LIMIT, async { tokio::join!(writer, reader) })
        .await
        .expect("raw pipelined run timed out");
    let elapsed = start.elapsed();
    let _ = tx.close().await;
    elapsed
}

async fn raw_round_trips(url: &str) -> Duration {
    let mut ws = raw_connect(url).await;
    let payload = vec![7u8; SMALL];
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        ws.send(Message::binary(payload.clone())).await.unwrap();
        loop {
            match tokio::time::timeout(LIMIT, ws.next())
                .await
                .expect("timed out")
            {
                Some(Ok(Message::Binary(_))) => break,
                Some(Ok(_)) => {}
                other => panic!("raw client: {other:?}"),
            }
        }
        samples.push(t.elapsed());
    }
    let _ = ws.close(None).await;
    median(samples)
}

// ---- Tether, Rust API

fn tether_client(url: &str) -> Client {
    let client = Client::connect(url, Options::from_json(Some(BENCH_OPTIONS)).unwrap()).unwrap();
    wait_open(&client);
    client
}

fn wait_open(client: &Client) {
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "no open");
        if let Some(Event::Open { .. }) = client.poll_event(Some(LIMIT)).unwrap() {
            return;
        }
    }
}

fn tether_pipelined(url: &str, size: usize, count: usize) -> Duration {
    let client = tether_client(url);
    let payload = vec![7u8; size];
    let (mut sent, mut got) = (0, 0);
    let start = Instant::now();
    while got < count {
        assert!(start.elapsed() < LIMIT, "tether pipelined run timed out");
        while sent < count && sent - got < window(size) {
            match client.send_binary(&payload) {
                Ok(()) => sent += 1,
                Err(Error::QueueFull(_)) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // Drain what is there, then wait for at least one more.
        let mut timeout = Some(Duration::from_secs(10));
        while let Some(event) = client.poll_event(timeout).unwrap() {
            if let Event::Binary(b) = event {
                assert_eq!(b.len(), size);
                got += 1;
            }
            timeout = Some(Duration::ZERO);
        }
    }
    let elapsed = start.elapsed();
    client.close(1000, "").unwrap();
    elapsed
}

fn tether_round_trips(url: &str) -> Duration {
    let client = tether_client(url);
    let payload = vec![7u8; SMALL];
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        client.send_binary(&payload).unwrap();
        loop {
            match client.poll_event(Some(LIMIT)).unwrap() {
                Some(Event::Binary(_)) => break,
                Some(_) => {}
                None => panic!("no echo"),
            }
        }
        samples.push(t.elapsed());
    }
    client.close(1000, "").unwrap();
    median(samples)
}

// ---- Tether, C ABI (the exported functions, as a C program calls them)

struct CClient(*mut ffi::ws_client);

impl Drop for CClient {
    fn drop(&mut self) {
        ffi::ws_close(self.0, 1000, std::ptr::null());
        ffi::ws_free(self.0);
    }
}

fn cabi_client(url: &str) -> CClient {
    let url = CString::new(url).unwrap();
    let options = CString::new(BENCH_OPTIONS).unwrap();
    let mut handle = std::ptr::null_mut();
    let status = ffi::ws_connect(url.as_ptr(), options.as_ptr(), &mut handle);
    assert_eq!(status, ffi::ws_status::WS_OK);
    let client = CClient(handle);
    let mut ev = ffi::ws_event::default();
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if ffi::ws_poll_event(client.0, 10_000, &mut ev) == ffi::ws_status::WS_OK
            && ev.kind == ffi::ws_event_kind::WS_EVENT_OPEN
        {
            return client;
        }
    }
    panic!("no open");
}

fn cabi_pipelined(url: &str, size: usize, count: usize) -> Duration {
    let client = cabi_client(url);
    let payload = vec![7u8; size];
    let (mut sent, mut got) = (0, 0);
    let mut ev = ffi::ws_event::default();
    let start = Instant::now();
    while got < count {
        assert!(start.elapsed() < LIMIT, "C ABI pipelined run timed out");
        while sent < count && sent - got < window(size) {
            let status = ffi::ws_send(client.0, 2, payload.as_ptr(), payload.len());
            match status {
                ffi::ws_status::WS_OK => sent += 1,
                ffi::ws_status::WS_ERR_QUEUE_FULL => break,
                other => panic!("ws_send: {other:?}"),
            }
        }
        let mut timeout = 10_000;
        while ffi::ws_poll_event(client.0, timeout, &mut ev) == ffi::ws_status::WS_OK {
            if ev.kind == ffi::ws_event_kind::WS_EVENT_BINARY {
                assert_eq!(ev.len, size);
                got += 1;
            }
            timeout = 0;
        }
    }
    start.elapsed()
}

fn cabi_round_trips(url: &str) -> Duration {
    let client = cabi_client(url);
    let payload = [7u8; SMALL];
    let mut ev = ffi::ws_event::default();
    let mut samples = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let t = Instant::now();
        let status = ffi::ws_send(client.0, 2, payload.as_ptr(), payload.len());
        assert_eq!(status, ffi::ws_status::WS_OK);
        loop {
            let status = ffi::ws_poll_event(client.0, 10_000, &mut ev);
            assert_eq!(status, ffi::ws_status::WS_OK, "no echo");
            if ev.kind == ffi::ws_event_kind::WS_EVENT_BINARY {
                break;
            }
        }
        samples.push(t.elapsed());
    }
    median(samples)
}
