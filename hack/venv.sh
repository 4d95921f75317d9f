#!/usr/bin/env bash
# Creates (once) the project's virtualenv in a cache outside the repo, keyed by
# the hash of pyproject.toml and the Python version, and prints its path. A
# second run with the same pyproject returns at once. Only dependencies are
# installed: the checkout's own packages come from PYTHONPATH (set by the
# Makefile and pytest's `pythonpath`), so one cached venv serves any clone.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
# Keyed by the dependency lists only, so editing tool settings in pyproject.toml
# does not rebuild the venv.
# `hack/venv.sh runtime`: the runtime dependencies only, as the container images install them (the image
# tests run the images' entrypoints with it, so a module importing a dev-only package fails there).
KIND=${1:-dev}
REQS=$("$PY" - "$ROOT/pyproject.toml" "$KIND" <<'PYEOF'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
print("\n".join(p["dependencies"] + (p["optional-dependencies"]["dev"] if sys.argv[2] == "dev" else [])))
PYEOF
)
KEY=$( (echo "$REQS"; $PY --version) | sha256sum | cut -c1-12)
if [[ $KIND == runtime ]]; then
  VENV=${DTWIN_CACHE:-$HOME/.cache/dtwin}/venv-runtime-$KEY
else
  VENV=${DTWIN_CACHE:-$HOME/.cache/dtwin}/venv-$KEY
fi
mkdir -p "$(dirname "$VENV")"
# One builder at a time: make evaluates $(VENV) more than once, and helpers may race.
exec 9>"$VENV.lock"
flock 9
if [[ ! -f "$VENV/.complete" ]]; then
  echo "[venv] creating $VENV (first run only)" >&2
  rm -rf "$VENV"
  $PY -m venv "$VENV"
  echo "$REQS" > "$VENV/requirements.txt"
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar on \
      -r "$VENV/requirements.txt" >&2
  touch "$VENV/.complete"
fi
echo "$VENV"
