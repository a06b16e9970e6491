#!/usr/bin/env bash
# Builds Tether for iOS: release static libraries for devices
# (aarch64-apple-ios) and simulators (aarch64-apple-ios-sim and
# x86_64-apple-ios, merged into one with lipo), packed with include/tether.h
# and a module map (`import Tether` in Swift, or `#include <tether.h>`) into
# target/apple/Tether.xcframework.
#
# Needs macOS with Xcode: it cannot run on Linux. The Kotlin/Native side
# (kotlin-multiplatform/src/nativeInterop/cinterop/tether.def) links the same
# libraries: point cinterop's -libraryPath at target/<triple>/release.
#   IPHONEOS_DEPLOYMENT_TARGET=14.0 scripts/build-apple.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null || ! command -v lipo >/dev/null; then
  echo "build-apple.sh: needs macOS with Xcode (xcodebuild, lipo); this machine is $(uname -s)." >&2
  echo "On Linux, scripts/test-kotlin-native.sh builds and tests the shared nativeMain for linuxX64." >&2
  exit 1
fi

export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-13.0}"
TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
rustup target add "${TARGETS[@]}"
for target in "${TARGETS[@]}"; do
  cargo build --release --lib --target "$target"
done

OUT=target/apple
rm -rf "$OUT"
mkdir -p "$OUT/headers" "$OUT/ios-simulator"
cp include/tether.h "$OUT/headers/"
cat >"$OUT/headers/module.modulemap" <<'EOF'
module Tether {
    header "tether.h"
    export *
}
EOF

lipo -create \
  target/aarch64-apple-ios-sim/release/libtether.a \
  target/x86_64-apple-ios/release/libtether.a \
  -output "$OUT/ios-simulator/libtether.a"

xcodebuild -create-xcframework \
  -library target/aarch64-apple-ios/release/libtether.a -headers "$OUT/headers" \
  -library "$OUT/ios-simulator/libtether.a" -headers "$OUT/headers" \
  -output "$OUT/Tether.xcframework"

echo "built $OUT/Tether.xcframework (link it with Security.framework and CoreFoundation.framework)"
