#!/usr/bin/env bash
# The runs of chaos/ against the built server, bot and emulator, with a PostgreSQL cluster and a
# NATS server of the run's own. Expects `make build` to have run.
#   scripts/chaos.sh faults     processes killed while 200 documents flow, then a checker of
#                               losses and duplicates (make faults; FAULTS_* for make soak)
#   scripts/chaos.sh overload   normal rate, then ten times it: shedding, latency, memory
source "$(dirname "$0")/lib.sh"

pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
[[ -x "$pg_bin/initdb" ]] || die "PostgreSQL's initdb not found under /usr/lib/postgresql: run scripts/bootstrap.sh"
nats="$(nats_server_bin)"
[[ -n "$nats" ]] || die "nats-server not found: run scripts/bootstrap.sh"
for bin in server bot tgemu; do
  [[ -x "$CARGO_TARGET_DIR/debug/$bin" ]] || die "no $bin binary: run 'make build'"
done

run="${1:?usage: chaos.sh faults|overload}"
cargo build -q -p chaos --bin "$run"
export DOSSIER_PG_BIN="$pg_bin" DOSSIER_TEST_NATS_BIN="$nats" DOSSIER_MODEL_DIR="$MODEL_DIR"
"$CARGO_TARGET_DIR/debug/$run"
