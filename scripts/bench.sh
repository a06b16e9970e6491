#!/usr/bin/env bash
# Benchmarks (release build): Tether through its Rust API and its C ABI
# against raw tokio-tungstenite, on one tokio-tungstenite echo server on
# 127.0.0.1. Prints numbers; asserts nothing (these machines are noisy).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release --example bench
