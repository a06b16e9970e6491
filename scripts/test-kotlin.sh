#!/usr/bin/env bash
# The Kotlin façade's tests (kotlin-multiplatform/): lints and builds the Rust cdylib with
# its JNI exports (cargo feature `jni`), stages it as the jar's native resource for this
# platform, runs the JUnit suite with Maven against real WebSocket servers on 127.0.0.1 and
# installs the artifact (`mvn install`), then builds a fresh Maven project that depends only
# on the installed artifact and connects to a local echo server with no -D flag. On a fresh
# machine Maven downloads its plugins and the dependencies (Kotlin, kotlinx-coroutines,
# kotlinx-serialization, JUnit 5) from Maven Central by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
  echo "[test-kotlin] installing Maven and a JDK" >&2
  apt-get update -qq && apt-get install -y -qq maven default-jdk-headless >/dev/null
fi

cargo clippy --all-targets --features jni -- -D warnings
# The JNI module's own unit tests (handles, the event wire format, the poll set).
cargo test --features jni --lib -- jni:: ffi::poll_set
# One build for the library and the echo server the consumer project talks to.
cargo build --features jni --lib --example echo_server

# Other steps rebuild libtether.so without the feature in the same target directory:
# test a private copy of the library built just now.
target_dir=${CARGO_TARGET_DIR:-target}
lib="$target_dir/debug/libtether.so"
if ! grep -q Java_dev_tether_internal_NativeBridge_connect "$lib"; then
  echo "[test-kotlin] $lib lacks the JNI exports" >&2
  exit 1
fi
KMP=kotlin-multiplatform
mkdir -p $KMP/target/native
cp "$lib" $KMP/target/native/libtether.so

# The jar's resource for this platform (NativeLibrary.platformName's naming).
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=macos ;; *) os=$(uname -s | tr 'A-Z' 'a-z') ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=x86_64 ;; aarch64 | arm64) arch=aarch64 ;; *) arch=$(uname -m) ;; esac
resources=$KMP/target/native-resources/dev/tether/native/$os-$arch
rm -rf $KMP/target/native-resources
mkdir -p "$resources"
cp "$lib" "$resources/libtether.so"

rm -rf $KMP/target/surefire-reports
mvn -q -B -Dstyle.color=never -f $KMP/pom.xml install \
  -Dtether.library="$PWD/$KMP/target/native/libtether.so"

# Surefire is quiet under -q: print its totals (on a line of their own).
echo
awk -F'"' '/<testsuite /{ for (i = 1; i < NF; i++) {
    if ($i ~ / tests=$/) t += $(i+1); if ($i ~ / failures=$/) f += $(i+1);
    if ($i ~ / errors=$/) e += $(i+1); if ($i ~ / skipped=$/) s += $(i+1) } }
  END { printf "kotlin: %d passed, %d failed, %d skipped\n", t - f - e - s, f + e, s }' \
  $KMP/target/surefire-reports/TEST-*.xml

# A fresh project that depends only on the installed jar: no -D flag, the library comes
# out of the jar. Against the Rust echo server (examples/echo_server.rs), which we stop by
# its pid (and which exits by itself after --max-seconds).
consumer=$(mktemp -d)
coproc ECHO { exec "$target_dir/debug/examples/echo_server" --max-seconds 300; }
echo_pid=$ECHO_PID
trap 'kill "$echo_pid" 2>/dev/null || true; rm -rf "$consumer"' EXIT
read -r -t 30 port_line <&"${ECHO[0]}"
port=${port_line#PORT }
cp -r $KMP/consumer-test/. "$consumer/"
rm -rf "$consumer/target"
TETHER_ECHO_URL="ws://127.0.0.1:$port/echo" mvn -q -B -Dstyle.color=never -f "$consumer/pom.xml" test
awk -F'"' '/<testsuite /{ for (i = 1; i < NF; i++) {
    if ($i ~ / tests=$/) t += $(i+1); if ($i ~ / failures=$/) f += $(i+1);
    if ($i ~ / errors=$/) e += $(i+1); if ($i ~ / skipped=$/) s += $(i+1) } }
  END { printf "kotlin consumer (installed jar, no -D flag): %d passed, %d failed, %d skipped\n", t - f - e - s, f + e, s }' \
  "$consumer"/target/surefire-reports/TEST-*.xml
