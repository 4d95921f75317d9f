#!/usr/bin/env bash
# Builds Helm v4 from the Go module proxy into a version-keyed cache outside
# the repo (keyed by the Helm and the Go version). A binary already in the
# cache is never rebuilt, so a warm run returns at once. Prints progress to
# stderr and the binary's path as its last stdout line.
#
#   hack/build-helm.sh          build helm if missing
#   hack/build-helm.sh --print  only print the binary's path
#
# HELM_VERSION overrides the pinned version (bump it after checking
# `go list -m -versions helm.sh/helm/v4`).
set -euo pipefail

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
HELM=${HELM_VERSION:-v4.3.2}
GOV=$(go env GOVERSION)
CACHE=${DTWIN_CACHE:-$HOME/.cache/dtwin}
BIN="$CACHE/bin/helm-$HELM-$GOV"

if [[ "${1:-}" == "--print" ]]; then echo "$BIN/helm"; exit 0; fi

step() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [[ -x "$BIN/helm" ]]; then
  step "helm $HELM: cached"
else
  step "helm $HELM: building (first build only; a few minutes on 2 cores)"
  T0=$SECONDS
  # Install into a scratch dir and move into place, so an interrupted build
  # never leaves a binary that the cache check above would trust.
  mkdir -p "$BIN"
  TMP=$(mktemp -d "$BIN/.build.XXXXXX")
  trap 'rm -rf "$TMP"' EXIT
  # Run outside any module so the repo's go.mod files cannot interfere. The
  # version stamp is what upstream's Makefile sets; without it `helm version`
  # reports only the minor version.
  (cd "$TMP" && GOBIN="$TMP" GOFLAGS=-trimpath go install \
      -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
      "helm.sh/helm/v4/cmd/helm@$HELM" >&2)
  mv "$TMP/helm" "$BIN/helm"
  step "helm $HELM: built in $((SECONDS - T0)) s"
fi
echo "$BIN/helm"
