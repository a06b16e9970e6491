//! The C ABI test suite: the C programs of tests/c/, compiled with gcc
//! against include/tether.h and the static library under AddressSanitizer
//! (with LeakSanitizer) and UndefinedBehaviorSanitizer, each run against a
//! local echo server. One `#[test]` per program, so a failure is named.
//!
//! The static library comes from `cargo build --lib` (scripts/test-c.sh
//! and scripts/test.sh run it first): `cargo test` alone does not
//! guarantee an up-to-date `libtether.a`. Build outputs go to
//! `<target dir>/c-tests/`.

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::hostile::{self, HostileServer, Step};
use support::EchoServer;

/// A C test that has not finished by then is killed and fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A URL where nothing listens: port 1 is privileged and never an
/// ephemeral port, so on loopback the connection is refused at once.
const DEAD_URL: &str = "ws://127.0.0.1:1/";

const GCC_FLAGS: &[&str] = &[
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-g",
];

#[test]
fn echo() {
    run_c_test("echo", &[]);
}

#[test]
fn bad_input() {
    run_c_test("bad_input", &[]);
}

#[test]
fn threads() {
    run_c_test("threads", &[]);
}

#[test]
fn event_fd() {
    run_c_test("event_fd", &[]);
}

#[test]
fn poll_set() {
    run_c_test("poll_set", &[]);
}

#[test]
fn log() {
    run_c_test("log", &[DEAD_URL]);
}

#[test]
fn pause_resume() {
    run_c_test("pause_resume", &[]);
}

#[test]
fn queue_full() {
    run_c_test("queue_full", &[DEAD_URL]);
}

#[test]
fn outbox() {
    let dir = std::env::temp_dir().join(format!("tether-c-outbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    run_c_test("outbox", &[dir.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Twelve scenarios of the hostile server (tests/hostile.rs has them all)
/// through the C ABI: each ends in WS_EVENT_TERMINATED after ws_close,
/// then ws_free; clean under ASan, UBSan and LeakSanitizer. The script of
/// each connection is chosen by its request path.
#[test]
fn hostile() {
    let exe = compile("hostile");
    let server = HostileServer::start(hostile_script);
    let report = run_sanitized(&exe, "hostile", &[server.url("")]);
    // Permanent failures were tried once, never again.
    for path in [
        "/wrong-accept",
        "/forbidden",
        "/endless-headers",
        "/bad-utf8",
        "/huge-length",
        "/rsv1",
    ] {
        assert_eq!(server.accepts_for(path), 1, "{path} was retried\n{report}");
    }
}

/// Server-Sent Events through the C ABI (tests/c/sse.c) against a
/// hand-written SSE server: the stream's second connection must carry
/// the last event id and the header set meanwhile; permanent failures
/// are tried once.
#[test]
fn sse() {
    let exe = compile("sse");
    let server = HostileServer::start(sse_script);
    let base = format!("http://{}", server.addr);
    let report = run_sanitized(&exe, "sse", &[base]);
    for path in ["/gone", "/forbidden", "/html"] {
        assert_eq!(server.accepts_for(path), 1, "{path} was retried\n{report}");
    }
}

/// The SSE server's script for each path `tests/c/sse.c` uses.
fn sse_script(c: &hostile::Ctx) -> Vec<Step> {
    const OPEN: &str = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\n";
    let head = c.head();
    match (c.path(), head.header("last-event-id")) {
        ("/stream", None) => vec![
            Step::Write(
                format!(
                    "{OPEN}retry: 500\nid: 1\nevent: tick\ndata: a\ndata: b\n\n: comment\r\n\
                     id: 2\ndata: h\u{e9}llo\n\n"
                )
                .into_bytes(),
            ),
            Step::Close,
        ],
        ("/stream", Some(id)) => vec![Step::Write(
            format!(
                "{OPEN}data: resumed after {id} with {}\n\n",
                head.header("x-token").unwrap_or("no token")
            )
            .into_bytes(),
        )],
        ("/gone", _) => vec![Step::Write(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec())],
        ("/html", _) => vec![Step::Write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
        )],
        _ => vec![Step::Write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )],
    }
}

/// The hostile server's script for each path `tests/c/hostile.c` uses.
fn hostile_script(c: &hostile::Ctx) -> Vec<Step> {
    use hostile::{close, frame, header, ping, text, FIN, OP_BINARY, OP_TEXT, RSV1};
    let open = Step::Write(c.head().switching(""));
    match c.path() {
        "/wrong-accept" => vec![Step::Write(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                hostile::accept_key("dGhlIHNhbXBsZSBub25jZQ==")
            )
            .into_bytes(),
        )],
        "/forbidden" => vec![Step::Write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )],
        "/endless-headers" => vec![
            Step::Write(b"HTTP/1.1 101 Switching Protocols\r\n".to_vec()),
            Step::Repeat(b"X-Endless: 0123456789abcdef\r\n".to_vec(), 2_000_000),
        ],
        "/bad-utf8" => vec![open, Step::Write(frame(FIN | OP_TEXT, b"bad \xff"))],
        "/huge-length" => vec![
            open,
            Step::Write(header(FIN | OP_BINARY, (1u64 << 63) - 1, None)),
        ],
        "/rsv1" => vec![open, Step::Write(frame(FIN | RSV1 | OP_TEXT, b"x"))],
        "/reset-mid-frame" => vec![
            open,
            Step::Write([header(FIN | OP_BINARY, 1000, None), vec![1u8; 10]].concat()),
            Step::Sleep(Duration::from_millis(100)),
            Step::Reset,
        ],
        "/half-close" => vec![
            open,
            Step::Write(text("before")),
            Step::ShutdownWrite,
            Step::AwaitEof(Duration::from_secs(10)),
        ],
        "/close-1012" => vec![open, Step::Write(close(1012, b"restart"))],
        "/ping-flood" => vec![
            open,
            Step::Repeat(ping(b"12345678"), 10_000),
            Step::Write(text("done")),
            Step::ServeClose,
        ],
        "/empty-flood" => vec![
            open,
            Step::Repeat(text(""), 100_000),
            Step::Write(text("end")),
            Step::ServeClose,
        ],
        "/silence" => vec![],
        _ => vec![Step::Write(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )],
    }
}

