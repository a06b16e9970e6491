#!/usr/bin/env bash
# Installs the Kotlin/Native compiler for linuxX64 so that it runs offline:
# the compiler and the klibs come from Maven Central, and what the compiler
# would download from its own host on first use (LLVM, a gcc/glibc sysroot,
# libffi, lldb) is assembled from Debian's packages instead: clang, lld and
# libclang 16 (the LLVM version the compiler is built on), the system gcc and
# glibc. Everything lands in .tools/kotlin-native/ (git-ignored):
#   dist/          the compiler (kotlin-native-prebuilt, linux-x86_64)
#   data/          its KONAN_DATA_DIR (not ~/.konan): dependencies/ holds the
#                  folders konan.properties names, symlinks to Debian's files,
#                  and the `.extracted` record that marks them as present
#   klibs/         kotlinx-coroutines-core, atomicfu and kotlinx-serialization (core,
#                  json) for linuxX64
#   bin/           kotlinc-native and cinterop wrappers that point the compiler
#                  at all this (airplane mode: it never tries to download)
# Idempotent: a second run checks and returns in about a second.
#   scripts/kotlin-native.sh          install (if needed)
#   scripts/kotlin-native.sh --check  install, then compile and run a hello world
set -euo pipefail
cd "$(dirname "$0")/.."

KOTLIN_VERSION=2.1.21
COROUTINES_VERSION=1.10.2
ATOMICFU_VERSION=0.26.1 # what kotlinx-coroutines-core-linuxx64 1.10.2 depends on
SERIALIZATION_VERSION=1.8.1 # built with Kotlin 2.1, as this compiler
LLVM_MAJOR=16           # llvmVersion.linux_x64 of this compiler

TOOLS="$PWD/.tools/kotlin-native"
DIST="$TOOLS/dist/kotlin-native-prebuilt-linux-x86_64-$KOTLIN_VERSION"
DATA="$TOOLS/data"
DEPS="$DATA/dependencies"
KLIBS="$TOOLS/klibs"
BIN="$TOOLS/bin"

