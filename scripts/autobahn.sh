#!/usr/bin/env bash
# Conformance: runs the Autobahn TestSuite's fuzzing server (client mode)
# against examples/autobahn_client.rs and summarises the verdicts.
#
# usage: scripts/autobahn.sh [--install-only]
#
# Installs the suite on first use (into .tools/autobahn/, git-ignored; later
# runs reuse it), builds the example in release mode, starts the fuzzing
# server on 127.0.0.1, runs the client over cases 1.* to 10.*, stops the
# server, prints
#     cases: N, OK: a, NON-STRICT: b, INFORMATIONAL: c, FAILED: d
# with the failing case ids, and rewrites docs/conformance.md.
# 12.* and 13.* (permessage-deflate) are not run: Tether does not offer it.
#
# Exit status: 0 no case FAILED, 1 some case FAILED, 2 the harness failed.
#
# Environment (all optional):
#   AUTOBAHN_HOME     install folder            (default .tools/autobahn)
#   AUTOBAHN_CASES    comma-separated patterns, e.g. '9.*,6.4.*'; a partial
#                     run leaves docs/conformance.md alone
#   AUTOBAHN_PORT     fuzzing server port on 127.0.0.1 (default: a free one)
#   AUTOBAHN_TIMEOUT  seconds before the client is killed (default 900)
#
# Why Python 2.7: autobahntestsuite (25.10.1 included) is Python 2 code and
# does not run on Python 3. Debian 12 has no python2, so CPython 2.7.18 is
# taken from Debian 11 with `apt-get download` under a private apt config
# (the system's apt sources and dpkg state are untouched), unpacked with
# `dpkg -x`, and the suite's dependencies are installed, pinned, with the
# last pip for 2.7 (20.3.4). wsaccel is compiled, so gcc is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
HERE="$ROOT/scripts/autobahn"
AB_HOME="${AUTOBAHN_HOME:-$ROOT/.tools/autobahn}"
PY27_ROOT="$AB_HOME/root"
PY27="$PY27_ROOT/usr/bin/python2.7"
SUITE_VERSION=25.10.1
AGENT=tether

log() { echo "[autobahn] $*" >&2; }
die() { echo "[autobahn] ERROR: $*" >&2; exit 2; }

py27_env() {
  export LD_LIBRARY_PATH="$PY27_ROOT/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONHOME="$PY27_ROOT/usr"
  # A user site (not PYTHONPATH) so that .pth files (zope's namespace) work.
  export PYTHONUSERBASE="$AB_HOME/env"
  unset PYTHONPATH
}

wstest() { ( py27_env && exec "$PY27" "$HERE/wstest_loopback.py" "$@" ); }

# What an install is made of; a change to any of it means a new install.
install_stamp() {
  { echo "$SUITE_VERSION"; cat "$HERE/requirements-py27.txt"; } | sha256sum | cut -c1-16
}

installed() {
  [ -x "$PY27" ] && [ "$(cat "$AB_HOME/.ready" 2>/dev/null)" = "$(install_stamp)" ] \
    && wstest --autobahnversion >/dev/null 2>&1
}

