#!/usr/bin/env bash
# Installs (once) the PostgreSQL 15 and Mosquitto 2 packages whose binaries the tests and
# `make up` run as their own processes on free loopback ports (tools/localcp: postgres.py,
# mosquitto.py). Idempotent: does nothing when everything is installed. The Debian packages
# also ship system services (a `15/main` cluster on :5432, a broker on :1883); we never use
# them, so for the packages installed by this run they are kept from starting during the
# install (policy-rc.d) and stopped and disabled afterwards if they started anyway. Services
# of packages that were already installed are left alone: they may be someone's real database.
set -euo pipefail

SUDO=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "error: run as root (or install sudo) to apt-get install" >&2; exit 1; }
  SUDO=(sudo)
fi

installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

# postgresql-15 is the version the code and docs assume (Debian 12); where it is not packaged,
# the distribution's default major version does (tools/localcp takes /usr/lib/postgresql/15/bin,
# else the newest /usr/lib/postgresql/*/bin). The metapackage counts as installed too.
want=(postgresql-15 postgresql-client-15 mosquitto mosquitto-clients)
missing=()
for pkg in "${want[@]}"; do
  installed "$pkg" || installed "${pkg%-15}" || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  echo "[install-services] already installed: ${want[*]}"
  exit 0
fi

echo "[install-services] installing: ${missing[*]}"
"${SUDO[@]}" apt-get update -qq
if ! apt-cache show postgresql-15 >/dev/null 2>&1; then
  echo "[install-services] postgresql-15 is not packaged here; using the default postgresql"
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sed -e 's/^postgresql-15$/postgresql/' \
    -e 's/^postgresql-client-15$/postgresql-client/')
fi

# policy-rc.d exiting 101 tells invoke-rc.d (used by the packages' postinst) not to start
# anything. Only add one if there is none, and remove only the one we added.
POLICY=/usr/sbin/policy-rc.d
added_policy=false
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\n# temporary, from dtwin hack/install-services.sh\nexit 101\n' | "${SUDO[@]}" tee $POLICY >/dev/null
  "${SUDO[@]}" chmod 755 $POLICY
  added_policy=true
fi
cleanup() { if $added_policy; then "${SUDO[@]}" rm -f "$POLICY"; fi; }
trap cleanup EXIT

# dpkg's chatter goes to a log that is shown only if the install fails.
apt_log=$(mktemp)
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >"$apt_log" 2>&1; then
  cat "$apt_log" >&2
  exit 1
fi
rm -f "$apt_log"

# Stop and disable the system service of each package we just installed, with systemd if it
# is PID 1 and with the SysV scripts otherwise (containers often have no init system at all).
disable_service() {
  local svc=$1
  if [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/$svc ]]; then
    "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
    command -v update-rc.d >/dev/null && { "${SUDO[@]}" update-rc.d "$svc" disable >/dev/null 2>&1 || true; }
  fi
  echo "[install-services] system service '$svc' stopped and disabled (we run our own instances)"
}
for pkg in "${missing[@]}"; do
  case $pkg in
    postgresql-15 | postgresql) disable_service postgresql ;;
    mosquitto) disable_service mosquitto ;;
  esac
done

# Report anything still listening on the packages' default ports, without touching it.
shopt -s nullglob
for pid_file in /run/mosquitto/mosquitto.pid /run/postgresql/*.pid; do
  if [[ -f $pid_file ]] && kill -0 "$(head -1 "$pid_file")" 2>/dev/null; then
    echo "[install-services] note: a system service is still running ($pid_file); dtwin uses its own ports"
  fi
done
echo "[install-services] done: $(mosquitto -h 2>/dev/null | head -1 || true); $(psql --version)"
