//! The kit's C API from C: tests/c/*.c compiled with gcc (-Wall -Wextra
//! -Wpedantic -Werror, AddressSanitizer with LeakSanitizer, UBSan) against
//! include/tether.h and include/tether_testkit.h, linked with Tether's
//! static library and the kit's shared one, and run to their end.
//!
//! The libraries come from `cargo build -p tether --lib` and `cargo build
//! -p tether-testkit --lib` (scripts/test-testkit.sh runs both first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A C test that has not finished by then is killed and fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_tether_client_against_the_kit_from_c() {
    run("client_against_kit");
}

#[test]
fn a_tether_socket_io_client_against_the_kit_from_c() {
    run("sio_client_against_kit");
}

#[test]
fn a_tether_sse_client_against_the_kit_from_c() {
    run("sse_client_against_kit");
}

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_dir().join(dir),
        _ => workspace_dir().join("target"),
    }
}

fn built(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p tether --lib` and `cargo build -p tether-testkit --lib` \
         first (scripts/test-testkit.sh does)",
        path.display()
    );
    path
}

fn run(name: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let out_dir = target_dir().join("testkit-c-tests");
    std::fs::create_dir_all(&out_dir).unwrap();
    let exe = out_dir.join(name);
    let lib_dir = target_dir().join("debug");
    let kit = built("libtether_testkit.so");
    let compiled = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .args([
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-g",
        ])
        .arg("-I")
        .arg(workspace_dir().join("include"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg(built("libtether.a"))
        .arg(&kit)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-lpthread", "-ldl", "-lm"])
        .output()
        .expect("cannot run gcc: install gcc (scripts/test-testkit.sh does)");
    assert!(
        compiled.status.success(),
        "gcc failed for {name}:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let mut child = Command::new(&exe)
        .env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            // Only the child this test started, by its handle.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} did not finish within {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "{name} failed ({status}):\n{stdout}\n--- stderr ---\n{stderr}"
    );
    assert!(stdout.contains(&format!("{name}: ok")), "{stdout}");
}
