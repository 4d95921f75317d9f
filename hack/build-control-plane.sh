#!/usr/bin/env bash
# Builds the local control plane's binaries (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok) from the Go module
# proxy at the versions pinned in tools/*/go.mod, into a version-keyed cache
# outside the repo. A binary already in the cache is never rebuilt, so a warm
# run returns at once. Prints where the binaries are as its last line.
#
#   hack/build-control-plane.sh          build what is missing
#   hack/build-control-plane.sh --print  only print the bin dir
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly

ver() { sed -nE "s#^(require)?[[:space:]]*$1 (v[^ ]*).*#\\2#p" "$ROOT/tools/$2/go.mod" | head -1; }
K8S=$(ver k8s.io/kubernetes k8s)
ETCD=$(ver go.etcd.io/etcd/server/v3 etcd)
KWOK=$(ver sigs.k8s.io/kwok kwok)
GOV=$(go env GOVERSION)
for v in K8S ETCD KWOK; do
  [[ -n "${!v}" ]] || { echo "error: could not read the $v version from tools/*/go.mod" >&2; exit 1; }
done
CACHE=${DTWIN_CACHE:-$HOME/.cache/dtwin}
BIN="$CACHE/bin/k8s-$K8S-etcd-$ETCD-kwok-$KWOK-$GOV"

if [[ "${1:-}" == "--print" ]]; then echo "$BIN"; exit 0; fi
mkdir -p "$BIN"

trap 'kill $(jobs -p) 2>/dev/null || true' EXIT  # no heartbeat outlives the script
step() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

build() {  # build <name> <module dir> <package> [ldflags]
  local name=$1 dir=$2 pkg=$3 ldf=${4:-}
  if [[ -x "$BIN/$name" ]]; then step "$name: cached"; return; fi
  step "$name: building $pkg (first build only; several minutes on 2 cores)"
  local t0=$SECONDS
  # go build is silent for minutes; a heartbeat shows it is alive.
  ( while sleep 30; do step "$name: still compiling ($((SECONDS - t0)) s)"; done ) &
  local ticker=$!
  (cd "$ROOT/tools/$dir" && go build -trimpath -tags=selinux,notest \
      -ldflags="-s -w $ldf" -o "$BIN/$name.tmp" "$pkg") || { kill "$ticker"; exit 1; }
  kill "$ticker"
  mv "$BIN/$name.tmp" "$BIN/$name"
  step "$name: built in $((SECONDS - t0)) s"
}

# Version stamping as upstream's hack/lib/version.sh does it; without it
# /version reports v0.0.0 and clients warn about skew.
MINOR=${K8S#v1.}; MINOR=${MINOR%%.*}
LDF=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF="$LDF -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
done

T0=$SECONDS
build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK"
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build "$c" k8s "k8s.io/kubernetes/cmd/$c" "$LDF"
done
# kwok's default stages live in its module; copy them next to the binaries so
# the runtime needs no Go toolchain.
if [[ ! -d "$BIN/kwok-stages" ]]; then
  SRC=$(cd "$ROOT/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  cp -r "$SRC/kustomize/stage" "$BIN/kwok-stages.tmp" && chmod -R u+w "$BIN/kwok-stages.tmp"
  mv "$BIN/kwok-stages.tmp" "$BIN/kwok-stages"
fi
step "control plane binaries ready in $((SECONDS - T0)) s"
echo "$BIN"
