#!/usr/bin/env bash
# The C ABI tests: builds libtether.a, then runs tests/c_abi.rs, which
# compiles each program of tests/c/ with gcc (ASan, UBSan, LeakSanitizer)
# against include/tether.h and runs it against a local echo server.
#   scripts/test-c.sh                 all of them
#   scripts/test-c.sh echo            only the tests whose name contains "echo"
# TETHER_C_TESTS_STRICT=1 makes the known, reported library bugs fail too.
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

cargo build --lib
cargo test --test c_abi -- "$@"
