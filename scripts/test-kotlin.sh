#!/usr/bin/env bash
# The Kotlin façade's tests (kotlin-multiplatform/): lints and builds the Rust cdylib with
# its JNI exports (cargo feature `jni`), then runs the JUnit suite with Maven against real
# WebSocket servers on 127.0.0.1. On a fresh machine Maven downloads its plugins and the
# dependencies (Kotlin, kotlinx-coroutines, JUnit 5) from Maven Central by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
  echo "[test-kotlin] installing Maven and a JDK" >&2
  apt-get update -qq && apt-get install -y -qq maven default-jdk-headless >/dev/null
fi

cargo clippy --all-targets --features jni -- -D warnings
# The JNI module's own unit tests (handles, the event wire format).
cargo test --features jni --lib jni::
cargo build --features jni --lib

# Other steps rebuild libtether.so without the feature in the same target directory:
# test a private copy of the library built just now.
target_dir=${CARGO_TARGET_DIR:-target}
lib="$target_dir/debug/libtether.so"
if ! grep -q Java_dev_tether_internal_NativeBridge_connect "$lib"; then
  echo "[test-kotlin] $lib lacks the JNI exports" >&2
  exit 1
fi
mkdir -p kotlin-multiplatform/target/native
cp "$lib" kotlin-multiplatform/target/native/libtether.so

rm -rf kotlin-multiplatform/target/surefire-reports
mvn -q -B -Dstyle.color=never -f kotlin-multiplatform/pom.xml test \
  -Dtether.library="$PWD/kotlin-multiplatform/target/native/libtether.so"

# Surefire is quiet under -q: print its totals (on a line of their own).
echo
awk -F'"' '/<testsuite /{ for (i = 1; i < NF; i++) {
    if ($i ~ / tests=$/) t += $(i+1); if ($i ~ / failures=$/) f += $(i+1);
    if ($i ~ / errors=$/) e += $(i+1); if ($i ~ / skipped=$/) s += $(i+1) } }
  END { printf "kotlin: %d passed, %d failed, %d skipped\n", t - f - e - s, f + e, s }' \
  kotlin-multiplatform/target/surefire-reports/TEST-*.xml
