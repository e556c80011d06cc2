#!/usr/bin/env bash
# Finds or starts the services Dossier needs: PostgreSQL and a NATS (>= 2.11, JetStream).
#   services.sh up     start what is not running (prints nothing else on success)
#   services.sh down   stop the NATS that `up` started
source "$(dirname "$0")/lib.sh"

PIDFILE="$DOSSIER_CACHE/nats.pid"

nats_up() {
  local version
  version="$(nats_version_on_port "$NATS_PORT")"
  [[ -n "$version" ]] && version_at_least "$version" 2.11
}

start_nats() {
  if nats_up; then return; fi
  local version
  version="$(nats_version_on_port "$NATS_PORT")"
  [[ -z "$version" ]] || die "port $NATS_PORT runs NATS $version (< 2.11); set DOSSIER_NATS_PORT to a free port"
  local bin
  bin="$(nats_server_bin)"
  [[ -n "$bin" ]] || die "nats-server not found: run scripts/bootstrap.sh"
  mkdir -p "$NATS_STORE"
  say "starting NATS on 127.0.0.1:$NATS_PORT (store $NATS_STORE)"
  setsid "$bin" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$NATS_STORE" \
    -l "$DOSSIER_CACHE/nats.log" </dev/null >/dev/null 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do nats_up && return; sleep 0.1; done
  die "NATS did not start; see $DOSSIER_CACHE/nats.log"
}

stop_nats() {
  if [[ -f "$PIDFILE" ]]; then
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$PIDFILE"
  fi
}

case "${1:-up}" in
  up)
    pg_up || die "PostgreSQL does not answer on $PG_HOST:$PG_PORT: run scripts/bootstrap.sh"
    start_nats
    ;;
  down) stop_nats ;;
  *) die "usage: services.sh up|down" ;;
esac
