#!/usr/bin/env bash
# After the end-to-end suite: the stack's log (server, bot and emulator output) must not
# contain the bot token or the bot's service secret, in any process's lines.
source "$(dirname "$0")/lib.sh"

log="${1:?the stack log}"
[[ -s "$log" ]] || die "no stack log at $log"
secret_file="$DOSSIER_CACHE/bot-service-secret"
found=0
check() {
  local what="$1" value="$2"
  [[ -n "$value" ]] || return 0
  local count
  count="$(grep -cF -- "$value" "$log" || true)"
  if ((count > 0)); then
    echo "  LEAK  the $what appears on $count line(s) of $log"
    found=1
  else
    echo "  ok    the $what appears nowhere in $(wc -l <"$log") lines"
  fi
}
say "secrets in the stack log"
check "bot token" "${TELEGRAM_BOT_TOKEN:-123456:emulator-token}"
# The token's secret half alone, too (a URL may carry it after the bot id).
token="${TELEGRAM_BOT_TOKEN:-123456:emulator-token}"
check "bot token's secret part" "${token#*:}"
check "service secret" "$(cat "$secret_file" 2>/dev/null || true)"
((found == 0)) || die "secrets leaked into the logs"
