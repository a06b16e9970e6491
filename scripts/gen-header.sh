#!/usr/bin/env bash
# Regenerates the checked-in C headers with the pinned cbindgen:
# include/tether.h from src/ffi/ (and src/error.rs), and
# include/tether_testkit.h from testkit/src/ffi/ (the test kit's own header).
#   scripts/gen-header.sh          write both headers
#   scripts/gen-header.sh --check  fail if a checked-in header differs
set -euo pipefail
cd "$(dirname "$0")/.."
CBINDGEN_VERSION=0.29.4

if ! command -v cbindgen >/dev/null || [ "$(cbindgen --version | awk '{print $2}')" != "$CBINDGEN_VERSION" ]; then
  echo "[gen-header] installing cbindgen $CBINDGEN_VERSION" >&2
  cargo install --locked --quiet "cbindgen@$CBINDGEN_VERSION" >&2
fi

generate_tether() {
  # The exclude/rename trick for ws_message_kind makes cbindgen warn that it
  # cannot find the excluded alias; that warning is expected.
  cbindgen --quiet --config cbindgen.toml --crate tether --output "$1" 2> >(grep -vE "Can.t find ws_(message_kind|log_level)" >&2)
}

generate_testkit() {
  cbindgen --quiet --config testkit/cbindgen.toml --crate tether-testkit --output "$1" testkit
}

# Each line: the header, the function that generates it.
headers=("include/tether.h generate_tether" "include/tether_testkit.h generate_testkit")

if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  for entry in "${headers[@]}"; do
    read -r header generator <<<"$entry"
    "$generator" "$tmp"
    if ! diff -u "$header" "$tmp"; then
      echo "[gen-header] $header is stale: run scripts/gen-header.sh" >&2
      exit 1
    fi
    echo "[gen-header] $header is up to date"
  done
else
  for entry in "${headers[@]}"; do
    read -r header generator <<<"$entry"
    "$generator" "$header"
    echo "[gen-header] wrote $header"
  done
fi
