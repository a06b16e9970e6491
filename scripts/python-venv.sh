#!/usr/bin/env bash
# Makes (or keeps) a Python venv at VENV with REQUIREMENTS installed from
# PyPI; a stamp file skips the work while the requirements are unchanged
# and `import MODULE` works. Installs Debian's python3-venv if venv needs it.
# Used by scripts/test-interop.sh and scripts/bench.sh.
#
# usage: scripts/python-venv.sh VENV REQUIREMENTS MODULE
set -euo pipefail
venv=$1 requirements=$2 module=$3
stamp="$venv/.requirements.installed"
die() { echo "[python-venv] $*" >&2; exit 1; }
if cmp -s "$requirements" "$stamp" && "$venv/bin/python" -c "import $module" 2>/dev/null; then
  exit 0
fi
echo "[python-venv] pip install into $venv ($module)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
if ! python3 -m venv "$venv" 2>/dev/null; then
  # Debian's python3 needs python3-venv for this.
  rm -rf "$venv"
  echo "[python-venv] installing python3-venv" >&2
  { apt-get update -q && apt-get install -y -q python3-venv; } >/dev/null \
    || die "python3 -m venv fails and python3-venv could not be installed"
  python3 -m venv "$venv" || die "python3 -m venv failed"
fi
timeout 300 "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  -r "$requirements" || die "pip install failed"
cp "$requirements" "$stamp"