log() { echo "[kotlin-native] $*" >&2; }
die() { echo "[kotlin-native] error: $*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------
packages=("clang-$LLVM_MAJOR" "lld-$LLVM_MAJOR" "libclang1-$LLVM_MAJOR" "libclang-common-$LLVM_MAJOR-dev"
  libffi-dev gcc g++ maven default-jdk-headless)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# A JDK and Maven that did not come from Debian (the machine's own) will do.
if command -v java >/dev/null; then missing=("${missing[@]/default-jdk-headless/}"); fi
if command -v mvn >/dev/null; then missing=("${missing[@]/maven/}"); fi
read -r -a missing <<<"${missing[*]:-}"
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- From Maven Central ----------------------------------------------------
# fetch GROUP:ARTIFACT:VERSION:TYPE[:CLASSIFIER] DIR: Maven's own client and cache.
fetch() {
  log "downloading $1 from Maven Central"
  mkdir -p "$TOOLS"
  if ! mvn -B -Dstyle.color=never dependency:copy -Dartifact="$1" -DoutputDirectory="$2" \
    -Dmdep.overWriteReleases=true >"$TOOLS/maven.log" 2>&1; then
    tail -n 30 "$TOOLS/maven.log" >&2
    die "cannot download $1 with Maven (log: $TOOLS/maven.log)"
  fi
}

if [ ! -x "$DIST/bin/kotlinc-native" ]; then
  mkdir -p "$TOOLS/dist"
  rm -rf "$TOOLS/download" "$DIST"
  fetch "org.jetbrains.kotlin:kotlin-native-prebuilt:$KOTLIN_VERSION:tar.gz:linux-x86_64" "$TOOLS/download"
  log "unpacking the compiler"
  tar -xzf "$TOOLS/download/kotlin-native-prebuilt-$KOTLIN_VERSION-linux-x86_64.tar.gz" -C "$TOOLS/dist"
  rm -rf "$TOOLS/download" # Maven keeps its own copy in ~/.m2
  [ -x "$DIST/bin/kotlinc-native" ] || die "the archive has no bin/kotlinc-native"
fi

klib() { # klib ARTIFACT VERSION [CLASSIFIER]
  local name="$1-$2${3:+-$3}.klib"
  if [ ! -s "$KLIBS/$name" ]; then
    fetch "org.jetbrains.kotlinx:$1:$2:klib${3:+:$3}" "$KLIBS"
  fi
}
mkdir -p "$KLIBS"
klib kotlinx-coroutines-core-linuxx64 "$COROUTINES_VERSION"
klib atomicfu-linuxx64 "$ATOMICFU_VERSION"
klib atomicfu-linuxx64 "$ATOMICFU_VERSION" cinterop-interop
klib kotlinx-serialization-core-linuxx64 "$SERIALIZATION_VERSION"
klib kotlinx-serialization-json-linuxx64 "$SERIALIZATION_VERSION"

# --- The dependency folders, from Debian's files ---------------------------
# The names konan.properties gives them for a linux_x64 host and target.
PROPS="$DIST/konan/konan.properties"
# The properties with their continuation lines joined.
PROPS_JOINED=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$PROPS")
prop() { printf '%s\n' "$PROPS_JOINED" | sed -n "s/^$1 *= *//p" | head -n 1 | xargs; }
LLVM_DEP=$(prop 'llvm\.linux_x64\.user')
TOOLCHAIN_DEP=$(prop 'toolchainDependency\.linux_x64')
LIBFFI_DEP=$(prop 'libffiDir\.linux_x64')
LIBGCC_DIR=$(prop 'libGcc\.linux_x64') # relative to the sysroot
[ "$(prop 'llvmVersion\.linux_x64')" = "$LLVM_MAJOR" ] ||
  die "this compiler wants LLVM $(prop 'llvmVersion\.linux_x64'), the script assembles $LLVM_MAJOR"
if [ -z "$LLVM_DEP" ] || [ -z "$TOOLCHAIN_DEP" ] || [ -z "$LIBFFI_DEP" ] || [ -z "$LIBGCC_DIR" ]; then
  die "unexpected $PROPS: cannot read the linux_x64 dependency names"
fi
# Other dependencies of the target (lldb, for the debugger only) become
# placeholders; `$toolchainDependency...` is the toolchain above.
mapfile -t OTHER_DEPS < <(prop 'dependencies\.linux_x64' | tr ' ' '\n' | grep -v -e '^\$' -e '^$' || true)

llvm_root=/usr/lib/llvm-$LLVM_MAJOR
libclang=$(find /usr/lib/x86_64-linux-gnu -maxdepth 1 -name "libclang-$LLVM_MAJOR.so.$LLVM_MAJOR*" | sort | head -n 1)
libclang=$(readlink -f "${libclang:-/nonexistent}")
libgcc_dir=$(dirname "$(gcc -print-libgcc-file-name)")
if [ ! -x "$llvm_root/bin/clang" ] || [ ! -e "$llvm_root/bin/ld.lld" ] || [ ! -f "$libclang" ]; then
  die "clang, ld.lld or libclang $LLVM_MAJOR missing (Debian packages clang-$LLVM_MAJOR, lld-$LLVM_MAJOR, libclang1-$LLVM_MAJOR)"
fi

link() { # link TARGET LINK_NAME: a symlink, replaced if it points elsewhere
  mkdir -p "$(dirname "$2")"
  [ "$(readlink "$2" 2>/dev/null)" = "$1" ] || ln -sfn "$1" "$2"
}

# LLVM: the compiler runs bin/clang (bitcode to object code), bin/ld.lld, and
# loads lib/libclang.so in process for cinterop. Its JNI stub links
# libclang.so.$LLVM_MAJOR by that name: LD_LIBRARY_PATH finds it in lib/.
L="$DEPS/$LLVM_DEP"
for tool in clang clang++ ld.lld llvm-ar llvm-nm llvm-objcopy llvm-strip; do
  [ -e "$llvm_root/bin/$tool" ] && link "$llvm_root/bin/$tool" "$L/bin/$tool"
done
link "$llvm_root/lib/clang" "$L/lib/clang"
link "$libclang" "$L/lib/libclang.so"
link "$libclang" "$L/lib/libclang.so.$LLVM_MAJOR"

# The gcc/glibc toolchain: the sysroot is this machine's root (Debian's
# multiarch folders, named by the property overrides below), libgcc and
# crtbegin.o come from the system gcc.
T="$DEPS/$TOOLCHAIN_DEP"
S="$T/x86_64-unknown-linux-gnu/sysroot"
for d in usr lib lib64; do link "/$d" "$S/$d"; done
# Its binutils (ar builds static caches and `-p static` libraries): Debian's.
for tool in ar ranlib nm objcopy strip ld; do link "/usr/bin/$tool" "$T/x86_64-unknown-linux-gnu/bin/$tool"; done
link "$libgcc_dir" "$S/$LIBGCC_DIR"

# libffi (used by cinterop's callbacks).
link /usr/lib/x86_64-linux-gnu/libffi.a "$DEPS/$LIBFFI_DEP/lib/libffi.a"
link /usr/include/x86_64-linux-gnu "$DEPS/$LIBFFI_DEP/include"

# Placeholders: the compiler only checks that such a folder is not empty.
for dep in "${OTHER_DEPS[@]}"; do
  mkdir -p "$DEPS/$dep"
  echo "Not used here: a placeholder so that the compiler does not try to download $dep." >"$DEPS/$dep/README"
done

# The record of extracted dependencies: one name a line.
record=$(printf '%s\n' "$LLVM_DEP" "$TOOLCHAIN_DEP" "$LIBFFI_DEP" "${OTHER_DEPS[@]}" | sort -u)
[ "$(cat "$DEPS/.extracted" 2>/dev/null)" = "$record" ] || echo "$record" >"$DEPS/.extracted"

# --- Wrappers ----------------------------------------------------------------
# airplaneMode: fail instead of downloading. The sysroot is Debian's root: its
# crt*.o and libraries live in the multiarch folders.
OVERRIDES="airplaneMode=true;crtFilesLocation.linux_x64=usr/lib/x86_64-linux-gnu"
OVERRIDES+=";abiSpecificLibraries.linux_x64=lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib64 usr/lib"
mkdir -p "$BIN"
wrapper() { # wrapper NAME OVERRIDE_SYNTAX
  local file="$BIN/$1" text
  text="#!/usr/bin/env bash
# Generated by scripts/kotlin-native.sh: $1 of Kotlin/Native $KOTLIN_VERSION, offline.
export KONAN_DATA_DIR='$DATA'
export LD_LIBRARY_PATH='$L/lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
exec '$DIST/bin/$1' \"\$@\" $2"
  [ "$(cat "$file" 2>/dev/null)" = "$text" ] || { echo "$text" >"$file" && chmod +x "$file"; }
}
wrapper kotlinc-native "'-Xoverride-konan-properties=$OVERRIDES'"
wrapper cinterop "-Xoverride-konan-properties '$OVERRIDES'"
wrapper klib ""

if [ "${1:-}" = "--check" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo 'fun main() { println("Kotlin/Native " + KotlinVersion.CURRENT + " runs here") }' >"$work/hello.kt"
  "$BIN/kotlinc-native" "$work/hello.kt" -o "$work/hello" >&2
  "$work/hello.kexe"
fi
log "ready: $BIN/kotlinc-native, $BIN/cinterop; klibs in $KLIBS"
