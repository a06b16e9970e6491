#!/usr/bin/env bash
# The test kit's tests (testkit/, include/tether_testkit.h, kotlin-multiplatform/testkit/):
#  1. lint: clippy on the kit with its JNI feature;
#  2. Rust: the kit's unit tests and its WebSocket, Socket.IO and SSE servers driven by real
#     Tether clients;
#  3. C: testkit/tests/c/*.c under ASan/LSan/UBSan against tether.h + tether_testkit.h;
#  4. Kotlin: the JUnit suites of TetherTestServer, TetherTestSocketIoServer and
#     TetherTestSseServer and the README examples, with Maven, against the
#     core façade installed into the local repository (mvn install, as the Android module).
# Works on a fresh machine: installs gcc, Maven and a JDK when missing; Maven downloads its
# plugins and dependencies from Maven Central by itself.
#   scripts/test-testkit.sh              everything
#   scripts/test-testkit.sh --no-kotlin  Rust and C only
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
need=()
command -v gcc >/dev/null || need+=(gcc)
if [ "${1:-}" != "--no-kotlin" ]; then
  command -v mvn >/dev/null || need+=(maven)
  command -v javac >/dev/null || need+=(default-jdk-headless)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "[test-testkit] installing ${need[*]}" >&2
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "[test-testkit] clippy (tether-testkit, --features jni)" >&2
cargo clippy -p tether-testkit --all-targets --features jni -- -D warnings

echo "[test-testkit] libraries: libtether.a (C), libtether_testkit.so (C and JNI)" >&2
cargo build -p tether --lib
cargo build -p tether-testkit --features jni --lib
target_dir=${CARGO_TARGET_DIR:-target}
# Other steps rebuild these in the same target directory: test private copies.
native=kotlin-multiplatform/testkit/target/native
mkdir -p "$native"
cp "$target_dir/debug/libtether_testkit.so" "$native/libtether_testkit.so"

echo "[test-testkit] Rust and C tests" >&2
cargo test -p tether-testkit --features jni

[ "${1:-}" = "--no-kotlin" ] && exit 0

echo "[test-testkit] Kotlin (TetherTestServer, README example)" >&2
mvn_quiet=(-q -B -Dstyle.color=never)
module=kotlin-multiplatform/testkit
read -r core_group core_artifact core_version < <(python3 - <<'PY'
import xml.etree.ElementTree as ET
ns = {"m": "http://maven.apache.org/POM/4.0.0"}
p = ET.parse("kotlin-multiplatform/pom.xml").getroot()
print(*(p.find(f"m:{k}", ns).text.strip() for k in ("groupId", "artifactId", "version")))
PY
)
echo "[test-testkit] installing $core_group:$core_artifact:$core_version" >&2
mvn "${mvn_quiet[@]}" -f kotlin-multiplatform/pom.xml install -Dmaven.test.skip=true

cargo build -p tether --features jni --lib
if ! grep -q Java_dev_tether_internal_NativeBridge_connect "$target_dir/debug/libtether.so"; then
  echo "[test-testkit] $target_dir/debug/libtether.so lacks the JNI exports" >&2
  exit 1
fi
cp "$target_dir/debug/libtether.so" "$native/libtether.so"

rm -rf "$module/target/surefire-reports"
mvn "${mvn_quiet[@]}" -f "$module/pom.xml" test \
  -Dtether.core.groupId="$core_group" -Dtether.core.artifactId="$core_artifact" \
  -Dtether.core.version="$core_version" \
  -Dtether.library="$PWD/$native/libtether.so" \
  -Dtether.testkit.library="$PWD/$native/libtether_testkit.so"

# Surefire is quiet under -q: print its totals (on a line of their own).
echo
awk -F'"' '/<testsuite /{ for (i = 1; i < NF; i++) {
    if ($i ~ / tests=$/) t += $(i+1); if ($i ~ / failures=$/) f += $(i+1);
    if ($i ~ / errors=$/) e += $(i+1); if ($i ~ / skipped=$/) s += $(i+1) } }
  END { printf "testkit (kotlin): %d passed, %d failed, %d skipped\n", t - f - e - s, f + e, s }' \
  "$module"/target/surefire-reports/TEST-*.xml
