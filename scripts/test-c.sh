#!/usr/bin/env bash
# The C ABI tests: builds libtether.a, then runs tests/c_abi.rs, which
# compiles each program of tests/c/ with gcc (ASan, UBSan, LeakSanitizer)
# against include/tether.h and runs it against a local echo server.
#   scripts/test-c.sh                 all of them
#   scripts/test-c.sh echo            only the tests whose name contains "echo"
#   scripts/test-c.sh --install-only  only make sure gcc and g++ are there
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc and g++ are normally present; on a fresh Debian machine, install them.
if ! command -v gcc >/dev/null || ! command -v g++ >/dev/null; then
  echo "[test-c] installing gcc and g++" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update
  $sudo apt-get install -y gcc g++
fi

[ "${1:-}" = "--install-only" ] && exit 0
cargo build --lib
cargo test --test c_abi -- "$@"
