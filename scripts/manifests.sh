#!/usr/bin/env bash
# Renders and validates every deployment file: the kustomizations under deploy/ (kubectl
# kustomize), their objects against Kubernetes' schemas (kubernetes-validate) and
# deploy/schemas/ (the CRD kinds), deploy/compose.yaml and .github/workflows/ (schemas vendored
# in check-jsonschema), workload rules and references. Fast (seconds); see scripts/manifests.py.
#   scripts/manifests.sh [--root DIR]    DIR: validate another checkout (default: this one)
source "$(dirname "$0")/lib.sh"

install_manifest_tools

# A renderer: kubectl's built-in kustomize (v4 or newer: `labels`, `patches`, components), or a
# standalone kustomize.
renderer="" label="" client=""
kubectl_bin="${KUBECTL:-$(command -v kubectl || true)}"
if [[ -n "$kubectl_bin" ]]; then
  client="$("$kubectl_bin" version --client 2>/dev/null || true)"
  kustomize_version="$(sed -n 's/^Kustomize Version: v\{0,1\}\([0-9.]*\).*/\1/p' <<<"$client")"
  kubectl_version="$(sed -n 's/^Client Version: \(.*\)/\1/p' <<<"$client")"
  if [[ -n "$kustomize_version" ]] && version_at_least "$kustomize_version" 4.0; then
    renderer="$kubectl_bin kustomize"
    label="$kubectl_bin $kubectl_version (kustomize v$kustomize_version)"
  else
    warn "$kubectl_bin ${kubectl_version:-?} has kustomize ${kustomize_version:-unknown}; rendering needs v4 or newer"
  fi
fi
if [[ -z "$renderer" ]] && command -v kustomize >/dev/null; then
  renderer="$(command -v kustomize) build"
  label="$renderer ($(kustomize version 2>/dev/null | head -n1))"
fi
[[ -n "$renderer" ]] || die "no kubectl (>= 1.21, with kustomize >= v4) or kustomize can render deploy/: install kubectl (scripts/bootstrap.sh installs Debian's kubernetes-client when there is none, which is too old on bookworm) or set KUBECTL"

exec "$MANIFEST_VENV/bin/python" "$ROOT/scripts/manifests.py" \
  --renderer "$renderer" --renderer-label "$label" "$@"
