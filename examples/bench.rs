//! The benchmark of scripts/bench.sh (release build): every client against
//! one echo server in its own process on 127.0.0.1, in one run; one table
//! with ratios in bench/RESULTS.md and a chart of the same numbers in
//! bench/results.svg. Numbers, never assertions about speed: a client that
//! fails its workloads (a wrong echo, a missing message, a timeout) fails
//! the run, a slow one does not.
//!
//! One binary, several roles (the first argument):
//! - `run [--smoke] [--clients a,b] [--parts a,b] [--out DIR]`: the driver.
//!   Starts examples/echo_server.rs (tokio-tungstenite) and a raw TCP echo
//!   as processes, runs each client as a process of its own against them
//!   (`--clients`, default all: tcp raw api c node python kotlin okhttp
//!   ktor-cio ktor-okhttp), then the `--parts` (default all: clients idle
//!   wakeups storm outbox), and writes the results (default bench/; the
//!   smoke writes target/bench/smoke/). Sizes scale with BENCH_SCALE.
//! - `client tcp|raw|api URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW`: one
//!   of the Rust clients, speaking the protocol every client speaks (see
//!   bench/README.md): JSON lines on stdout.
//! - `tcp-echo`: a TCP server that sends back every byte it reads.
//! - `storm-server`: a WebSocket echo server that records when it accepts
//!   each connection and restarts on command (for the reconnect storm).
//! - `storm-clients N URL`, `idle N URL`, `wakeups URL SECS`,
//!   `outbox URL ALWAYS_COUNT BATCH_COUNT`: Tether measurements, each in a
//!   process of its own so that only the client side counts.
//!
//! Every loop is bounded in count and time; every address is 127.0.0.1;
//! the driver ends only the processes it started, by their pid.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tether::{Client, Error, Event, Options};
use tokio_tungstenite::tungstenite::Message;

const SMALL: usize = 64;
const LARGE: usize = 1 << 20;
/// Full sizes (BENCH_SCALE=1).
const RTT_COUNT: usize = 20_000;
const PIPE_COUNT: usize = 200_000;
/// 1 GiB: 200 × 1 MiB took 0.1 s at loopback speed, too short to measure
/// (the best of 5 such runs of tokio-tungstenite alone ranged from 2,025 to
/// 2,796 MB/s between two runs of the whole bench on a quiet machine).
const LARGE_COUNT: usize = 1_000;
/// Messages in flight at most, the same for every client. 8 × 1 MiB stays
/// under OkHttp's fixed 16 MiB send queue.
const PIPE_WINDOW: usize = 10_000;
const LARGE_WINDOW: usize = 8;
const IDLE_COUNTS: [usize; 3] = [1, 1_000, 10_000];
const WAKEUP_COUNTS: [usize; 2] = [1, 100];
const WAKEUP_SECS: u64 = 60;
const STORM_CLIENTS: usize = 1_000;
const OUTBOX_ALWAYS: usize = 2_000;
const OUTBOX_BATCH: usize = 50_000;
/// Tether's default `reconnect.max_delay_ms` (the storm runs the defaults).
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);
/// Bound of any one workload inside a client.
const LIMIT: Duration = Duration::from_secs(120);
/// Bound of one client process (all its workloads, warm-up included).
const PROCESS_LIMIT: Duration = Duration::from_secs(600);

/// Which build this is: the C client and the JNI library that bench.sh
/// built with it are in target/bench/{c,jni}/PROFILE/.
const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// Tether's options in the throughput runs: a queue big enough that it
/// never refuses within the window, pings off (as for every client).
const BENCH_OPTIONS: &str = r#"{"queue": {"max_messages": 100000, "max_bytes": 1073741824},
    "max_unpolled_bytes": 268435456, "ping_interval_ms": 0}"#;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        None | Some("run") => driver(rest),
        Some("client") => client_main(rest),
        Some("tcp-echo") => tcp_echo_server(),
        Some("storm-server") => storm_server(),
        Some("storm-clients") => storm_clients(arg(rest, 0), &arg::<String>(rest, 1)),
        Some("idle") => idle_memory(arg(rest, 0), &arg::<String>(rest, 1)),
        Some("wakeups") => idle_wakeups(&arg::<String>(rest, 0), arg(rest, 1)),
        Some("outbox") => outbox_runs(&arg::<String>(rest, 0), arg(rest, 1), arg(rest, 2)),
        Some(other) => {
            eprintln!("bench: unknown role {other:?} (run, client, tcp-echo, storm-server, storm-clients, idle, wakeups, outbox)");
            std::process::exit(2);
        }
    }
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("bench: argument {} missing or malformed: {args:?}", i + 1))
}

