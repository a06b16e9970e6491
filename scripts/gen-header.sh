#!/usr/bin/env bash
# Regenerates include/tether.h from src/ffi/ (and src/error.rs) with the pinned cbindgen.
#   scripts/gen-header.sh          write include/tether.h
#   scripts/gen-header.sh --check  fail if the checked-in header differs
set -euo pipefail
cd "$(dirname "$0")/.."
CBINDGEN_VERSION=0.29.4

if ! command -v cbindgen >/dev/null || [ "$(cbindgen --version | awk '{print $2}')" != "$CBINDGEN_VERSION" ]; then
  echo "[gen-header] installing cbindgen $CBINDGEN_VERSION" >&2
  cargo install --locked --quiet "cbindgen@$CBINDGEN_VERSION" >&2
fi

generate() {
  # The exclude/rename trick for ws_message_kind makes cbindgen warn that it
  # cannot find the excluded alias; that warning is expected.
  cbindgen --quiet --config cbindgen.toml --crate tether --output "$1" 2> >(grep -vE "Can.t find ws_(message_kind|log_level)" >&2)
}

if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  generate "$tmp"
  if ! diff -u include/tether.h "$tmp"; then
    echo "[gen-header] include/tether.h is stale: run scripts/gen-header.sh" >&2
    exit 1
  fi
  echo "[gen-header] include/tether.h is up to date"
else
  generate include/tether.h
  echo "[gen-header] wrote include/tether.h"
fi
