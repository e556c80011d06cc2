#!/usr/bin/env bash
# Runs the built system in the foreground: the server (web, API, pipeline workers) and, when no
# TELEGRAM_BOT_TOKEN is set, the Bot API emulator with the bot pointed at it. Ctrl-C (or
# SIGTERM) stops everything this script started. Expects `cargo leptos build` to have run.
source "$(dirname "$0")/lib.sh"

BIN_DIR="$CARGO_TARGET_DIR/debug"
export DOSSIER_ENV="${DOSSIER_ENV:-dev}"
export DOSSIER_LISTEN_ADDR="${DOSSIER_LISTEN_ADDR:-127.0.0.1:3000}"
port="${DOSSIER_LISTEN_ADDR##*:}"
export DOSSIER_PUBLIC_URL="${DOSSIER_PUBLIC_URL:-http://localhost:$port}"
export DOSSIER_DATABASE_URL="${DOSSIER_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/dossier}"
export DOSSIER_NATS_URL="${DOSSIER_NATS_URL:-nats://127.0.0.1:$NATS_PORT}"
export DOSSIER_SITE_ROOT="${DOSSIER_SITE_ROOT:-$ROOT/target/site}"
export DOSSIER_DATA_DIR="${DOSSIER_DATA_DIR:-$DOSSIER_CACHE/data/$DOSSIER_ENV}"
export DOSSIER_MODEL_DIR="$MODEL_DIR"
export TGEMU_ADDR="${TGEMU_ADDR:-127.0.0.1:$((port + 81))}"
export DOSSIER_METRICS_LISTEN="${DOSSIER_METRICS_LISTEN:-127.0.0.1:$((port + 1))}"
export DOSSIER_BOT_METRICS_LISTEN="${DOSSIER_BOT_METRICS_LISTEN:-127.0.0.1:$((port + 2))}"

[[ -x "$BIN_DIR/server" ]] || die "no server binary in $BIN_DIR: run 'cargo leptos build' (make build)"

children=()
nats_was_running=yes
stop_all() {
  trap - INT TERM EXIT
  for pid in "${children[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Stop NATS only if this run started it; one that was already running stays up.
  if [[ "$nats_was_running" == no ]]; then "$ROOT/scripts/services.sh" down; fi
}
trap stop_all INT TERM EXIT

nats_was_running=yes
[[ -f "$DOSSIER_CACHE/nats.pid" ]] || nats_was_running=no
"$ROOT/scripts/services.sh" up

# Without a real bot token the local emulator stands in for Telegram; the server needs the
# same token to verify Mini App initData.
if [[ -z "${TELEGRAM_BOT_TOKEN:-}" ]]; then
  use_emulator=yes
  export TELEGRAM_BOT_TOKEN="123456:emulator-token"
else
  use_emulator=no
fi
export DOSSIER_TELEGRAM_BOT_TOKEN="$TELEGRAM_BOT_TOKEN"

# The bot's service identity: a random secret made once per machine, shared by the server
# (which verifies the bot's signed calls) and the bot (which signs them).
secret_file="$DOSSIER_CACHE/bot-service-secret"
if [[ ! -s "$secret_file" ]]; then
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret_file")
fi
export DOSSIER_BOT_SECRET="$(cat "$secret_file")"
export DOSSIER_SERVICES__BOT__SECRET="$DOSSIER_BOT_SECRET"
export DOSSIER_SERVICES__BOT__PERMISSIONS="[users:read, telegram:link, telegram:updates, documents:upload, documents:read, rag:query]"
export DOSSIER_API_URL="http://$DOSSIER_LISTEN_ADDR"

"$BIN_DIR/server" &
children+=($!)

for _ in $(seq 1 300); do
  curl -fsS "http://$DOSSIER_LISTEN_ADDR/healthz" >/dev/null 2>&1 && break
  kill -0 "${children[0]}" 2>/dev/null || die "the server exited during start-up"
  sleep 0.2
done

if [[ "$use_emulator" == yes ]]; then
  "$BIN_DIR/tgemu" &
  children+=($!)
  export DOSSIER_BOT_API_URL="http://$TGEMU_ADDR/"
  for _ in $(seq 1 100); do
    curl -fsS -X POST "http://$TGEMU_ADDR/bot$TELEGRAM_BOT_TOKEN/getMe" >/dev/null 2>&1 && break
    sleep 0.1
  done
  say "no TELEGRAM_BOT_TOKEN: the bot runs against the local Bot API emulator at http://$TGEMU_ADDR/"
  say "  chat with the bot in your browser: http://$TGEMU_ADDR/"
fi
"$BIN_DIR/bot" &
children+=($!)

say "Dossier is up: $DOSSIER_PUBLIC_URL   (readiness: http://$DOSSIER_LISTEN_ADDR/readyz, metrics: http://$DOSSIER_METRICS_LISTEN/metrics)"
say "  the bot's health and metrics: http://$DOSSIER_BOT_METRICS_LISTEN/healthz, /metrics"
say "press ctrl-C to stop"
wait -n "${children[@]}" || true
die "a process exited; stopping the rest"
