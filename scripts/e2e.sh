#!/usr/bin/env bash
# Runs the Playwright suite against a freshly started stack on its own port and database.
source "$(dirname "$0")/lib.sh"

export DOSSIER_ENV=e2e
export DOSSIER_LISTEN_ADDR=127.0.0.1:3100
export DOSSIER_PUBLIC_URL=http://localhost:3100
export DOSSIER_DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/dossier_e2e"
export DOSSIER_LOG_FORMAT=json
# Rate limits count per client address; suites that sign up many accounts send their own
# X-Forwarded-For so they do not exhaust the sign-up limit of the others.
export DOSSIER_TRUSTED_PROXIES=1
# The live traffic page's test signs in as this administrator.
export DOSSIER_ADMIN_EMAILS=ops@e2e.test
export DOSSIER_METRICS_LISTEN=127.0.0.1:3101
export DOSSIER_BOT_METRICS_LISTEN=127.0.0.1:3102
export DOSSIER_E2E_LOG="$DOSSIER_CACHE/e2e-stack.log"

# A clean database each run, so tests never depend on an earlier run's leftovers.
dropdb --if-exists -h "$PG_HOST" -p "$PG_PORT" -U postgres dossier_e2e
rm -rf "$DOSSIER_CACHE/data/e2e"

"$ROOT/scripts/stack.sh" >"$DOSSIER_E2E_LOG" 2>&1 &
stack=$!
trap 'kill -TERM $stack 2>/dev/null || true; wait $stack 2>/dev/null || true' EXIT

for _ in $(seq 1 300); do
  curl -fsS "http://$DOSSIER_LISTEN_ADDR/readyz" >/dev/null 2>&1 && break
  kill -0 "$stack" 2>/dev/null || { cat "$DOSSIER_E2E_LOG"; die "the stack exited during start-up"; }
  sleep 0.2
done
curl -fsS "http://$DOSSIER_LISTEN_ADDR/readyz" >/dev/null || { cat "$DOSSIER_E2E_LOG"; die "the stack is not ready"; }

cd "$ROOT/end2end"
EMULATOR_URL="http://127.0.0.1:3181" BASE_URL="$DOSSIER_PUBLIC_URL" \
  BOT_METRICS_URL="http://$DOSSIER_BOT_METRICS_LISTEN" SERVER_METRICS_URL="http://$DOSSIER_METRICS_LISTEN" NATS_URL="nats://127.0.0.1:$NATS_PORT" \
  npx playwright test "$@"
# After the whole suite (not a subset): every metric family is there and has moved.
if (($# == 0)); then
  "$ROOT/scripts/metrics-check.sh" "http://$DOSSIER_METRICS_LISTEN" "http://$DOSSIER_BOT_METRICS_LISTEN"
fi
"$ROOT/scripts/secrets-check.sh" "$DOSSIER_E2E_LOG"
