#!/usr/bin/env bash
# The Tether demo: an in-process echo server, a client that survives the
# server being killed and restarted twice, every event printed as a line.
# Needs only a Rust toolchain and loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --example demo