install_suite() {
  installed && return 0
  log "installing CPython 2.7 and autobahntestsuite $SUITE_VERSION into $AB_HOME (once, ~2 min)"
  command -v dpkg >/dev/null || die "dpkg not found: a Debian or Ubuntu host is needed"
  if ! command -v cc >/dev/null; then
    log "installing gcc (wsaccel is compiled from source)"
    { apt-get update -q && apt-get install -y -q gcc libc6-dev; } >/dev/null \
      || die "could not install gcc"
  fi
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  [ -f "$keyring" ] || die "$keyring missing (apt-get install debian-archive-keyring)"
  # The Debian mirror this machine already uses, from its own apt sources.
  local mirror
  mirror=$( (grep -rhoE "https?://[^ ]+/debian/?$" /etc/apt/sources.list \
    /etc/apt/sources.list.d/ 2>/dev/null || true) | head -1)
  mirror="${mirror%/}"
  [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources"

  rm -rf "$AB_HOME"
  mkdir -p "$AB_HOME"/{apt/lists/partial,apt/cache/archives/partial,debs,wheels}
  cat >"$AB_HOME/apt/sources.list" <<EOF
deb [signed-by=$keyring] $mirror bullseye main
deb [signed-by=$keyring] ${mirror}-security bullseye-security main
EOF
  local -a apt=(-o "Dir::Etc::SourceList=$AB_HOME/apt/sources.list"
    -o Dir::Etc::SourceParts=/nonexistent -o "Dir::State::Lists=$AB_HOME/apt/lists"
    -o "Dir::Cache=$AB_HOME/apt/cache" -o Dir::State::status=/dev/null
    -o APT::Sandbox::User=root)
  timeout 300 apt-get "${apt[@]}" update -q >/dev/null \
    || die "apt-get update (Debian 11, private config) failed"
  (cd "$AB_HOME/debs" && timeout 300 apt-get "${apt[@]}" download -q \
    python2.7 python2.7-minimal libpython2.7-minimal libpython2.7-stdlib \
    libpython2.7 libpython2.7-dev python2.7-dev libssl1.1 libffi7 >/dev/null) \
    || die "apt-get download of Debian 11's python2.7 failed"
  local deb
  for deb in "$AB_HOME"/debs/*.deb; do dpkg -x "$deb" "$PY27_ROOT"; done
  (py27_env && "$PY27" -c 'import ssl, zlib, ctypes') \
    || die "the unpacked python2.7 does not start"

  # pip for 2.7 (20.3.4 is the last), as wheels fetched by Python 3's pip.
  local -a pip3=(python3 -m pip)
  if ! "${pip3[@]}" --version >/dev/null 2>&1; then
    python3 -m venv "$AB_HOME/py3" || die "python3 has neither pip nor venv"
    pip3=("$AB_HOME/py3/bin/python" -m pip)
  fi
  timeout 300 "${pip3[@]}" download -q --no-deps --only-binary :all: --python-version 2.7 \
    -d "$AB_HOME/wheels" pip==20.3.4 setuptools==44.1.1 wheel==0.37.1 \
    || die "could not download pip and setuptools for Python 2.7"
  (
    py27_env
    export CFLAGS="-I$PY27_ROOT/usr/include/python2.7 -I$PY27_ROOT/usr/include"
    export LDFLAGS="-L$PY27_ROOT/usr/lib/x86_64-linux-gnu"
    export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_WARN_SCRIPT_LOCATION=1
    "$PY27" "$AB_HOME/wheels/pip-20.3.4-py2.py3-none-any.whl/pip" install -q --user \
      --no-index --find-links "$AB_HOME/wheels" pip==20.3.4 setuptools==44.1.1 wheel==0.37.1
    timeout 900 "$PY27" -m pip install -q --user -r "$HERE/requirements-py27.txt"
    # Its own metadata asks for unpinned, newer dependencies: they are above.
    timeout 300 "$PY27" -m pip install -q --user --no-deps "autobahntestsuite==$SUITE_VERSION"
  ) >"$AB_HOME/pip-install.log" 2>&1 || {
    tail -30 "$AB_HOME/pip-install.log" >&2
    die "pip install under Python 2.7 failed; log: $AB_HOME/pip-install.log"
  }
  wstest --autobahnversion >/dev/null 2>&1 || die "wstest does not start"
  install_stamp >"$AB_HOME/.ready"
  rm -rf "$AB_HOME/debs" "$AB_HOME/apt/cache"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------------ main
case "${1:-}" in
  "") ;;
  --install-only) install_suite; log "ready: $(wstest --autobahnversion 2>&1 | tr -s '\n' ' ')"; exit 0 ;;
  *) sed -n '2,22p' "$0" >&2; exit 2 ;;
esac

t_start=$(date +%s)
install_suite
suite="$(wstest --autobahnversion 2>&1 | tr -s '\n' ' ' | sed 's/ *$//'), \
on $( (py27_env && "$PY27" --version) 2>&1)"

log "building examples/autobahn_client.rs (release)"
cargo build --release --quiet --example autobahn_client
metadata=$(cargo metadata --no-deps --format-version 1)
target_dir=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' <<<"$metadata")
tether_version=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["packages"][0]["version"])' <<<"$metadata")
client="$target_dir/release/examples/autobahn_client"
[ -x "$client" ] || die "$client was not built"

work="$(mktemp -d /tmp/tether-autobahn.XXXXXX)"
reports="$AB_HOME/reports"
rm -rf "$reports"
mkdir -p "$reports"
port="${AUTOBAHN_PORT:-$(free_port)}"
port_open "$port" && die "127.0.0.1:$port is already in use"

python3 - "$HERE/fuzzingserver.json" "$work/spec.json" "$reports" "$port" <<'EOF'
import json, os, sys
src, dst, outdir, port = sys.argv[1:5]
spec = json.load(open(src))
spec["url"] = "ws://127.0.0.1:%s" % port
spec["outdir"] = outdir
cases = [c.strip() for c in os.environ.get("AUTOBAHN_CASES", "").split(",") if c.strip()]
if cases:
    spec["cases"] = cases
json.dump(spec, open(dst, "w"), indent=2)
EOF

server_pid=""
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 2' INT TERM

log "starting the fuzzing server on 127.0.0.1:$port"
(cd "$work" && py27_env && exec "$PY27" "$HERE/wstest_loopback.py" \
  -m fuzzingserver -s "$work/spec.json" --webport 0) >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 150); do
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the fuzzing server exited"; }
  port_open "$port" && break
  sleep 0.2
done
port_open "$port" || { cat "$work/server.log" >&2; die "the fuzzing server did not listen within 30 s"; }

log "running the client ($suite)"
t0=$(date +%s)
set +e
AUTOBAHN_URL="ws://127.0.0.1:$port" AUTOBAHN_AGENT="$AGENT" \
  timeout --kill-after=10 "${AUTOBAHN_TIMEOUT:-900}" "$client"
client_rc=$?
set -e
seconds=$(($(date +%s) - t0))
log "client finished (status $client_rc) in $seconds s"
sleep 0.5 # the server writes its reports after the client's last request
stop_server

[ -f "$reports/index.json" ] || { tail -20 "$work/server.log" >&2; die "no report was written"; }
summary_args=("$reports/index.json" "$AGENT")
if [ -z "${AUTOBAHN_CASES:-}" ]; then
  mkdir -p docs
  summary_args+=(--markdown docs/conformance.md --suite-version "$suite"
    --tether-version "$tether_version" --seconds "$seconds")
fi
set +e
python3 "$HERE/summarize.py" "${summary_args[@]}"
rc=$?
set -e
echo "report: $reports/index.html (whole run: $(($(date +%s) - t_start)) s)"
if [ "$rc" -eq 0 ] && [ "$client_rc" -ne 0 ]; then
  die "the client failed (status $client_rc)"
fi
exit "$rc"