/// The header compiles as C++ (cbindgen's `cpp_compat`), warning-free.
/// The README's C example (examples/c/echo.c), as printed there.
#[test]
fn readme_example() {
    // tests/readme.rs checks that README.md shows this file as it is.
    let src = manifest_dir().join("examples/c/echo.c");
    let exe = compile_source(&src, "readme_example");
    let server = EchoServer::start();
    let run = run_with_timeout(
        Command::new(&exe)
            .arg(server.url())
            .env("ASAN_OPTIONS", asan_options()),
        RUN_TIMEOUT,
    );
    assert!(
        run.status.is_some_and(|s| s.success()),
        "README example failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    assert!(run.stdout.contains("text: hi"), "{}", run.stdout);
    assert!(run.stdout.contains("binary: 3 bytes"), "{}", run.stdout);
}

/// The README's Socket.IO example against npm socket.io (polling, upgraded).
#[test]
fn readme_socketio_example() {
    use support::socketio_server::{server_installed, Server};
    if !server_installed() {
        return;
    }
    // tests/readme.rs checks that README.md shows this file as it is.
    let src = manifest_dir().join("examples/c/socketio.c");
    let exe = compile_source(&src, "readme_socketio_example");
    let server = Server::start(&[]);
    let out = run_sanitized(&exe, "readme_socketio_example", &[server.url()]);
    assert!(out.contains("joined /"), "{out}");
    assert!(out.contains(r#"event echo: ["hi",1]"#), "{out}");
    assert!(out.contains(r#"ack: [{"ok":true}]"#), "{out}");
}

/// The README's SSE example (examples/c/sse.c), as printed there, against
/// a stream that drops after two events and resumes from the last id.
#[test]
fn readme_sse_example() {
    let src = manifest_dir().join("examples/c/sse.c");
    let exe = compile_source(&src, "readme_sse_example");
    let server = HostileServer::start(|c| {
        let open = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
        match c.head().header("last-event-id") {
            None => vec![
                Step::Write(
                    format!(
                        "{open}retry: 100\nid: 1\ndata: first\n\nid: 2\nevent: price\ndata: 42\n\n"
                    )
                    .into_bytes(),
                ),
                Step::Close,
            ],
            Some(id) => vec![Step::Write(
                format!("{open}data: after {id}\n\n").into_bytes(),
            )],
        }
    });
    let run = run_with_timeout(
        Command::new(&exe)
            .arg(format!("http://{}/events", server.addr))
            .env("ASAN_OPTIONS", asan_options()),
        RUN_TIMEOUT,
    );
    assert!(
        run.status.is_some_and(|s| s.success()),
        "README SSE example failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(lines[..2], ["message [id 1]: first", "price [id 2]: 42"]);
    // retry: 100, the first retry spread over [0, 200] (the default jitter).
    let delay: u64 = lines[2]
        .strip_prefix("reconnecting in ")
        .and_then(|rest| rest.strip_suffix(" ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(delay <= 200, "{}", run.stdout);
    assert_eq!(lines[3], "message [id 2]: after 2");
}

/// A C client survives its server being killed and restarted twice. The
/// program says on stdout when to kill ("READY n") and when to restart
/// ("QUEUED n") the server.
#[test]
fn restart() {
    use std::io::BufRead;
    let exe = compile("restart");
    let mut server = Some(EchoServer::start());
    let addr = server.as_ref().unwrap().addr;
    let mut child = Command::new(&exe)
        .arg(server.as_ref().unwrap().url())
        .env("ASAN_OPTIONS", asan_options())
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = drain(child.stderr.take().unwrap());
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    // The program's own watchdog (90 s) bounds this loop: it exits, and
    // its stdout ends.
    let mut transcript = String::new();
    for line in stdout.lines().take(10_000) {
        let Ok(line) = line else { break };
        transcript.push_str(&line);
        transcript.push('\n');
        if line.starts_with("READY ") {
            server.take().expect("a server to kill").kill();
        } else if line.starts_with("QUEUED ") {
            server = Some(EchoServer::start_on(addr));
        }
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "restart failed ({status}):\n{transcript}\n--- stderr ---\n{}",
        stderr.join().unwrap_or_default()
    );
    assert!(transcript.contains("DELIVERED 2"), "{transcript}");
}

/// Socket.IO through `sio_*`, against npm socket.io on each transport
/// configuration (skipped with a note when it is not installed).
#[test]
fn socketio() {
    use support::socketio_server::{server_installed, Server};
    if !server_installed() {
        return;
    }
    let exe = compile("socketio");
    for (server_transports, transports) in [
        ("websocket", r#"["websocket"]"#),
        ("polling", r#"["polling"]"#),
        ("polling,websocket", r#"["polling","websocket"]"#),
    ] {
        let server = Server::start(&["--transports", server_transports]);
        run_sanitized(&exe, "socketio", &[server.url(), transports.to_string()]);
    }
}

#[test]
fn header_cpp() {
    let src = manifest_dir().join("tests/c/header_cpp.cpp");
    let mut cmd = Command::new("g++");
    cmd.args(["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg("-fsyntax-only")
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg(&src);
    let out = output_of(&mut cmd, "g++");
    assert!(
        out.status.success(),
        "include/tether.h does not compile as C++17 ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles `tests/c/<name>.c`, starts an echo server, runs the program
/// with the server's URL then `extra_args`, and asserts it exits 0.
fn run_c_test(name: &str, extra_args: &[&str]) {
    let exe = compile(name);
    let server = EchoServer::start();
    let mut args = vec![server.url()];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    run_sanitized(&exe, name, &args);
    drop(server);
}

/// Runs a compiled C test under the sanitizers and asserts it exits 0; its
/// output is shown with --nocapture (known-bug notes go to its stderr) and
/// returned.
fn run_sanitized(exe: &std::path::Path, name: &str, args: &[String]) -> String {
    let run = run_with_timeout(
        Command::new(exe)
            .args(args)
            .env("ASAN_OPTIONS", asan_options())
            .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1"),
        RUN_TIMEOUT,
    );
    let report = format!(
        "{name} {args:?} {outcome}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout,
        run.stderr,
        outcome = match run.status {
            _ if run.timed_out => format!("was killed after {RUN_TIMEOUT:?} (timeout)"),
            Some(s) => format!("exited with {s}"),
            None => "did not report an exit status".to_string(),
        },
    );
    assert!(
        !run.timed_out && run.status.is_some_and(|s| s.success()),
        "C test failed: {report}"
    );
    println!("{report}");
    report
}

fn asan_options() -> &'static str {
    if leak_detection_works() {
        "detect_leaks=1"
    } else {
        // See `leak_detection_works`: LeakSanitizer cannot run here (and
        // that was reported once on stderr); the rest of ASan still runs.
        "detect_leaks=0"
    }
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `CARGO_TARGET_DIR` if set (relative to the manifest directory, where
/// the scripts run cargo), else `<manifest dir>/target`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                manifest_dir().join(dir)
            }
        }
        _ => manifest_dir().join("target"),
    }
}

fn static_lib() -> PathBuf {
    let lib = target_dir().join("debug").join("libtether.a");
    assert!(
        lib.is_file(),
        "{} is missing: run `cargo build --lib` first (scripts/test-c.sh does)",
        lib.display()
    );
    lib
}

fn out_dir() -> PathBuf {
    let dir = target_dir().join("c-tests");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// Compiles `tests/c/<name>.c` to `<target dir>/c-tests/<name>`.
///
/// The target dir may be shared by several runs at once: each builds under
/// its own name, then renames it into place (atomic, and never "text file
/// busy" for a run still executing the previous binary).
fn compile(name: &str) -> PathBuf {
    compile_source(
        &manifest_dir().join("tests/c").join(format!("{name}.c")),
        name,
    )
}

/// Compiles any C source of the repository (e.g. the README's example).
fn compile_source(src: &std::path::Path, name: &str) -> PathBuf {
    let exe = out_dir().join(name);
    let tmp = out_dir().join(format!("{name}.{}.tmp", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(GCC_FLAGS)
        .arg("-I")
        .arg(manifest_dir().join("include"))
        .arg(src)
        .arg("-o")
        .arg(&tmp)
        .arg(static_lib())
        .args(["-lpthread", "-ldl", "-lm"]);
    let out = output_of(&mut cmd, "gcc");
    assert!(
        out.status.success(),
        "compiling {} failed ({}):\n{:?}\n{}{}",
        src.display(),
        out.status,
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &exe)
        .unwrap_or_else(|e| panic!("cannot move {} into place: {e}", tmp.display()));
    exe
}

fn output_of(cmd: &mut Command, tool: &str) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {tool} ({e}): install gcc and g++ \
             (scripts/test-c.sh does: apt-get install -y gcc g++)"
        )
    })
}

/// Whether LeakSanitizer works in this environment, probed once with a C
/// program that leaks on purpose. It does not work under ptrace (a
/// debugger, strace, some sandboxes): then it is disabled for this run and
/// a note says so on stderr. Any other unexpected probe result fails the
/// tests rather than silently running without leak checks.
fn leak_detection_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| {
        let dir = out_dir();
        let src = dir.join(format!("lsan_probe.{}.c", std::process::id()));
        let exe = dir.join(format!("lsan_probe.{}", std::process::id()));
        std::fs::write(
            &src,
            // Sixteen blocks, each pointer overwritten by the next: at
            // least fifteen are unreachable whatever stays in registers.
            "#include <stdio.h>\n\
             #include <stdlib.h>\n\
             int main(void) {\n\
             \x20 char *p = NULL;\n\
             \x20 for (int i = 0; i < 16; i++) { p = malloc(64); p[0] = (char)i; }\n\
             \x20 printf(\"%d\\n\", p[0]);\n\
             \x20 p = NULL;\n\
             \x20 return 0;\n\
             }\n",
        )
        .expect("cannot write the LeakSanitizer probe");
        let mut cc = Command::new("gcc");
        cc.args(["-fsanitize=address", "-g", "-O0"])
            .arg(&src)
            .arg("-o")
            .arg(&exe);
        let out = output_of(&mut cc, "gcc");
        assert!(
            out.status.success(),
            "compiling the LeakSanitizer probe failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = run_with_timeout(
            Command::new(&exe).env("ASAN_OPTIONS", "detect_leaks=1"),
            RUN_TIMEOUT,
        );
        let _ = std::fs::remove_file(&src);
        let _ = std::fs::remove_file(&exe);
        if run.stderr.contains("detected memory leaks") {
            return true;
        }
        if run.stderr.contains("does not work under ptrace")
            || run
                .stderr
                .contains("LeakSanitizer has encountered a fatal error")
        {
            eprintln!(
                "NOTE: LeakSanitizer does not work in this environment (probably \
                 running under ptrace); the C tests run with ASAN_OPTIONS=detect_leaks=0. \
                 Probe output:\n{}",
                run.stderr
            );
            return false;
        }
        panic!(
            "the LeakSanitizer probe did not report its leak (status {:?}):\n{}",
            run.status, run.stderr
        );
    })
}

struct Run {
    status: Option<ExitStatus>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with its output captured, killing it after `timeout`.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Run {
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                timed_out = true;
                // Our own child, by its handle (its pid).
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    Run {
        status,
        timed_out,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
