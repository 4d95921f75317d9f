#!/usr/bin/env bash
# Builds the ingest benchmark's MQTT load generator (tools/mqttload) into a cache
# outside the repo, keyed by the hash of its go.mod, go.sum and *.go (and the Go
# version), so a warm run returns at once and an edit rebuilds. Prints progress to
# stderr and the binary's path as its last stdout line.
#
#   hack/build-mqttload.sh          build mqttload if missing
#   hack/build-mqttload.sh --print  only print the binary's path
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC="$ROOT/tools/mqttload"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly
GOV=$(go env GOVERSION)
KEY=$( (cat "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go; echo "$GOV") | sha256sum | cut -c1-12)
CACHE=${DTWIN_CACHE:-$HOME/.cache/dtwin}
BIN="$CACHE/bin/mqttload-$KEY"

if [[ "${1:-}" == "--print" ]]; then echo "$BIN/mqttload"; exit 0; fi

step() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$BIN"
# One builder at a time: the benchmark and a developer (or two helpers) may race.
exec 9>"$BIN.lock"
flock 9
if [[ -x "$BIN/mqttload" ]]; then
  step "mqttload: cached"
else
  step "mqttload: building (first build only)"
  T0=$SECONDS
  # Build to a temporary name and move into place, so an interrupted build never
  # leaves a binary that the cache check above would trust.
  (cd "$SRC" && go build -trimpath -ldflags="-s -w" -o "$BIN/mqttload.tmp" .) >&2
  mv "$BIN/mqttload.tmp" "$BIN/mqttload"
  step "mqttload: built in $((SECONDS - T0)) s"
fi
echo "$BIN/mqttload"
