#!/usr/bin/env bash
# Interop: installs the peer servers from their registries, then runs
# tests/interop.rs against them with TETHER_INTEROP=1 (a missing peer fails).
#   Node's ws:           npm ci into tests/interop/node_modules (package-lock.json)
#   Python's websockets: pip into .tools/interop/venv (tests/interop/requirements.txt)
#   Python's sse-starlette (for tests/sse.rs): pip into .tools/interop/sse-venv
#     (tests/interop/sse_requirements.txt)
# Both folders are git-ignored; a second run only checks them.
#   scripts/test-interop.sh                 install, then run the tests
#   scripts/test-interop.sh --install-only  install only (scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "[interop] $*" >&2; }
die() { echo "[interop] ERROR: $*" >&2; exit 2; }

# ---- Node's ws
command -v node >/dev/null && command -v npm >/dev/null \
  || die "node and npm are needed (apt-get install nodejs npm)"
if ! (cd tests/interop && node -e 'require("ws")' 2>/dev/null) \
  || ! cmp -s tests/interop/package-lock.json tests/interop/node_modules/.package-lock.json.installed; then
  log "npm ci (ws)"
  (cd tests/interop && timeout 300 npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed"
  cp tests/interop/package-lock.json tests/interop/node_modules/.package-lock.json.installed
fi

# ---- Python's websockets
venv=.tools/interop/venv
scripts/python-venv.sh "$venv" tests/interop/requirements.txt websockets \
  || die "cannot install Python's websockets"

# ---- Python's sse-starlette (SSE)
sse_venv=.tools/interop/sse-venv
scripts/python-venv.sh "$sse_venv" tests/interop/sse_requirements.txt sse_starlette \
  || die "cannot install Python's sse-starlette"

log "node $(node --version), ws $(cd tests/interop && node -p 'require("ws/package.json").version'), \
$("$venv/bin/python" --version), websockets $("$venv/bin/python" -c 'import websockets; print(websockets.__version__)'), \
sse-starlette $("$sse_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("sse-starlette"))')"
[ "${1:-}" = "--install-only" ] && exit 0
TETHER_INTEROP=1 cargo test --test interop --test sse
