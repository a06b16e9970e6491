#!/usr/bin/env bash
# Runs every test of the project. Works on a fresh machine: each step
# installs what it needs (cbindgen, npm/PyPI peers, Maven dependencies, …).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "format (cargo fmt --check)"
cargo fmt --all -- --check

step "lint (cargo clippy -D warnings)"
cargo clippy --all-targets -- -D warnings

step "header (include/tether.h matches cbindgen)"
scripts/gen-header.sh --check

step "build libtether.a (for the C tests); install gcc and the interop peers if missing"
cargo build --lib
scripts/test-c.sh --install-only
scripts/test-interop.sh --install-only

step "Rust unit and integration tests, C ABI tests (ASan), interop (Node ws, Python websockets, sse-starlette)"
TETHER_INTEROP=1 cargo test -- --skip a_sender_killed_hundreds_of_times

step "outbox crash safety (a sender killed with SIGKILL 200 times)"
cargo test --test outbox_kill -- --nocapture a_sender_killed_hundreds_of_times

step "Kotlin façade (JNI build, clippy --features jni, JUnit via Maven)"
scripts/test-kotlin.sh

step "Android lifecycle adapter (Robolectric 4.17 offline, SDK 34; jars from Maven Central)"
scripts/test-android.sh

step "benchmark smoke (scripts/bench.sh --smoke: every client completes every workload once, tiny sizes, debug builds; asserts no speed)"
scripts/bench.sh --smoke

step "conformance (Autobahn TestSuite, cases 1.* to 10.*)"
scripts/autobahn.sh

step "Kotlin/Native (cinterop on tether.h, linuxX64 tests; installs the offline toolchain)"
scripts/test-kotlin-native.sh

echo
echo "all test steps passed"
