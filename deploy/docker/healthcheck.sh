#!/bin/bash
# healthcheck HOST:PORT [PATH]: exits 0 when `GET http://HOST:PORT/PATH` answers 200.
#
# The runtime images are debian:bookworm-slim without curl or wget; rather than adding curl
# and its libraries to every image for one probe, this uses bash's /dev/tcp. A listen address
# of 0.0.0.0 (or [::]) is probed on 127.0.0.1. Used by the images' HEALTHCHECK and by
# deploy/compose.yaml; Kubernetes uses its own httpGet probes instead.
set -euo pipefail

addr="${1:?usage: healthcheck HOST:PORT [PATH]}"
path="${2:-/healthz}"
host="${addr%:*}"
port="${addr##*:}"
case "$host" in
  "" | 0.0.0.0 | "[::]" | "::") host=127.0.0.1 ;;
esac
host="${host#[}"
host="${host%]}"

exec 3<>"/dev/tcp/$host/$port"
printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$path" "$host" >&3
status=""
IFS= read -r -t 5 status <&3 || true
exec 3<&- 3>&-
[[ "$status" == HTTP/1.?" 200"* ]] || {
  echo "GET $path on $host:$port: ${status:-no answer}" >&2
  exit 1
}
