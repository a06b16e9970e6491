#!/usr/bin/env bash
# Benchmarks (release build): Tether through its Rust API and its C ABI
# against raw tokio-tungstenite, on one tokio-tungstenite echo server on
# 127.0.0.1. Prints numbers; asserts nothing (these machines are noisy).
set -euo pipefail
cd "$(dirname "$0")/.."
# Idle connections need a socket each, in this process and in the server's.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --quiet --release --example bench --example echo_server
target/release/examples/bench "$@"   # raw, api, c, idle, wakeups: pick (default all)
