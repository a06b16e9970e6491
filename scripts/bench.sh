#!/usr/bin/env bash
# Benchmarks: every client against one tokio-tungstenite echo server
# (examples/echo_server.rs) in its own process on 127.0.0.1, in one run;
# writes bench/RESULTS.md (one table with ratios, the machine's core count,
# the date, every client's version) and bench/results.svg (the same ratios
# as a chart), quotes them in README.md ("Performance"), and prints each
# DESIGN.md target as a ratio, met or missed.
# Numbers, never assertions about speed. Release builds.
#
# Clients, each a process of its own (examples/bench.rs runs them; protocol
# in bench/README.md): raw TCP with the same framed bytes (the physical
# limit), raw tokio-tungstenite (the ceiling), Tether's Rust API, Tether's C
# ABI (bench/c/bench_client.c, gcc against libtether.a), Node ws (npm),
# Python websockets (PyPI); on one JDK: Tether's Kotlin façade, OkHttp 5,
# Ktor client WebSockets with the CIO and the OkHttp engines (Maven Central,
# bench/jvm/pom.xml). Then Tether's idle memory (1, 1,000, 10,000
# connections), wakeups per idle minute (1 and 100), a reconnect storm of
# 1,000 clients, and the durable outbox. Everything is installed here, from
# the registries, into git-ignored folders (target/bench/, bench/node/).
#
#   scripts/bench.sh                       the full run (about 5 minutes)
#   BENCH_SCALE=0.05 scripts/bench.sh      sizes scaled down, a quick look
#   scripts/bench.sh --smoke               a few seconds of each workload and
#                                          client, debug builds, results to
#                                          target/bench/smoke/ (scripts/test.sh)
#   scripts/bench.sh c raw                 a subset: clients and parts (clients
#   scripts/bench.sh outbox                idle wakeups storm outbox) by name, or
#                                          --clients a,b --parts a,b; a subset or
#                                          a scaled run writes target/bench/partial/
#
# Environment: BENCH_SCALE (0 < s ≤ 10), BENCH_ROUNDS (best of, default 3),
# BENCH_WAKEUP_SECS (default 60 × scale).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { echo "[bench] $*" >&2; }
die() { echo "[bench] ERROR: $*" >&2; exit 2; }

# Which clients to prepare: as examples/bench.rs picks them (--clients, or
# bare words: client keys pick clients, part names parts).
all_clients="tcp,raw,api,c,node,python,kotlin,okhttp,ktor-cio,ktor-okhttp"
smoke=false clients="" picked_clients="" bare_words=false
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --smoke) smoke=true ;;
    --clients) clients="${args[$((i + 1))]:-}"; i=$((i + 1)) ;;
    --parts | --out) i=$((i + 1)) ;;
    --*) ;;
    *)
      bare_words=true
      [[ ",$all_clients," == *",${args[$i]},"* ]] && picked_clients+="${args[$i]},"
      [ "${args[$i]}" = clients ] && picked_clients="$all_clients"
      ;;
  esac
done
if [ -z "$clients" ]; then
  if $bare_words; then clients="$picked_clients"; else clients="$all_clients"; fi
fi
wants() { [[ ",$clients," == *",$1,"* ]]; }

# Idle connections need a socket each, in the client and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 10500 ] || log "ulimit -n is $(ulimit -n): 10,000 idle connections may not fit"

# The smoke runs right after the test suite built the debug artifacts: a
# release build there would double the time, and it measures nothing.
if $smoke; then profile=debug; cargo_profile=(); else profile=release; cargo_profile=(--release); fi
target_dir=${CARGO_TARGET_DIR:-target}
export BENCH_ARTIFACTS="$root/target/bench"
# Per profile: the smoke of a concurrent scripts/test.sh must not swap them.
mkdir -p "$BENCH_ARTIFACTS"/{c,jni}/"$profile"

if wants kotlin; then
  # The Kotlin façade loads the cdylib with its JNI exports (feature jni);
  # the build below without it replaces the file: keep a copy.
  log "cargo build ${cargo_profile[*]} --features jni --lib (the Kotlin façade's JNI library)"
  cargo build --quiet "${cargo_profile[@]}" --features jni --lib
  cp "$target_dir/$profile/libtether.so" "$BENCH_ARTIFACTS/jni/$profile/libtether.so"
  grep -q Java_dev_tether_internal_NativeBridge_connect "$BENCH_ARTIFACTS/jni/$profile/libtether.so" \
    || die "$target_dir/$profile/libtether.so lacks the JNI exports (another build replaced it? run again)"
fi
log "cargo build ${cargo_profile[*]} --lib --example bench --example echo_server"
cargo build --quiet "${cargo_profile[@]}" --lib --example bench --example echo_server

if wants c; then
  command -v gcc >/dev/null || scripts/test-c.sh --install-only
  log "gcc -O2 bench/c/bench_client.c $target_dir/$profile/libtether.a"
  gcc -O2 -std=c11 -Wall -Wextra -Werror -I include bench/c/bench_client.c \
    "$target_dir/$profile/libtether.a" -lpthread -ldl -lm -o "$BENCH_ARTIFACTS/c/$profile/bench_client"
fi

if wants node; then
  command -v node >/dev/null && command -v npm >/dev/null \
    || die "node and npm are needed (apt-get install nodejs npm)"
  if ! (cd bench/node && node -e 'require("ws")' 2>/dev/null) \
    || ! cmp -s bench/node/package-lock.json bench/node/node_modules/.package-lock.json.installed; then
    log "npm ci (ws) into bench/node/node_modules"
    (cd bench/node && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    cp bench/node/package-lock.json bench/node/node_modules/.package-lock.json.installed
  fi
fi

if wants python; then
  venv="$BENCH_ARTIFACTS/venv"
  scripts/python-venv.sh "$venv" bench/python/requirements.txt websockets \
    || die "cannot install the Python client's websockets"
fi

if wants kotlin || wants okhttp || wants ktor-cio || wants ktor-okhttp; then
  if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
    log "installing Maven and a JDK"
    apt-get update -qq && apt-get install -y -qq maven default-jdk-headless >/dev/null
  fi
  # Kotlin 2.3 wants every file of a multiplatform fragment named.
  fragments=$(
    {
      find "$root/kotlin-multiplatform/src/commonMain/kotlin" -name '*.kt' | sort | sed 's/^/common:/'
      find "$root/kotlin-multiplatform/src/jvmMain/kotlin" "$root/bench/jvm/src/main/kotlin" \
        -name '*.kt' | sort | sed 's/^/jvm:/'
    } | paste -sd, -
  )
  # Built already, from the same sources, against jars that are still there?
  stamp="$BENCH_ARTIFACTS/jvm/.built"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fragments" ] \
    && [ -z "$(find kotlin-multiplatform/src/commonMain kotlin-multiplatform/src/jvmMain bench/jvm \
      -newer "$stamp" -type f 2>/dev/null | head -1)" ] \
    && tr ':' '\n' <"$BENCH_ARTIFACTS/jvm/classpath.txt" | while read -r jar; do [ -f "$jar" ] || exit 1; done; then
    log "bench/jvm is up to date"
  else
    log "mvn compile bench/jvm (Tether's façade, OkHttp 5, Ktor; Maven Central)"
    rm -f "$stamp"
    timeout 900 mvn -q -B -Dstyle.color=never -f bench/jvm/pom.xml compile \
      "-Dfragment.sources=$fragments" || die "the JVM clients did not build"
    printf '%s' "$fragments" >"$stamp"
  fi
fi

log "running; load average $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
exec "$target_dir/$profile/examples/bench" run "$@"
