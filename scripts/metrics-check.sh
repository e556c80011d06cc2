#!/usr/bin/env bash
# After the end-to-end suite: every key metric family is on the server's and the bot's
# /metrics, with a non-zero sample. Prints each family's sample total.
source "$(dirname "$0")/lib.sh"

server="${1:?server base URL}"
bot="${2:?bot metrics base URL}"

check() {
  local url="$1"; shift
  local text
  text="$(curl -fsS "$url/metrics")" || die "no /metrics at $url"
  local missing=0
  for family in "$@"; do
    local total
    total="$(awk -v f="$family" '($1 == f || index($1, f "{") == 1) && $1 !~ /^#/ { s += $NF } END { printf "%g", s }' <<<"$text")"
    if [[ "$total" == "0" ]]; then
      echo "  MISSING  $family"
      missing=1
    else
      printf '  %-55s %s\n' "$family" "$total"
    fi
  done
  return "$missing"
}

say "server metrics ($server/metrics)"
server_ok=0
check "$server" \
  http_requests_total \
  http_request_duration_seconds_count \
  dossier_server_fn_calls_total \
  dossier_server_fn_duration_seconds_count \
  dossier_pipeline_stage_seconds_count \
  dossier_embedding_texts_total \
  dossier_embedding_seconds_count \
  dossier_notifications_published_total \
  dossier_rag_questions_total \
  dossier_rag_ask_seconds_count || server_ok=1
# Queue depths are gauges and may rightly read 0 (nothing waiting): present is enough.
if grep -q '^dossier_jetstream_consumer_pending{' <<<"$(curl -fsS "$server/metrics")"; then
  printf '  %-55s %s\n' dossier_jetstream_consumer_pending present
else
  echo "  MISSING  dossier_jetstream_consumer_pending"
  server_ok=1
fi
say "bot metrics ($bot/metrics)"
bot_ok=0
check "$bot" \
  dossier_bot_updates_total \
  dossier_bot_update_duration_seconds_count \
  dossier_telegram_requests_total \
  dossier_telegram_request_duration_seconds_count \
  dossier_bot_api_calls_total \
  dossier_bot_api_call_duration_seconds_count \
  dossier_bot_notifications_total || bot_ok=1
((server_ok == 0 && bot_ok == 0)) || die "metric families are missing after the end-to-end suite"