/// One JSON line on stdout (the protocol between the clients and the driver).
fn emit(value: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Exits when stdin closes (the driver ended, or dropped our handle), or
/// after `max` in any case.
fn exit_with_stdin(max: Duration) {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while let Ok(n) = std::io::stdin().read(&mut sink) {
            if n == 0 {
                break;
            }
        }
        std::process::exit(0);
    });
    std::thread::spawn(move || {
        std::thread::sleep(max);
        eprintln!("bench: {} s reached, exiting", max.as_secs());
        std::process::exit(2);
    });
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// User + system CPU time of this process so far, in seconds (getrusage).
fn cpu_secs() -> f64 {
    #[repr(C)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }
    #[repr(C)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        rest: [i64; 14],
    }
    extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    let mut usage = std::mem::MaybeUninit::<Rusage>::zeroed();
    // SAFETY: RUSAGE_SELF (0) and a buffer of the kernel's struct rusage
    // (Linux, 64-bit: two timevals and 14 longs); it is fully written on
    // success and was zeroed before in any case.
    let usage = unsafe {
        getrusage(0, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: &Timeval| t.sec as f64 + t.usec as f64 / 1e6;
    secs(&usage.utime) + secs(&usage.stime)
}

// ======================================================================
// The clients' side: every client speaks this protocol
// ======================================================================
//
// Arguments: URL RTT PIPE PIPE_WINDOW LARGE LARGE_WINDOW. Each workload
// runs once at a tenth of its size (warm-up, the same for every client),
// then measured, each on a connection of its own opened before the clock
// starts. Output, one JSON object a line:
//   {"version": "..."}
//   {"workload": "rtt", "n": N, "p50_us": x, "p99_us": y}
//   {"workload": "pipelined", "n": N, "secs": s, "cpu_secs": c}
//   {"workload": "large", "n": N, "secs": s, "cpu_secs": c}
// A wrong or missing echo, or a workload past its time, exits non-zero.

struct Params {
    url: String,
    rtt: usize,
    pipe: usize,
    pipe_window: usize,
    large: usize,
    large_window: usize,
}

impl Params {
    fn parse(args: &[String]) -> Params {
        Params {
            url: arg(args, 0),
            rtt: arg(args, 1),
            pipe: arg(args, 2),
            pipe_window: arg(args, 3),
            large: arg(args, 4),
            large_window: arg(args, 5),
        }
    }
}

/// What each Rust client implements: sequential round trips of 64 B texts
/// (the time of each), and a pipelined stream of `n` messages of `size`
/// bytes (text for 64 B, binary for 1 MiB) with at most `window` in flight.
trait BenchClient {
    fn round_trips(&mut self, url: &str, n: usize) -> Vec<Duration>;
    fn stream(&mut self, url: &str, size: usize, n: usize, window: usize) -> Duration;
}

fn client_main(args: &[String]) {
    let kind: String = arg(args, 0);
    let p = Params::parse(&args[1..]);
    let lock = include_str!("../Cargo.lock");
    let (mut client, version): (Box<dyn BenchClient>, String) = match kind.as_str() {
        "tcp" => (
            Box::new(TcpClient),
            "raw TCP client, std::net, two threads".to_string(),
        ),
        "raw" => (
            Box::new(RawClient::new()),
            format!(
                "tokio-tungstenite {}, tokio {} (current-thread runtime)",
                lock_version(lock, "tokio-tungstenite"),
                lock_version(lock, "tokio"),
            ),
        ),
        "api" => (
            Box::new(TetherClient),
            format!(
                "tether {} (Rust API; tokio-tungstenite {})",
                env!("CARGO_PKG_VERSION"),
                lock_version(lock, "tokio-tungstenite")
            ),
        ),
        other => panic!("bench client: unknown kind {other:?} (tcp, raw, api)"),
    };
    emit(json!({ "version": version }));
    let warm = |n: usize| (n / 10).max(1);
    client.round_trips(&p.url, warm(p.rtt));
    client.stream(&p.url, SMALL, warm(p.pipe), p.pipe_window);
    client.stream(&p.url, LARGE, warm(p.large), p.large_window);

    let mut samples = client.round_trips(&p.url, p.rtt);
    assert_eq!(samples.len(), p.rtt);
    samples.sort();
    let pct = |q: usize| samples[(samples.len() * q / 100).min(samples.len() - 1)];
    emit(json!({
        "workload": "rtt", "n": p.rtt,
        "p50_us": pct(50).as_secs_f64() * 1e6, "p99_us": pct(99).as_secs_f64() * 1e6,
    }));
    for (workload, size, n, window) in [
        ("pipelined", SMALL, p.pipe, p.pipe_window),
        ("large", LARGE, p.large, p.large_window),
    ] {
        let cpu = cpu_secs();
        let elapsed = client.stream(&p.url, size, n, window);
        let cpu = cpu_secs() - cpu;
        emit(json!({
            "workload": workload, "n": n, "secs": elapsed.as_secs_f64(), "cpu_secs": cpu,
        }));
    }
}

/// The version of `name` in Cargo.lock.
fn lock_version(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| {
            let rest = &lock[at + needle.len()..];
            rest.find('"').map(|end| rest[..end].to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// The text payload of the 64 B workloads, and the binary one of 1 MiB.
fn payload(size: usize) -> Vec<u8> {
    if size == SMALL {
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_".to_vec()
    } else {
        (0..size).map(|i| (i % 251) as u8).collect()
    }
}

fn check_echo(size: usize, text: bool, got: &[u8], expected: &[u8]) {
    assert_eq!(got.len(), size, "echo of the wrong length");
    assert_eq!(text, size == SMALL, "echo of the wrong kind (text/binary)");
    if size == SMALL {
        assert_eq!(got, expected, "echo with other bytes");
    } else {
        assert!(
            got[0] == expected[0] && got[size - 1] == expected[size - 1],
            "echo with other bytes"
        );
    }
}

// ---- raw tokio-tungstenite (the ceiling)

type RawWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

struct RawClient {
    rt: tokio::runtime::Runtime,
}

impl RawClient {
    fn new() -> RawClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        RawClient { rt }
    }
}

async fn raw_connect(url: &str) -> RawWs {
    let addr = url.trim_start_matches("ws://").split('/').next().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tokio_tungstenite::client_async(url, tcp).await.unwrap().0
}

fn raw_message(size: usize) -> Message {
    if size == SMALL {
        Message::text(String::from_utf8(payload(size)).unwrap())
    } else {
        Message::binary(payload(size))
    }
}

impl BenchClient for RawClient {
    fn round_trips(&mut self, url: &str, n: usize) -> Vec<Duration> {
        self.rt.block_on(async {
            let mut ws = raw_connect(url).await;
            let expected = payload(SMALL);
            let message = raw_message(SMALL);
            let mut samples = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                ws.send(message.clone()).await.unwrap();
                match tokio::time::timeout(LIMIT, ws.next()).await {
                    Ok(Some(Ok(Message::Text(got)))) => {
                        check_echo(SMALL, true, got.as_bytes(), &expected)
                    }
                    other => panic!("raw client: {other:?}"),
                }
                samples.push(t.elapsed());
            }
            let _ = ws.close(None).await;
            samples
        })
    }

    fn stream(&mut self, url: &str, size: usize, n: usize, window: usize) -> Duration {
        self.rt.block_on(async {
            let (mut tx, mut rx) = raw_connect(url).await.split();
            let expected = payload(size);
            let message = raw_message(size);
            let got = std::cell::Cell::new(0usize);
            let more = tokio::sync::Notify::new();
            let start = Instant::now();
            let writer = async {
                let mut sent = 0;
                while sent < n {
                    while sent < n && sent - got.get() < window {
                        tx.feed(message.clone()).await.unwrap();
                        sent += 1;
                        if sent % 64 == 0 {
                            tx.flush().await.unwrap();
                        }
                    }
                    tx.flush().await.unwrap();
                    if sent < n {
                        more.notified().await;
                    }
                }
                tx
            };
            let reader = async {
                while got.get() < n {
                    match rx.next().await {
                        Some(Ok(Message::Text(t))) => {
                            check_echo(size, true, t.as_bytes(), &expected)
                        }
                        Some(Ok(Message::Binary(b))) => check_echo(size, false, &b, &expected),
                        Some(Ok(_)) => continue,
                        other => panic!("raw client: {other:?}"),
                    }
                    got.set(got.get() + 1);
                    more.notify_one();
                }
            };
            let (mut tx, ()) = tokio::time::timeout(LIMIT, async { tokio::join!(writer, reader) })
                .await
                .expect("raw client: stream timed out");
            let elapsed = start.elapsed();
            let _ = tx.close().await;
            elapsed
        })
    }
}

// ---- Tether, Rust API

struct TetherClient;

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

impl BenchClient for TetherClient {
    fn round_trips(&mut self, url: &str, n: usize) -> Vec<Duration> {
        let client = tether_client(url);
        let text = String::from_utf8(payload(SMALL)).unwrap();
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            client.send_text(&text).unwrap();
            loop {
                match client.poll_event(Some(LIMIT)).unwrap() {
                    Some(Event::Text(got)) => {
                        check_echo(SMALL, true, got.as_bytes(), text.as_bytes());
                        break;
                    }
                    Some(Event::Binary(_)) => panic!("a binary echo of a text"),
                    Some(_) => {}
                    None => panic!("no echo"),
                }
            }
            samples.push(t.elapsed());
        }
        client.close(1000, "").unwrap();
        samples
    }

    fn stream(&mut self, url: &str, size: usize, n: usize, window: usize) -> Duration {
        let client = tether_client(url);
        let expected = payload(size);
        let text = String::from_utf8(expected.clone()).unwrap_or_default();
        let (mut sent, mut got) = (0, 0);
        let start = Instant::now();
        while got < n {
            assert!(start.elapsed() < LIMIT, "tether stream timed out");
            while sent < n && sent - got < window {
                let result = if size == SMALL {
                    client.send_text(&text)
                } else {
                    client.send_binary(&expected)
                };
                match result {
                    Ok(()) => sent += 1,
                    Err(Error::QueueFull(_)) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            // Drain what is there, then wait for at least one more.
            let mut timeout = Some(Duration::from_secs(10));
            while let Some(event) = client.poll_event(timeout).unwrap() {
                match event {
                    Event::Text(t) => check_echo(size, true, t.as_bytes(), &expected),
                    Event::Binary(b) => check_echo(size, false, &b, &expected),
                    _ => continue,
                }
                got += 1;
                timeout = Some(Duration::ZERO);
            }
        }
        let elapsed = start.elapsed();
        client.close(1000, "").unwrap();
        elapsed
    }
}

// ---- raw TCP: the same framed bytes to a TCP echo (the physical limit)

struct TcpClient;

/// A client frame as any WebSocket client writes it: FIN + opcode, the
/// masked length, a masking key, the masked payload.
fn client_frame(size: usize) -> Vec<u8> {
    let opcode = if size == SMALL { 0x81 } else { 0x82 };
    let mut frame = vec![opcode];
    match size {
        0..=125 => frame.push(0x80 | size as u8),
        126..=65_535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(size as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    frame.extend_from_slice(&key);
    frame.extend(
        payload(size)
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4]),
    );
    frame
}

fn tcp_connect(url: &str) -> std::net::TcpStream {
    let addr = url.trim_start_matches("tcp://").trim_end_matches('/');
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(LIMIT)).unwrap();
    tcp.set_write_timeout(Some(LIMIT)).unwrap();
    tcp
}

impl BenchClient for TcpClient {
    fn round_trips(&mut self, url: &str, n: usize) -> Vec<Duration> {
        let mut tcp = tcp_connect(url);
        let frame = client_frame(SMALL);
        let mut back = vec![0u8; frame.len()];
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            tcp.write_all(&frame).unwrap();
            tcp.read_exact(&mut back).unwrap();
            samples.push(t.elapsed());
            assert_eq!(back, frame, "tcp echo with other bytes");
        }
        samples
    }

    fn stream(&mut self, url: &str, size: usize, n: usize, window: usize) -> Duration {
        let mut tcp = tcp_connect(url);
        let frame = client_frame(size);
        let per_write = (64 * 1024 / frame.len()).clamp(1, 64);
        let batch: Vec<u8> = frame.repeat(per_write);
        let frame_len = frame.len();
        let got = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let writer = {
            let (mut tcp, got) = (tcp.try_clone().unwrap(), got.clone());
            std::thread::spawn(move || {
                let mut sent = 0;
                while sent < n {
                    assert!(start.elapsed() < LIMIT, "tcp stream timed out");
                    let room = window.saturating_sub(sent - got.load(Ordering::Acquire));
                    if room == 0 {
                        std::thread::park_timeout(Duration::from_millis(10));
                        continue;
                    }
                    let k = room.min(n - sent).min(per_write);
                    tcp.write_all(&batch[..k * frame_len]).unwrap();
                    sent += k;
                }
            })
        };
        let total = n * frame.len();
        let mut buf = vec![0u8; 256 * 1024];
        let (mut read, mut checked) = (0, false);
        while read < total {
            let k = tcp.read(&mut buf).unwrap();
            assert!(k > 0, "tcp echo closed early");
            if !checked && k >= frame.len().min(4096) {
                let m = k.min(frame.len());
                assert_eq!(buf[..m], frame[..m], "tcp echo with other bytes");
                checked = true;
            }
            read += k;
            got.store(read / frame.len(), Ordering::Release);
            writer.thread().unpark();
        }
        let elapsed = start.elapsed();
        writer.join().unwrap();
        assert_eq!(read, total, "tcp echo sent more than it got");
        elapsed
    }
}

/// The TCP echo: sends back every byte, on one thread (like the
/// WebSocket echo server). Prints `PORT <n>`; exits when stdin closes.
fn tcp_echo_server() {
    exit_with_stdin(Duration::from_secs(3_600));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        say(&format!("PORT {}", listener.local_addr().unwrap().port()));
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(k) = tcp.read(&mut buf).await {
                    if k == 0 || tcp.write_all(&buf[..k]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

// ======================================================================
// Tether measurements in processes of their own
// ======================================================================

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

/// Resident memory per idle connection, client side only: `count` Open
/// connections (pings off), against the RSS before the first.
fn idle_memory(count: usize, url: &str) {
    let before = resident_kib();
    let clients = open_idle_clients(url, count, r#"{"ping_interval_ms": 0}"#);
    std::thread::sleep(Duration::from_millis(500));
    let after = resident_kib();
    emit(json!({
        "n": count,
        "kib_per_conn": after.saturating_sub(before) as f64 / count as f64,
    }));
    drop(clients);
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Process wakeups per idle minute with 30 s pings, for 1 and for 100 Open
/// connections: the context switches (voluntary + nonvoluntary) of every
/// thread of this process but the measuring one, which sleeps through the
/// window of `secs`.
fn idle_wakeups(url: &str, secs: u64) {
    const SETTLE: Duration = Duration::from_secs(2);
    for count in WAKEUP_COUNTS {
        let clients = open_idle_clients(url, count, r#"{"ping_interval_ms": 30000}"#);
        // Let the handshakes' and earlier runs' closing traffic die down.
        std::thread::sleep(SETTLE);
        let me = own_tid();
        let before = thread_switches();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(secs.clamp(1, 3_600)));
        let elapsed = start.elapsed();
        let after = thread_switches();
        drop(clients);
        let switches: u64 = after
            .iter()
            .filter(|(tid, _)| **tid != me)
            .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
            .sum();
        let ended = before.keys().filter(|t| !after.contains_key(t)).count();
        emit(json!({
            "n": count,
            "secs": elapsed.as_secs_f64(),
            "per_minute": switches as f64 * 60.0 / elapsed.as_secs_f64(),
            "threads_ended": ended,
        }));
    }
}

/// Context switches (voluntary + nonvoluntary) of each thread of this
/// process, by thread id.
fn thread_switches() -> HashMap<u64, u64> {
    let mut switches = HashMap::new();
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

fn outbox_runs(url: &str, always: usize, batch: usize) {
    for (fsync, count) in [("always", always), ("batch", batch)] {
        for senders in [1, 4] {
            outbox_throughput(url, fsync, senders, count);
        }
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
    let client = Arc::new(Client::connect(url, options).unwrap());
    wait_open(&client);
    let text = String::from_utf8(payload(SMALL)).unwrap();
    let count = count / senders * senders;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..senders {
            let (client, text) = (client.clone(), text.as_str());
            scope.spawn(move || {
                for _ in 0..count / senders {
                    client.send_text(text).unwrap();
                }
            });
        }
    });
    let accepted = start.elapsed();
    let (deadline, mut echoes) = (Instant::now() + LIMIT, 0);
    while client.outbox_pending().unwrap() > 0 || echoes < count {
        assert!(Instant::now() < deadline, "the outbox never drained");
        while let Ok(Some(event)) = client.poll_event(Some(Duration::from_millis(1))) {
            if let Event::Text(t) = event {
                assert_eq!(t.as_bytes(), text.as_bytes(), "outbox: a wrong echo");
                echoes += 1;
            }
        }
    }
    let delivered = start.elapsed();
    emit(json!({
        "fsync": fsync, "senders": senders, "n": count,
        "accepted_per_sec": count as f64 / accepted.as_secs_f64(),
        "delivered_per_sec": count as f64 / delivered.as_secs_f64(),
    }));
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the reconnect storm

/// A WebSocket echo server (tokio-tungstenite) that records the time of
/// every accepted connection. Prints `PORT <n>`, then obeys stdin:
/// `restart` drops every connection without a close handshake, stops
/// listening and listens again on the same port at once (`restarted <unix
/// µs>`); `accepts` prints the accept times since the last restart as a
/// JSON array of unix µs. Exits when stdin closes.
fn storm_server() {
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(3_600));
        std::process::exit(2);
    });
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_string()).is_err() {
                break;
            }
        }
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let accepts = Arc::new(Mutex::new(Vec::<u64>::new()));
        let mut addr: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut server = storm_listen(&mut addr, accepts.clone());
        say(&format!("PORT {}", addr.port()));
        while let Some(command) = commands.recv().await {
            match command.as_str() {
                "restart" => {
                    server.abort();
                    let _ = server.await;
                    let at = unix_us();
                    accepts.lock().unwrap().clear();
                    server = storm_listen(&mut addr, accepts.clone());
                    say(&format!("restarted {at}"));
                }
                "accepts" => say(&serde_json::to_string(&*accepts.lock().unwrap()).unwrap()),
                _ => say("unknown command"),
            }
        }
    });
}

