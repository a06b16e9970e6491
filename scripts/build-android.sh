#!/usr/bin/env bash
# Lays out an Android library (AAR) of the Kotlin façade from NDK builds of the Rust core:
#
#   target/android/tether-android-<version>.aar
#     AndroidManifest.xml           package dev.tether, minSdk 24
#     classes.jar                   the JVM jar's classes (commonMain + jvmMain), without
#                                   the desktop native resources
#     jni/<abi>/libtether.so        one per ABI (the AAR format's folder for what a Gradle
#                                   module keeps in src/main/jniLibs/<abi>/)
#     R.txt, res/                   empty: the library has no Android resources
#
# On Android the Kotlin code finds no desktop resource in the jar and loads the ABI's
# library with System.loadLibrary("tether"), which the app's APK provides from jni/<abi>/.
#
# Needs the Android NDK (r26 or later): ANDROID_NDK_HOME, or ANDROID_NDK_ROOT, pointing at
# it, and the Rust targets (rustup target add aarch64-linux-android armv7-linux-androideabi
# x86_64-linux-android i686-linux-android). The NDK cannot be fetched on the build machine
# of this repository, so scripts/test.sh only checks this script's syntax (bash -n).
#
#   scripts/build-android.sh                       every ABI
#   scripts/build-android.sh arm64-v8a x86_64      some
#   ANDROID_API=26 scripts/build-android.sh        another minimum API level (default 24)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[build-android] $*" >&2; }
die() { echo "[build-android] error: $*" >&2; exit 1; }

NDK=${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}
[ -n "$NDK" ] && [ -d "$NDK" ] || die "set ANDROID_NDK_HOME to the Android NDK (r26+)"
API=${ANDROID_API:-24}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
case "$(uname -s)" in
  Linux) HOST=linux-x86_64 ;;
  Darwin) HOST=darwin-x86_64 ;; # the NDK ships x86_64 host tools that also run on arm64 Macs
  *) die "unsupported build host $(uname -s)" ;;
esac
TOOLCHAIN=$NDK/toolchains/llvm/prebuilt/$HOST/bin
[ -d "$TOOLCHAIN" ] || die "no LLVM toolchain at $TOOLCHAIN"

# ABI → Rust target triple, and the NDK clang that links for it.
triple_of() {
  case $1 in
    arm64-v8a) echo aarch64-linux-android ;;
    armeabi-v7a) echo armv7-linux-androideabi ;;
    x86_64) echo x86_64-linux-android ;;
    x86) echo i686-linux-android ;;
    *) die "unknown ABI $1 (arm64-v8a, armeabi-v7a, x86_64, x86)" ;;
  esac
}
clang_of() {
  case $1 in
    armeabi-v7a) echo "$TOOLCHAIN/armv7a-linux-androideabi$API-clang" ;;
    *) echo "$TOOLCHAIN/$(triple_of "$1")$API-clang" ;;
  esac
}

if [ $# -gt 0 ]; then ABIS=("$@"); else ABIS=(arm64-v8a armeabi-v7a x86_64 x86); fi
OUT=target/android
STAGE=$OUT/aar
rm -rf "$STAGE"
mkdir -p "$STAGE/res"

for abi in "${ABIS[@]}"; do
  triple=$(triple_of "$abi")
  linker=$(clang_of "$abi")
  [ -x "$linker" ] || die "no NDK linker $linker (API $API)"
  env_triple=$(echo "$triple" | tr 'a-z-' 'A-Z_')
  log "cargo build --release --features jni --lib --target $triple"
  env "CARGO_TARGET_${env_triple}_LINKER=$linker" "CC_${triple//-/_}=$linker" \
    "AR_${triple//-/_}=$TOOLCHAIN/llvm-ar" \
    cargo build --release --features jni --lib --target "$triple"
  mkdir -p "$STAGE/jni/$abi"
  cp "target/$triple/release/libtether.so" "$STAGE/jni/$abi/libtether.so"
  "$TOOLCHAIN/llvm-strip" --strip-debug "$STAGE/jni/$abi/libtether.so"
done

log "compiling the Kotlin classes (mvn package, tests skipped)"
mvn -q -B -f kotlin-multiplatform/pom.xml package -DskipTests
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
(cd "$classes" && unzip -q "$OLDPWD/kotlin-multiplatform/target/tether-kotlin-$VERSION.jar")
# Android takes its libraries from jni/<abi>/, not from the desktop resources.
rm -rf "$classes/dev/tether/native"
(cd "$classes" && zip -q -r "$OLDPWD/$STAGE/classes.jar" .)

cat > "$STAGE/AndroidManifest.xml" <<MANIFEST
<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="dev.tether">
    <uses-sdk android:minSdkVersion="$API" />
    <uses-permission android:name="android.permission.INTERNET" />
    <uses-permission android:name="android.permission.ACCESS_NETWORK_STATE" />
</manifest>
MANIFEST
: > "$STAGE/R.txt"

aar=$OUT/tether-android-$VERSION.aar
rm -f "$aar"
(cd "$STAGE" && zip -q -r "$OLDPWD/$aar" .)
log "wrote $aar (${ABIS[*]})"
