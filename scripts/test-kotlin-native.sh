#!/usr/bin/env bash
# The Kotlin/Native tests on linuxX64, which shares nativeMain (the cinterop
# binding) with iOS: installs the toolchain (scripts/kotlin-native.sh), builds
# libtether.a and the echo server example, runs cinterop on include/tether.h,
# compiles commonMain + nativeMain into a klib and nativeTest into a kotlin.test
# executable, and runs it against the real Rust echo server on 127.0.0.1.
# Each build step is skipped when its inputs have not changed.
#   scripts/test-kotlin-native.sh                           all tests
#   scripts/test-kotlin-native.sh --ktest_filter='*Echo*'   some (arguments go to the test runner)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KMP=kotlin-multiplatform
OUT=$KMP/build/kotlin-native
BIN=.tools/kotlin-native/bin
KLIBS=.tools/kotlin-native/klibs

log() { echo "[test-kotlin-native] $*" >&2; }
started=$SECONDS

scripts/kotlin-native.sh

# One invocation: the lib and the example share one build of the crate, so
# libtether.a is not rebuilt (and the steps below not redone) on every run.
log "building libtether.a and the echo server (cargo, debug)"
cargo build --lib --example echo_server

# stale STAMP INPUT...: true when STAMP is missing or an input is newer.
stale() {
  local stamp=$1
  shift
  [ ! -e "$stamp" ] || [ -n "$(find "$@" -newer "$stamp" -print -quit)" ]
}
mkdir -p "$OUT"
DEPS=(-l "$KLIBS/kotlinx-coroutines-core-linuxx64-1.10.2.klib" -l "$KLIBS/atomicfu-linuxx64-0.26.1.klib"
  -l "$KLIBS/atomicfu-linuxx64-0.26.1-cinterop-interop.klib"
  -l "$KLIBS/kotlinx-serialization-core-linuxx64-1.8.1.klib"
  -l "$KLIBS/kotlinx-serialization-json-linuxx64-1.8.1.klib")
# Socket.IO's arguments are JSON elements: the library needs the JSON format too.
TEST_DEPS=()

# 1. cinterop: the bindings of tether.h, with libtether.a inside the klib.
DEF=$KMP/src/nativeInterop/cinterop/tether.def
if stale "$OUT/cinterop.stamp" include/tether.h "$DEF" target/debug/libtether.a scripts/kotlin-native.sh; then
  log "cinterop $DEF"
  rm -rf "$OUT/tether-cinterop.klib" "$OUT/cinterop.stamp"
  "$BIN/cinterop" -def "$DEF" -target linux_x64 -compiler-option "-I$ROOT/include" \
    -libraryPath "$ROOT/target/debug" -o "$OUT/tether-cinterop.klib"
  touch "$OUT/cinterop.stamp"
fi

# 2. The library: commonMain and nativeMain as two fragments of one klib
#    (expect declarations in one, actuals in the other).
mapfile -t COMMON < <(find $KMP/src/commonMain -name '*.kt' | sort)
mapfile -t NATIVE < <(find $KMP/src/nativeMain -name '*.kt' | sort)
fragments=""
for f in "${COMMON[@]}"; do fragments+="common:$f,"; done
for f in "${NATIVE[@]}"; do fragments+="native:$f,"; done
if stale "$OUT/library.stamp" "$OUT/cinterop.stamp" $KMP/src/commonMain $KMP/src/nativeMain; then
  log "compiling commonMain + nativeMain (klib)"
  rm -rf "$OUT/tether" "$OUT/library.stamp"
  "$BIN/kotlinc-native" -p library -nopack -target linux_x64 -module-name tether -o "$OUT/tether" \
    -l "$OUT/tether-cinterop.klib" "${DEPS[@]}" \
    -Xmulti-platform -Xfragments=common,native -Xfragment-refines=native:common \
    "-Xfragment-sources=${fragments%,}" "${COMMON[@]}" "${NATIVE[@]}"
  touch "$OUT/library.stamp"
fi

# 3. The test executable: nativeTest with kotlin.test's runner (-tr). With -g
#    the compiler links the distribution's prebuilt stdlib cache: twice as fast.
mapfile -t TESTS < <(find $KMP/src/commonTest $KMP/src/nativeTest -name '*.kt' | sort)
if stale "$OUT/test.stamp" "$OUT/library.stamp" $KMP/src/commonTest $KMP/src/nativeTest; then
  log "compiling nativeTest (test executable)"
  rm -f "$OUT/tether-test.kexe" "$OUT/test.stamp"
  "$BIN/kotlinc-native" -tr -g -target linux_x64 -o "$OUT/tether-test" \
    -l "$OUT/tether" -l "$OUT/tether-cinterop.klib" "${DEPS[@]}" "${TEST_DEPS[@]}" "${TESTS[@]}"
  touch "$OUT/test.stamp"
fi
log "built in $((SECONDS - started)) s; running the tests"

# The Socket.IO tests need npm socket.io (scripts/test-interop.sh installs it).
if [ -e "$ROOT/tests/interop/node_modules/socket.io/package.json" ]; then
  export TETHER_SOCKETIO_SERVER="$ROOT/tests/interop/socketio_server.js"
fi
# The SSE test needs sse-starlette (scripts/test-interop.sh installs it into a venv).
if "$ROOT/.tools/interop/sse-venv/bin/python" -c 'import sse_starlette, uvicorn' 2>/dev/null; then
  export TETHER_SSE_PYTHON="$ROOT/.tools/interop/sse-venv/bin/python"
  export TETHER_SSE_SERVER="$ROOT/tests/interop/sse_server.py"
fi
TETHER_ECHO_SERVER="$ROOT/target/debug/examples/echo_server" timeout 300 "$OUT/tether-test.kexe" "$@"
log "done in $((SECONDS - started)) s"