/// Listens on `addr` (port 0: any, then written back), serving each
/// connection as an echo in a task that ends with the returned one.
fn storm_listen(
    addr: &mut std::net::SocketAddr,
    accepts: Arc<Mutex<Vec<u64>>>,
) -> tokio::task::JoinHandle<()> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = socket.bind(*addr) {
        assert!(Instant::now() < deadline, "cannot bind {addr}: {e}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A backlog as a production server has: the storm should not be
    // shaped by SYN retries.
    let listener = socket.listen(4096).unwrap();
    *addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            accepts.lock().unwrap().push(unix_us());
            let _ = tcp.set_nodelay(true);
            connections.spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            });
            while connections.try_join_next().is_some() {}
        }
        // Aborting this task drops `connections`, which aborts them all.
    })
}

/// `count` Tether clients with the default reconnect options. Prints
/// `OPEN` once all are open; then waits until each has lost its
/// connection and opened again, and prints
/// `{"n", "reopened", "last_open_unix_us"}`.
fn storm_clients(count: usize, url: &str) {
    exit_with_stdin(Duration::from_secs(3_600));
    let clients = open_idle_clients(url, count, "{}");
    say("OPEN");
    // 0: open, waiting for the drop; 1: dropped; 2: open again.
    let mut phase = vec![0u8; count];
    let (mut reopened, mut last_open) = (0, 0);
    let deadline = Instant::now() + DEFAULT_MAX_DELAY + Duration::from_secs(60);
    while reopened < count && Instant::now() < deadline {
        let mut any = false;
        for (client, phase) in clients.iter().zip(phase.iter_mut()) {
            while let Ok(Some(event)) = client.poll_event(Some(Duration::ZERO)) {
                any = true;
                match event {
                    Event::Closed { .. } | Event::Reconnecting { .. } if *phase == 0 => *phase = 1,
                    Event::Open { .. } if *phase == 1 => {
                        *phase = 2;
                        reopened += 1;
                        last_open = unix_us();
                    }
                    _ => {}
                }
            }
        }
        if !any {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    emit(json!({ "n": count, "reopened": reopened, "last_open_unix_us": last_open }));
    // Closing 1,000 clients politely takes a while: the driver has its answer.
    std::process::exit(0);
}

// ======================================================================
// The driver
// ======================================================================

#[derive(Clone, Copy, PartialEq)]
enum Group {
    Native,
    Jvm,
}

struct Spec {
    key: &'static str,
    label: &'static str,
    group: Group,
}

const CLIENTS: &[Spec] = &[
    Spec {
        key: "tcp",
        label: "raw TCP, same bytes (the limit)",
        group: Group::Native,
    },
    Spec {
        key: "raw",
        label: "tokio-tungstenite (the ceiling)",
        group: Group::Native,
    },
    Spec {
        key: "api",
        label: "Tether, Rust API",
        group: Group::Native,
    },
    Spec {
        key: "c",
        label: "Tether, C ABI (C program)",
        group: Group::Native,
    },
    Spec {
        key: "node",
        label: "Node ws",
        group: Group::Native,
    },
    Spec {
        key: "python",
        label: "Python websockets",
        group: Group::Native,
    },
    Spec {
        key: "kotlin",
        label: "Tether, Kotlin façade (JVM)",
        group: Group::Jvm,
    },
    Spec {
        key: "okhttp",
        label: "OkHttp 5 (JVM)",
        group: Group::Jvm,
    },
    Spec {
        key: "ktor-cio",
        label: "Ktor client, CIO engine (JVM)",
        group: Group::Jvm,
    },
    Spec {
        key: "ktor-okhttp",
        label: "Ktor client, OkHttp engine (JVM)",
        group: Group::Jvm,
    },
];

const PARTS: &[&str] = &["clients", "idle", "wakeups", "storm", "outbox"];

struct Plan {
    smoke: bool,
    scale: f64,
    rounds: usize,
    rtt: usize,
    pipe: usize,
    large: usize,
    idle: Vec<usize>,
    wakeup_secs: u64,
    storm: usize,
    outbox_always: usize,
    outbox_batch: usize,
}

impl Plan {
    fn new(smoke: bool) -> Plan {
        let scale: f64 = std::env::var("BENCH_SCALE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|s: &f64| *s > 0.0 && *s <= 10.0)
            .unwrap_or(if smoke { 0.002 } else { 1.0 });
        let n = |full: usize, min: usize| ((full as f64 * scale).round() as usize).max(min);
        let rounds = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if smoke { 1 } else { 3 })
            .clamp(1, 10);
        let wakeup_secs = std::env::var("BENCH_WAKEUP_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| (WAKEUP_SECS as f64 * scale).round() as u64)
            .clamp(1, 3_600);
        Plan {
            smoke,
            scale,
            rounds,
            rtt: n(RTT_COUNT, 10),
            pipe: n(PIPE_COUNT, 100),
            large: n(LARGE_COUNT, 2),
            idle: IDLE_COUNTS.iter().map(|&c| n(c, 1)).collect(),
            wakeup_secs,
            storm: n(STORM_CLIENTS, 10),
            outbox_always: n(OUTBOX_ALWAYS, 10),
            outbox_batch: n(OUTBOX_BATCH, 50),
        }
    }
}

/// A process the driver started: its stdout, line by line.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Proc {
    fn start(name: &str, cmd: &[String], envs: &[(&str, String)]) -> Result<Proc, String> {
        let mut command = Command::new(&cmd[0]);
        command
            .args(&cmd[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("{name}: cannot start {}: {e}", cmd[0]))?;
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            lines,
            name: name.to_string(),
        })
    }

    fn line(&self, within: Duration) -> Result<String, String> {
        self.lines
            .recv_timeout(within)
            .map_err(|_| format!("{}: no answer within {} s", self.name, within.as_secs()))
    }

    fn port(&self) -> Result<u16, String> {
        let line = self.line(Duration::from_secs(60))?;
        line.strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .ok_or_else(|| format!("{}: expected a PORT line, got {line:?}", self.name))
    }

    fn tell(&mut self, command: &str) -> Result<(), String> {
        let stdin = self.child.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: {e}", self.name))
    }

    /// Waits for the end (killing it, by its pid, past `limit`); the JSON
    /// lines it printed, or why it failed.
    fn finish(mut self, limit: Duration) -> Result<Vec<Value>, String> {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("{}: killed after {} s", self.name, limit.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let values: Vec<Value> = self
            .lines
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        if !status.success() {
            return Err(format!("{}: {status}", self.name));
        }
        Ok(values)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Servers exit when their stdin closes; a client still running is
        // ended by its pid.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client's numbers, best over the rounds.
#[derive(Default, Clone)]
struct Numbers {
    version: String,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    msgs_per_sec: Option<f64>,
    cpu_us_per_msg: Option<f64>,
    mb_per_sec: Option<f64>,
    failure: Option<String>,
}

fn best(a: Option<f64>, b: f64, higher_is_better: bool) -> Option<f64> {
    Some(match a {
        None => b,
        Some(a) if higher_is_better => a.max(b),
        Some(a) => a.min(b),
    })
}

struct Driver {
    root: PathBuf,
    artifacts: PathBuf,
    plan: Plan,
    ws_url: String,
    tcp_url: String,
    failures: Vec<String>,
}

fn driver(args: &[String]) {
    let smoke = args.iter().any(|a| a == "--smoke");
    let list = |flag: &str| -> Option<Vec<String>> {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
    };
    // Bare words pick too (`scripts/bench.sh outbox`, `… c raw`): client
    // keys pick clients, other words parts.
    let words: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--")
                && (*i == 0 || !["--clients", "--parts", "--out"].contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a)
        .collect();
    for w in &words {
        assert!(
            CLIENTS.iter().any(|c| c.key == w.as_str()) || PARTS.contains(&w.as_str()),
            "unknown client or part {w:?}: clients {:?}, parts {PARTS:?}",
            CLIENTS.iter().map(|c| c.key).collect::<Vec<_>>()
        );
    }
    let word_clients: Vec<String> = words
        .iter()
        .filter(|w| CLIENTS.iter().any(|c| c.key == w.as_str()))
        .map(|w| w.to_string())
        .collect();
    let mut word_parts: Vec<String> = words
        .iter()
        .filter(|w| PARTS.contains(&w.as_str()))
        .map(|w| w.to_string())
        .collect();
    if !word_clients.is_empty() {
        word_parts.push("clients".into());
    }
    let keys = list("--clients").or((!word_clients.is_empty()).then_some(word_clients));
    let clients: Vec<&Spec> = match keys {
        Some(keys) => {
            for k in &keys {
                assert!(CLIENTS.iter().any(|c| c.key == k), "unknown client {k:?}");
            }
            CLIENTS
                .iter()
                .filter(|c| keys.iter().any(|k| k == c.key))
                .collect()
        }
        None => CLIENTS.iter().collect(),
    };
    let parts: Vec<String> = list("--parts")
        .or((!word_parts.is_empty()).then_some(word_parts))
        .unwrap_or_else(|| PARTS.iter().map(|p| p.to_string()).collect());
    for p in &parts {
        assert!(
            PARTS.contains(&p.as_str()),
            "unknown part {p:?} ({PARTS:?})"
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let artifacts = std::env::var_os("BENCH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/bench"));
    let plan = Plan::new(smoke);
    // Only a whole run at full size replaces bench/RESULTS.md.
    let whole = clients.len() == CLIENTS.len() && parts.len() == PARTS.len();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            if smoke {
                artifacts.join("smoke")
            } else if !whole || plan.scale != 1.0 {
                artifacts.join("partial")
            } else {
                root.join("bench")
            }
        });
    let started = Instant::now();
    let load_before = loadavg();
    println!(
        "bench: scale {} ({} round trips, {} × 64 B, {} × 1 MiB; best of {} round(s)); load average {load_before}",
        plan.scale, plan.rtt, plan.pipe, plan.large, plan.rounds
    );
    let echo_exe = std::env::current_exe()
        .unwrap()
        .with_file_name("echo_server");
    let echo = Proc::start(
        "echo_server",
        &[
            echo_exe.display().to_string(),
            "--max-seconds".into(),
            "7200".into(),
        ],
        &[],
    )
    .unwrap_or_else(|e| panic!("{e} (scripts/bench.sh builds it)"));
    let tcp_echo = Proc::start(
        "tcp-echo",
        &[
            std::env::current_exe().unwrap().display().to_string(),
            "tcp-echo".into(),
        ],
        &[],
    )
    .unwrap();
    let ws_url = format!("ws://127.0.0.1:{}/", echo.port().unwrap());
    let tcp_url = format!("tcp://127.0.0.1:{}", tcp_echo.port().unwrap());
    println!(
        "echo server: examples/echo_server.rs (tokio-tungstenite) at {ws_url}, pid {}",
        echo.child.id()
    );
    let mut d = Driver {
        root,
        artifacts,
        plan,
        ws_url,
        tcp_url,
        failures: Vec::new(),
    };
    let runs = |p: &str| parts.iter().any(|x| x == p);
    let mut numbers: Vec<(&Spec, Numbers)> =
        clients.iter().map(|c| (*c, Numbers::default())).collect();
    if runs("clients") {
        for round in 0..d.plan.rounds {
            for (spec, n) in numbers.iter_mut() {
                println!("round {}/{}: {} …", round + 1, d.plan.rounds, spec.label);
                d.run_client(spec, n);
            }
        }
    }
    let mut other = Other::default();
    if runs("idle") {
        for &count in &d.plan.idle.clone() {
            println!("idle: {count} connection(s) …");
            let cmd = d.self_cmd(&["idle", &count.to_string(), &d.ws_url]);
            match d.measure(&format!("idle {count}"), &cmd) {
                Some(v) => other
                    .idle
                    .push((count, v[0]["kib_per_conn"].as_f64().unwrap_or(f64::NAN))),
                None => other.idle.push((count, f64::NAN)),
            }
        }
    }
    if runs("wakeups") {
        println!(
            "wakeups: 1 and 100 idle connections, {} s each …",
            d.plan.wakeup_secs
        );
        let cmd = d.self_cmd(&["wakeups", &d.ws_url, &d.plan.wakeup_secs.to_string()]);
        if let Some(v) = d.measure("wakeups", &cmd) {
            other.wakeups = v
                .iter()
                .map(|w| {
                    (
                        w["n"].as_u64().unwrap_or(0) as usize,
                        w["per_minute"].as_f64().unwrap_or(f64::NAN),
                    )
                })
                .collect();
        }
    }
    if runs("storm") {
        println!("storm: {} clients, server restart …", d.plan.storm);
        match d.storm() {
            Ok(s) => other.storm = Some(s),
            Err(e) => d.fail(e),
        }
    }
    if runs("outbox") {
        println!("outbox …");
        let cmd = d.self_cmd(&[
            "outbox",
            &d.ws_url,
            &d.plan.outbox_always.to_string(),
            &d.plan.outbox_batch.to_string(),
        ]);
        if let Some(v) = d.measure("outbox", &cmd) {
            other.outbox = v;
        }
    }
    drop(echo);
    drop(tcp_echo);
    let load_after = loadavg();
    let report = Report {
        d: &d,
        numbers: &numbers,
        other: &other,
        load: (load_before, load_after),
        elapsed: started.elapsed(),
    };
    let targets = report.targets();
    println!();
    println!("{}", report.table());
    println!("{}", report.other_table());
    println!(
        "targets (../shared/DESIGN.md, \"Performance budget\"){}:",
        if d.plan.smoke {
            " — smoke run: debug builds, tiny sizes, nothing is judged"
        } else {
            ""
        }
    );
    for t in &targets {
        println!("  {:<10} {} — {}", t.verdict(), t.what, t.measured);
    }
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("RESULTS.md"), report.markdown(&targets)).unwrap();
    std::fs::write(out.join("results.svg"), report.svg()).unwrap();
    if !d.plan.smoke && out == d.root.join("bench") {
        // The README quotes the results between its markers: keep it true.
        let readme = d.root.join("README.md");
        if let Ok(text) = std::fs::read_to_string(&readme) {
            if let Some(updated) = replace_between(
                &text,
                README_BEGIN,
                README_END,
                &report.readme_quote(&targets),
            ) {
                std::fs::write(&readme, updated).unwrap();
                println!("updated the quote of the results in {}", readme.display());
            }
        }
    }
    println!(
        "\nwrote {} and {} ({} s)",
        out.join("RESULTS.md").display(),
        out.join("results.svg").display(),
        started.elapsed().as_secs()
    );
    if !d.failures.is_empty() {
        eprintln!("\nbench: {} failure(s):", d.failures.len());
        for f in &d.failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}

#[derive(Default)]
struct Other {
    idle: Vec<(usize, f64)>,
    wakeups: Vec<(usize, f64)>,
    storm: Option<Storm>,
    outbox: Vec<Value>,
}

struct Storm {
    clients: usize,
    reopened: usize,
    all_open_after: Duration,
    accepts: usize,
    busiest_share: f64,
    /// The first and the last accept, after the restart.
    spread: (Duration, Duration),
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Driver {
    fn fail(&mut self, why: String) {
        eprintln!("bench: FAILED: {why}");
        self.failures.push(why);
    }

    fn self_cmd(&self, args: &[&str]) -> Vec<String> {
        let mut cmd = vec![std::env::current_exe().unwrap().display().to_string()];
        cmd.extend(args.iter().map(|a| a.to_string()));
        cmd
    }

    /// Runs a measurement process to its end; its JSON lines.
    fn measure(&mut self, name: &str, cmd: &[String]) -> Option<Vec<Value>> {
        let result = Proc::start(name, cmd, &[]).and_then(|p| p.finish(PROCESS_LIMIT));
        match result {
            Ok(v) if !v.is_empty() => Some(v),
            Ok(_) => {
                self.fail(format!("{name}: printed no result"));
                None
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// The command line of a client, without the protocol's arguments.
    fn client_cmd(&self, key: &str) -> Vec<String> {
        let art = |p: &str| self.artifacts.join(p).display().to_string();
        let src = |p: &str| self.root.join(p).display().to_string();
        match key {
            "tcp" | "raw" | "api" => self.self_cmd(&["client", key]),
            "c" => vec![art(&format!("c/{PROFILE}/bench_client"))],
            "node" => vec!["node".into(), src("bench/node/client.js")],
            "python" => vec![art("venv/bin/python"), src("bench/python/client.py")],
            jvm => {
                let classpath = std::fs::read_to_string(self.artifacts.join("jvm/classpath.txt"))
                    .unwrap_or_default();
                vec![
                    "java".into(),
                    format!(
                        "-Dtether.library={}",
                        art(&format!("jni/{PROFILE}/libtether.so"))
                    ),
                    "-cp".into(),
                    format!("{}:{}", art("jvm/classes"), classpath.trim()),
                    "dev.tether.bench.MainKt".into(),
                    jvm.into(),
                ]
            }
        }
    }

    fn run_client(&mut self, spec: &Spec, numbers: &mut Numbers) {
        let p = Sizes {
            rtt: self.plan.rtt,
            pipe: self.plan.pipe,
            large: self.plan.large,
        };
        let url = if spec.key == "tcp" {
            &self.tcp_url
        } else {
            &self.ws_url
        };
        let mut cmd = self.client_cmd(spec.key);
        cmd.extend([
            url.clone(),
            p.rtt.to_string(),
            p.pipe.to_string(),
            PIPE_WINDOW.to_string(),
            p.large.to_string(),
            LARGE_WINDOW.to_string(),
        ]);
        let result = Proc::start(spec.key, &cmd, &[]).and_then(|proc| proc.finish(PROCESS_LIMIT));
        let values = match result {
            Ok(v) => v,
            Err(e) => {
                numbers.failure = Some(e.clone());
                self.fail(e);
                return;
            }
        };
        let mut seen = Vec::new();
        for v in &values {
            if let Some(version) = v["version"].as_str() {
                numbers.version = version.to_string();
            }
            let workload = v["workload"].as_str().unwrap_or("");
            let n = v["n"].as_u64().unwrap_or(0) as usize;
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            let expected = match workload {
                "rtt" => {
                    numbers.p50_us = best(numbers.p50_us, f("p50_us"), false);
                    numbers.p99_us = best(numbers.p99_us, f("p99_us"), false);
                    p.rtt
                }
                "pipelined" => {
                    numbers.msgs_per_sec = best(numbers.msgs_per_sec, n as f64 / f("secs"), true);
                    numbers.cpu_us_per_msg = best(
                        numbers.cpu_us_per_msg,
                        f("cpu_secs") * 1e6 / n as f64,
                        false,
                    );
                    p.pipe
                }
                "large" => {
                    numbers.mb_per_sec = best(
                        numbers.mb_per_sec,
                        (n * LARGE) as f64 / f("secs") / 1e6,
                        true,
                    );
                    p.large
                }
                _ => continue,
            };
            if n != expected {
                let why = format!(
                    "{}: {workload} reported {n} messages, not {expected}",
                    spec.key
                );
                self.fail(why);
            }
            seen.push(workload.to_string());
        }
        for w in ["rtt", "pipelined", "large"] {
            if !seen.iter().any(|s| s == w) {
                let why = format!("{}: no {w} result", spec.key);
                numbers.failure = Some(why.clone());
                self.fail(why);
            }
        }
    }

    fn storm(&mut self) -> Result<Storm, String> {
        let mut server = Proc::start("storm-server", &self.self_cmd(&["storm-server"]), &[])?;
        let url = format!("ws://127.0.0.1:{}/", server.port()?);
        let n = self.plan.storm;
        let clients = Proc::start(
            "storm-clients",
            &self.self_cmd(&["storm-clients", &n.to_string(), &url]),
            &[],
        )?;
        let open = clients.line(Duration::from_secs(120))?;
        if open != "OPEN" {
            return Err(format!("storm-clients: expected OPEN, got {open:?}"));
        }
        server.tell("restart")?;
        let restarted = server.line(Duration::from_secs(60))?;
        let at: u64 = restarted
            .strip_prefix("restarted ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("storm-server: {restarted:?}"))?;
        let result = clients
            .finish(DEFAULT_MAX_DELAY + Duration::from_secs(120))?
            .pop()
            .ok_or("storm-clients: no result")?;
        server.tell("accepts")?;
        let accepts: Vec<u64> = serde_json::from_str(&server.line(Duration::from_secs(30))?)
            .map_err(|e| format!("storm-server accepts: {e}"))?;
        let reopened = result["reopened"].as_u64().unwrap_or(0) as usize;
        if reopened != n {
            self.fail(format!(
                "storm: only {reopened} of {n} clients opened again"
            ));
        }
        let last = result["last_open_unix_us"].as_u64().unwrap_or(at);
        let mut sorted = accepts.clone();
        sorted.sort_unstable();
        let mut busiest = 0;
        let mut j = 0;
        for i in 0..sorted.len() {
            while sorted[i] - sorted[j] >= 100_000 {
                j += 1;
            }
            busiest = busiest.max(i + 1 - j);
        }
        Ok(Storm {
            clients: n,
            reopened,
            all_open_after: Duration::from_micros(last.saturating_sub(at)),
            accepts: sorted.len(),
            busiest_share: busiest as f64 / sorted.len().max(1) as f64,
            spread: (
                Duration::from_micros(sorted.first().map_or(0, |t| t.saturating_sub(at))),
                Duration::from_micros(sorted.last().map_or(0, |t| t.saturating_sub(at))),
            ),
        })
    }
}

const README_BEGIN: &str = "<!-- bench/RESULTS.md quoted by scripts/bench.sh: begin -->";
const README_END: &str = "<!-- bench/RESULTS.md quoted by scripts/bench.sh: end -->";

/// `text` with what lies between the `begin` and `end` lines replaced by
/// `inner`; None without both markers.
fn replace_between(text: &str, begin: &str, end: &str, inner: &str) -> Option<String> {
    let start = text.find(begin)? + begin.len();
    let stop = start + text[start..].find(end)?;
    Some(format!("{}\n{inner}{}", &text[..start], &text[stop..]))
}

struct Sizes {
    rtt: usize,
    pipe: usize,
    large: usize,
}

// ---- the report

struct Report<'a> {
    d: &'a Driver,
    numbers: &'a [(&'a Spec, Numbers)],
    other: &'a Other,
    load: (String, String),
    elapsed: Duration,
}

struct Target {
    what: String,
    measured: String,
    met: Option<bool>,
}

impl Target {
    fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        }
    }
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "—".into(),
    }
}

fn fmt_count(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => {
            let s = format!("{:.0}", v);
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        _ => "—".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() && b.is_finite() => Some(a / b),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "—".into())
}

impl Report<'_> {
    fn get(&self, key: &str) -> Option<&Numbers> {
        self.numbers
            .iter()
            .find(|(s, n)| s.key == key && n.failure.is_none())
            .map(|(_, n)| n)
    }

    fn field(&self, key: &str, f: fn(&Numbers) -> Option<f64>) -> Option<f64> {
        self.get(key).and_then(f)
    }

    fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| client | RTT p50 µs | RTT p99 µs | 64 B msgs/s | 1 MiB MB/s | CPU µs/msg | × tokio-tungstenite (msgs/s, MB/s, CPU) | × OkHttp (msgs/s, MB/s) |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---|---|");
        let raw = self.get("raw");
        let ok = self.get("okhttp");
        for (spec, n) in self.numbers {
            if let Some(f) = &n.failure {
                let _ = writeln!(
                    t,
                    "| {} | failed: {} | | | | | | |",
                    spec.label,
                    f.replace('|', "/")
                );
                continue;
            }
            let vs_raw = match raw {
                Some(r) => format!(
                    "{}, {}, {}",
                    fmt_ratio(ratio(n.msgs_per_sec, r.msgs_per_sec)),
                    fmt_ratio(ratio(n.mb_per_sec, r.mb_per_sec)),
                    fmt_ratio(ratio(n.cpu_us_per_msg, r.cpu_us_per_msg))
                ),
                None => "—".into(),
            };
            let vs_ok = match (ok, spec.group) {
                (Some(o), Group::Jvm) => format!(
                    "{}, {}",
                    fmt_ratio(ratio(n.msgs_per_sec, o.msgs_per_sec)),
                    fmt_ratio(ratio(n.mb_per_sec, o.mb_per_sec))
                ),
                _ => "".into(),
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} | {} | {} | {} | {vs_raw} | {vs_ok} |",
                spec.label,
                fmt_opt(n.p50_us, 1),
                fmt_opt(n.p99_us, 1),
                fmt_count(n.msgs_per_sec),
                fmt_count(n.mb_per_sec),
                fmt_opt(n.cpu_us_per_msg, 2),
            );
        }
        t
    }

    fn other_table(&self) -> String {
        let o = self.other;
        let mut t = String::new();
        let _ = writeln!(t, "| Tether (Rust API), one process each | measured |");
        let _ = writeln!(t, "|---|---:|");
        for (n, kib) in &o.idle {
            let _ = writeln!(
                t,
                "| resident memory per idle connection, {} open{} | {} KiB |",
                fmt_count(Some(*n as f64)),
                if *n == 1 {
                    " (the first also starts Tether's runtime thread)"
                } else {
                    ""
                },
                fmt_opt(Some(*kib), 1)
            );
        }
        for (n, w) in &o.wakeups {
            let _ = writeln!(
                t,
                "| process wakeups per idle minute, {n} connection(s), 30 s pings ({} s window) | {} |",
                self.d.plan.wakeup_secs,
                fmt_opt(Some(*w), 1)
            );
        }
        if let Some(s) = &o.storm {
            let _ = writeln!(t, "| reconnect storm: {} clients after a server restart, all open again after | {:.2} s ({} of {} reopened) |", s.clients, s.all_open_after.as_secs_f64(), s.reopened, s.clients);
            let _ = writeln!(t, "| reconnect storm: largest share of the {} attempts (server accepts) in any 100 ms | {:.1} % |", s.accepts, s.busiest_share * 100.0);
            let _ = writeln!(
                t,
                "| reconnect storm: first and last attempt after the restart | {:.3} s, {:.3} s |",
                s.spread.0.as_secs_f64(),
                s.spread.1.as_secs_f64()
            );
        }
        for v in &o.outbox {
            let _ = writeln!(
                t,
                "| durable outbox, fsync {}, {} sender(s), {} × 64 B: accepted / delivered msgs/s | {} / {} |",
                v["fsync"].as_str().unwrap_or("?"),
                v["senders"],
                fmt_count(v["n"].as_f64()),
                fmt_count(v["accepted_per_sec"].as_f64()),
                fmt_count(v["delivered_per_sec"].as_f64()),
            );
        }
        t
    }

    fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        let mut ratio_target =
            |what: &str, a: Option<f64>, b: Option<f64>, min: Option<f64>, max: Option<f64>| {
                let r = ratio(a, b);
                out.push(Target {
                    what: what.to_string(),
                    measured: fmt_ratio(r),
                    met: r.map(|r| min.is_none_or(|m| r >= m) && max.is_none_or(|m| r <= m)),
                });
            };
        let f = |k: &str, g: fn(&Numbers) -> Option<f64>| self.field(k, g);
        let msgs = |n: &Numbers| n.msgs_per_sec;
        let mbs = |n: &Numbers| n.mb_per_sec;
        let cpu = |n: &Numbers| n.cpu_us_per_msg;
        let p50 = |n: &Numbers| n.p50_us;
        ratio_target(
            "C ABI ≥ 0.9× tokio-tungstenite, 64 B msgs/s",
            f("c", msgs),
            f("raw", msgs),
            Some(0.9),
            None,
        );
        ratio_target(
            "C ABI ≥ 0.9× tokio-tungstenite, 1 MiB MB/s",
            f("c", mbs),
            f("raw", mbs),
            Some(0.9),
            None,
        );
        ratio_target(
            "C ABI CPU per message ≤ 1.2× tokio-tungstenite",
            f("c", cpu),
            f("raw", cpu),
            None,
            Some(1.2),
        );
        ratio_target(
            "Kotlin ≥ 2× OkHttp, 64 B msgs/s",
            f("kotlin", msgs),
            f("okhttp", msgs),
            Some(2.0),
            None,
        );
        ratio_target(
            "Kotlin ≥ 2× OkHttp, 1 MiB MB/s",
            f("kotlin", mbs),
            f("okhttp", mbs),
            Some(2.0),
            None,
        );
        ratio_target(
            "Kotlin ≥ 1.5× Ktor CIO, 64 B msgs/s",
            f("kotlin", msgs),
            f("ktor-cio", msgs),
            Some(1.5),
            None,
        );
        ratio_target(
            "Kotlin ≥ 1.5× Ktor CIO, 1 MiB MB/s",
            f("kotlin", mbs),
            f("ktor-cio", mbs),
            Some(1.5),
            None,
        );
        ratio_target(
            "Kotlin p50 no worse than OkHttp's",
            f("kotlin", p50),
            f("okhttp", p50),
            None,
            Some(1.0),
        );
        ratio_target(
            "Kotlin p50 no worse than Ktor CIO's",
            f("kotlin", p50),
            f("ktor-cio", p50),
            None,
            Some(1.0),
        );
        // The one target stated as a difference.
        let (c, raw) = (f("c", p50), f("raw", p50));
        out.insert(
            3,
            Target {
                what: "C ABI p50 round trip within +10 µs of tokio-tungstenite".into(),
                measured: match (c, raw) {
                    (Some(c), Some(r)) => {
                        format!("{:+.1} µs ({c:.1} vs {r:.1}; {:.2}×)", c - r, c / r)
                    }
                    _ => "—".into(),
                },
                met: c.zip(raw).map(|(c, r)| c - r <= 10.0),
            },
        );
        let idle_max = self.d.plan.idle.last().copied().unwrap_or(0);
        let idle = self
            .other
            .idle
            .iter()
            .find(|(n, _)| *n == idle_max)
            .map(|(_, k)| *k)
            .filter(|k| k.is_finite());
        out.push(Target {
            what: format!(
                "≤ 12 KiB resident per idle connection at {} connections",
                fmt_count(Some(idle_max as f64))
            ),
            measured: idle
                .map(|k| format!("{k:.1} KiB ({:.2}× the budget)", k / 12.0))
                .unwrap_or_else(|| "—".into()),
            met: idle.map(|k| k <= 12.0),
        });
        let wake = self
            .other
            .wakeups
            .iter()
            .find(|(n, _)| *n == 1)
            .map(|(_, w)| *w)
            .filter(|w| w.is_finite());
        out.push(Target {
            what: "≤ 10 process wakeups a minute, one idle connection, 30 s pings".into(),
            measured: wake
                .map(|w| format!("{w:.1} ({:.2}× the budget)", w / 10.0))
                .unwrap_or_else(|| "—".into()),
            met: wake.map(|w| w <= 10.0),
        });
        let budget = DEFAULT_MAX_DELAY + Duration::from_secs(1);
        let storm = self.other.storm.as_ref();
        out.push(Target {
            what: format!(
                "storm: all {} reopened within max_delay + 1 s ({} s)",
                storm.map(|s| s.clients).unwrap_or(0),
                budget.as_secs()
            ),
            measured: storm
                .map(|s| {
                    format!(
                        "{:.2} s ({:.2}× the budget; {} of {} reopened)",
                        s.all_open_after.as_secs_f64(),
                        s.all_open_after.as_secs_f64() / budget.as_secs_f64(),
                        s.reopened,
                        s.clients
                    )
                })
                .unwrap_or_else(|| "—".into()),
            met: storm.map(|s| s.reopened == s.clients && s.all_open_after <= budget),
        });
        out.push(Target {
            what: "storm: no 100 ms window holds > 10 % of the attempts".into(),
            measured: storm
                .map(|s| {
                    format!(
                        "{:.1} % ({:.2}× the budget)",
                        s.busiest_share * 100.0,
                        s.busiest_share / 0.1
                    )
                })
                .unwrap_or_else(|| "—".into()),
            met: storm.map(|s| s.busiest_share <= 0.1),
        });
        out
    }

    /// What README.md quotes: the date and machine, the targets, and the
    /// main numbers.
    fn readme_quote(&self, targets: &[Target]) -> String {
        let mut q = String::new();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let _ = writeln!(
            q,
            "From [bench/RESULTS.md](bench/RESULTS.md) ({}, {cores} cores, load average {} at the start; the chart is [bench/results.svg](bench/results.svg)):\n",
            command_line(&["date", "-u", "+%Y-%m-%d"]),
            self.load.0
        );
        let _ = writeln!(q, "| target (DESIGN.md) | measured | |");
        let _ = writeln!(q, "|---|---|---|");
        for t in targets {
            let _ = writeln!(q, "| {} | {} | {} |", t.what, t.measured, t.verdict());
        }
        let _ = writeln!(q);
        let _ = writeln!(
            q,
            "| client | RTT p50 µs | 64 B msgs/s | 1 MiB MB/s | CPU µs/msg |"
        );
        let _ = writeln!(q, "|---|---:|---:|---:|---:|");
        for (spec, n) in self.numbers {
            if n.failure.is_some() {
                let _ = writeln!(q, "| {} | failed | | | |", spec.label);
                continue;
            }
            let _ = writeln!(
                q,
                "| {} | {} | {} | {} | {} |",
                spec.label,
                fmt_opt(n.p50_us, 1),
                fmt_count(n.msgs_per_sec),
                fmt_count(n.mb_per_sec),
                fmt_opt(n.cpu_us_per_msg, 2)
            );
        }
        q
    }

    fn markdown(&self, targets: &[Target]) -> String {
        let d = self.d;
        let p = &d.plan;
        let mut m = String::new();
        let _ = writeln!(m, "# Benchmark results\n");
        let _ = writeln!(
            m,
            "Written by `scripts/bench.sh{}` on {} in {} s. Do not edit: run it again.\n",
            if p.smoke { " --smoke" } else { "" },
            command_line(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
            self.elapsed.as_secs()
        );
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let loaded = self
            .load
            .0
            .split(' ')
            .chain(self.load.1.split(' '))
            .filter_map(|l| l.parse::<f64>().ok())
            .any(|l| l > cores as f64 * 0.75);
        let _ = writeln!(
            m,
            "Machine: {cores} cores ({}), {} GiB, Linux {}. Load average (1, 5, 15 min) {} at the start, {} at the end{}.\n",
            cpu_model(),
            mem_gib(),
            std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
            self.load.0,
            self.load.1,
            if loaded { ": a loaded machine, other work was running, so absolute numbers are low and noisy; the ratios of one run are what DESIGN.md judges" } else { "" }
        );
        let _ = writeln!(
            m,
            "{}Sizes (BENCH_SCALE={}): {} sequential round trips of 64 B texts; {} × 64 B texts pipelined; {} × 1 MiB binary messages pipelined. Each client is a process of its own; each workload runs once at a tenth of its size to warm up, then measured, on a connection of its own; {}.\n",
            if p.smoke { "**Smoke run: debug builds and tiny sizes; it checks that every client completes its workloads, and its numbers mean nothing.** " } else { "Release builds. " },
            p.scale,
            fmt_count(Some(p.rtt as f64)),
            fmt_count(Some(p.pipe as f64)),
            fmt_count(Some(p.large as f64)),
            if p.rounds > 1 { format!("the best of {} rounds (each round runs every client in turn) is shown", p.rounds) } else { "one round".into() }
        );
        let _ = writeln!(m, "![ratios](results.svg)\n");
        let _ = writeln!(m, "## Throughput, latency, CPU\n");
        let _ = writeln!(m, "{}", self.table());
        let _ = writeln!(
            m,
            "## Idle connections, wakeups, reconnect storm, durable outbox\n"
        );
        let _ = writeln!(m, "{}", self.other_table());
        let _ = writeln!(m, "## Targets (DESIGN.md, \"Performance budget\")\n");
        let _ = writeln!(m, "| target | measured | |");
        let _ = writeln!(m, "|---|---|---|");
        for t in targets {
            let _ = writeln!(m, "| {} | {} | {} |", t.what, t.measured, t.verdict());
        }
        let _ = writeln!(
            m,
            "\n## Settings (the same for every client where it applies)\n"
        );
        let settings = [
            String::from("Server: examples/echo_server.rs, tokio-tungstenite on one thread, in its own process on 127.0.0.1 (TCP_NODELAY), the same process for every client; the raw TCP row talks to a TCP echo (`bench tcp-echo`, one thread) instead, sending the same masked client frames and reading back as many bytes."),
            format!("In-flight windows: at most {} × 64 B and {LARGE_WINDOW} × 1 MiB messages sent and not yet echoed, for every client (8 MiB stays under OkHttp's fixed 16 MiB send queue).", fmt_count(Some(PIPE_WINDOW as f64))),
            "64 B workloads are text messages (UTF-8 checked on receipt by every library); the 1 MiB one is binary. Every echo is checked (length, kind, bytes; for 1 MiB the first and last byte).".into(),
            "Heartbeats off everywhere (Tether `ping_interval_ms` 0, OkHttp and Ktor no ping interval, Python `ping_interval=None`); no compression (Node `perMessageDeflate: false`, Python `compression=None`; the server offers none).".into(),
            "Tether (Rust API, C ABI): `queue.max_messages` 100,000, `queue.max_bytes` 1 GiB, `max_unpolled_bytes` 256 MiB, so that its queue never refuses within the window. Kotlin façade: the same options through TetherConfig, its default `incomingBuffer` (256 frames).".into(),
            "OkHttp 5: `writeTimeout` 60 s (default 10 s), `readTimeout` 0, pings off; sends from the measuring thread, receives on OkHttp's reader thread (a Semaphore holds the window).".into(),
            "Ktor client: WebSockets plugin with `channels { incoming = unlimited(); outgoing = unlimited() }` (its frame queues unbounded), pings off, `maxFrameSize` at its default (Int.MAX_VALUE; the OkHttp engine cannot change it); CIO engine with `requestTimeout = 0`, OkHttp engine with the same OkHttp 5 and timeouts as the OkHttp row.".into(),
            "JVM: one JDK for all four JVM clients (each in a JVM process of its own, same flags, default GC).".into(),
            "CPU µs/msg: user + system CPU time of the whole client process (getrusage(RUSAGE_SELF); Node `process.cpuUsage()`; the JVM's process CPU time) over the measured 64 B pipelined run, divided by its messages.".into(),
            format!("Idle memory: Tether's Rust API in a process of its own, N connections opened to the echo server with pings off, VmRSS after minus before, divided by N. Wakeups: the context switches of every thread of such a process but the sleeping measuring thread, with 30 s pings, over {} s.", p.wakeup_secs),
            "Reconnect storm: the clients (Tether's Rust API, default reconnect options: 1 s initial delay, 30 s max, ×2, jitter 0.5) in one process; a WebSocket echo server (`bench storm-server`, listen backlog 4096) drops every connection without a close handshake and listens again on the same port at once; time from that restart until the last client reported Open; attempts counted at the server by accept timestamps.".into(),
            "Outbox: `Client::send_text` with the durable outbox (SQLite), msgs/s until the last send returned (accepted) and until the outbox was empty (delivered: the server provably read them).".into(),
        ];
        for s in settings {
            let _ = writeln!(m, "- {s}");
        }
        let _ = writeln!(m, "\n## Versions\n");
        let _ = writeln!(
            m,
            "- Tether {} ({}), {}, {}",
            env!("CARGO_PKG_VERSION"),
            command_line(&[
                "git",
                "-C",
                &d.root.display().to_string(),
                "describe",
                "--always",
                "--dirty",
                "--abbrev=12"
            ]),
            command_line(&["rustc", "--version"]),
            command_line(&["gcc", "--version"]),
        );
        for (spec, n) in self.numbers {
            let _ = writeln!(
                m,
                "- {}: {}",
                spec.label,
                if n.version.is_empty() {
                    "—"
                } else {
                    &n.version
                }
            );
        }
        m
    }

    fn svg(&self) -> String {
        let native: Vec<(String, Option<f64>, Option<f64>)> = self
            .numbers
            .iter()
            .filter(|(s, _)| s.key != "raw")
            .map(|(s, n)| {
                let r = self.get("raw");
                (
                    s.label.to_string(),
                    ratio(n.msgs_per_sec, r.and_then(|r| r.msgs_per_sec)),
                    ratio(n.mb_per_sec, r.and_then(|r| r.mb_per_sec)),
                )
            })
            .collect();
        let jvm: Vec<(String, Option<f64>, Option<f64>)> = self
            .numbers
            .iter()
            .filter(|(s, _)| s.group == Group::Jvm && s.key != "okhttp")
            .map(|(s, n)| {
                let o = self.get("okhttp");
                (
                    s.label.to_string(),
                    ratio(n.msgs_per_sec, o.and_then(|o| o.msgs_per_sec)),
                    ratio(n.mb_per_sec, o.and_then(|o| o.mb_per_sec)),
                )
            })
            .collect();
        svg_chart(&[
            Panel {
                title: "Throughput × raw tokio-tungstenite (1× = the ceiling; the C ABI's target is 0.9×)",
                rows: &native,
                marks: &[1.0, 0.9],
                cap: 3.0,
            },
            Panel {
                title: "JVM clients: throughput × OkHttp 5 (the Kotlin façade's target is 2×)",
                rows: &jvm,
                marks: &[1.0, 2.0],
                cap: 6.0,
            },
        ])
    }
}

