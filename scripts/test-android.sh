#!/usr/bin/env bash
# The Android lifecycle adapter's tests (kotlin-multiplatform/android/): JUnit 4 with
# Robolectric 4.17 on SDK 34 in offline mode, on the JVM. Everything comes from Maven
# Central: the android-all jar it compiles against, Robolectric's instrumented SDK jar
# (copied by the module's pom into robolectric.dependency.dir), androidx.test:monitor's AAR.
# It installs the core façade (dev.tether:tether-kotlin) into the local Maven repository and
# builds libtether.so with its JNI exports for the test that drives a real TetherSession.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
  echo "[test-android] installing Maven and a JDK" >&2
  apt-get update -qq && apt-get install -y -qq maven default-jdk-headless >/dev/null
fi

mvn_quiet=(-q -B -Dstyle.color=never)
module=kotlin-multiplatform/android

# The core's coordinates, as its own pom names them (it changes independently).
read -r core_group core_artifact core_version < <(python3 - <<'PY'
import xml.etree.ElementTree as ET
ns = {"m": "http://maven.apache.org/POM/4.0.0"}
p = ET.parse("kotlin-multiplatform/pom.xml").getroot()
print(*(p.find(f"m:{k}", ns).text.strip() for k in ("groupId", "artifactId", "version")))
PY
)
echo "[test-android] installing $core_group:$core_artifact:$core_version" >&2
mvn "${mvn_quiet[@]}" -f kotlin-multiplatform/pom.xml install -Dmaven.test.skip=true

cargo build --features jni --lib
target_dir=${CARGO_TARGET_DIR:-target}
lib="$target_dir/debug/libtether.so"
if ! grep -q Java_dev_tether_internal_NativeBridge_connect "$lib"; then
  echo "[test-android] $lib lacks the JNI exports" >&2
  exit 1
fi
# A private copy: other steps rebuild libtether.so without the feature in place.
mkdir -p "$module/target/native"
cp "$lib" "$module/target/native/libtether.so"

rm -rf "$module/target/surefire-reports"
mvn "${mvn_quiet[@]}" -f "$module/pom.xml" test \
  -Dtether.core.groupId="$core_group" -Dtether.core.artifactId="$core_artifact" \
  -Dtether.core.version="$core_version" \
  -Dtether.library="$PWD/$module/target/native/libtether.so"

# Surefire is quiet under -q: print its totals (on a line of their own).
echo
awk -F'"' '/<testsuite /{ for (i = 1; i < NF; i++) {
    if ($i ~ / tests=$/) t += $(i+1); if ($i ~ / failures=$/) f += $(i+1);
    if ($i ~ / errors=$/) e += $(i+1); if ($i ~ / skipped=$/) s += $(i+1) } }
  END { printf "android: %d passed, %d failed, %d skipped\n", t - f - e - s, f + e, s }' \
  "$module"/target/surefire-reports/TEST-*.xml