type Row = (String, Option<f64>, Option<f64>);

/// One panel of the chart: a title, its rows, reference lines (the first
/// is 1.0, drawn solid) and the ratio past which bars are cut (their label
/// still gives the value).
struct Panel<'a> {
    title: &'a str,
    rows: &'a [Row],
    marks: &'a [f64],
    cap: f64,
}

/// A horizontal bar chart, written by hand: two bars per row (the 64 B
/// msgs/s and the 1 MiB MB/s ratios).
fn svg_chart(panels: &[Panel]) -> String {
    const W: f64 = 900.0;
    const LABEL: f64 = 270.0;
    const PLOT: f64 = 540.0;
    const BAR: f64 = 13.0;
    const ROW: f64 = 2.0 * BAR + 12.0;
    const COLORS: [&str; 2] = ["#4c78a8", "#f58518"];
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let height: f64 = 40.0
        + panels
            .iter()
            .map(|p| 76.0 + p.rows.len() as f64 * ROW)
            .sum::<f64>();
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, name) in [
        "64 B texts pipelined (msgs/s)",
        "1 MiB binary pipelined (MB/s)",
    ]
    .iter()
    .enumerate()
    {
        let x = LABEL + i as f64 * 220.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="12" width="12" height="12" fill="{}"/><text x="{}" y="22">{name}</text>"#,
            COLORS[i],
            x + 16.0
        );
    }
    let mut y = 40.0;
    for panel in panels {
        let max = panel
            .rows
            .iter()
            .flat_map(|(_, a, b)| [*a, *b])
            .flatten()
            .chain(panel.marks.iter().copied())
            .fold(1.0f64, f64::max)
            .min(panel.cap)
            * 1.08;
        let x = |v: f64| LABEL + v.min(max) / max * PLOT;
        let _ = writeln!(
            s,
            r#"<text x="10" y="{}" font-weight="bold" font-size="13">{}</text>"#,
            y + 14.0,
            esc(panel.title)
        );
        let top = y + 40.0;
        let bottom = top + panel.rows.len() as f64 * ROW;
        for (i, (label, a, b)) in panel.rows.iter().enumerate() {
            let ry = top + i as f64 * ROW;
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LABEL - 8.0,
                ry + BAR + 4.0,
                esc(label)
            );
            for (j, v) in [a, b].iter().enumerate() {
                let by = ry + j as f64 * BAR;
                let Some(v) = v else {
                    let _ = writeln!(
                        s,
                        r#"<text x="{}" y="{}" font-size="11">not measured</text>"#,
                        LABEL + 4.0,
                        by + BAR - 3.0
                    );
                    continue;
                };
                let cut = *v > max;
                let _ = writeln!(
                    s,
                    r#"<rect x="{LABEL}" y="{by}" width="{:.1}" height="{}" fill="{}"/>"#,
                    (x(*v) - LABEL).max(0.5),
                    BAR - 1.0,
                    COLORS[j]
                );
                if cut {
                    // A white zigzag across the bar: cut, not to scale.
                    let zx = x(*v) - 14.0;
                    let _ = writeln!(
                        s,
                        r#"<path d="M{zx:.1} {by} l4 {h:.1} l-4 {h:.1}" stroke="white" stroke-width="3" fill="none"/>"#,
                        h = (BAR - 1.0) / 2.0
                    );
                }
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{}" font-size="11">{v:.2}×{}</text>"#,
                    x(*v) + 4.0,
                    by + BAR - 3.0,
                    if cut { " (cut)" } else { "" }
                );
            }
        }
        for (k, m) in panel.marks.iter().enumerate() {
            let (dash, label_y) = if k == 0 {
                ("none", bottom + 14.0)
            } else {
                ("4 3", top - 8.0)
            };
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#333" stroke-dasharray="{dash}"/><text x="{0:.1}" y="{label_y}" text-anchor="middle" font-size="10">{3}</text>"##,
                x(*m),
                top - 4.0,
                bottom,
                if k == 0 {
                    format!("{m}×")
                } else {
                    format!("target {m}×")
                }
            );
        }
        let _ = writeln!(
            s,
            r##"<line x1="{LABEL}" y1="{}" x2="{LABEL}" y2="{bottom}" stroke="#333"/>"##,
            top - 4.0
        );
        y = bottom + 36.0;
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn command_line(cmd: &[&str]) -> String {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("{} unknown", cmd[0]))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into())
}

fn mem_gib() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| format!("{:.0}", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "?".into())
}
