"""Embedded mode's API gateway: `python -m dtwin_api serve` as a local process over the embedded database and broker.

What the Helm chart's API Deployment and bootstrap Job do in a cluster: a JWT signing key generated once and kept
(here `RUN/api/jwt-secret`, mode 0600, so tokens survive a restart of the process), the first admin created with a
random password, and the API serving on :8080 (or a free port). The password is shown once, when the admin is
created; `make up` prints it then and keeps it only in `RUN/api/admin-password` (0600) for the local user.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from dtwin_localcp import ports, processes
from dtwin_localcp.kubeapi import wait_until

log = logging.getLogger("dtwin")
NAME = "api"


@dataclass(frozen=True)
class ApiProcess:
    url: str
    admin: str
    password_file: Path
    new_password: str | None  # set only by the `up` that created the admin


def _secret_file(path: Path, make: str) -> str:
    """The file's content, creating it (0600) with `make` the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make)
    return path.read_text().strip()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def start(run_dir: Path, env: dict[str, str], database_url: str, mqtt_port: int, kubeconfig: Path | None) -> ApiProcess:
    """Create the first admin if missing, then start (or reuse) the API; returns once /health answers."""
    state = run_dir.parent / "api"
    jwt = _secret_file(state / "jwt-secret", secrets.token_urlsafe(48))
    api_env = {
        **env,
        "DTWIN_API_DATABASE_URL": database_url,
        "DTWIN_API_JWT_SECRET": jwt,
        "DTWIN_API_MQTT_HOST": "127.0.0.1",
        "DTWIN_API_MQTT_PORT": str(mqtt_port),
        "DTWIN_API_KUBE_ENABLED": "true" if kubeconfig else "false",
        "DTWIN_API_CORS_ORIGINS": '["http://localhost:5173","http://127.0.0.1:5173"]',
    }
    if kubeconfig is not None:
        api_env["DTWIN_API_KUBECONFIG"] = str(kubeconfig)
    password_file = state / "admin-password"
    new_password = None
    # Migrations run inside bootstrap-admin (as in the chart's Job), so the admin exists before the first login.
    boot = subprocess.run(
        [sys.executable, "-m", "dtwin_api", "bootstrap-admin", "--if-missing"],
        env=api_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if boot.returncode != 0:
        raise RuntimeError(f"dtwin_api bootstrap-admin failed: {boot.stderr.strip() or boot.stdout.strip()}")
    for line in boot.stdout.splitlines():
        if line.startswith("password (shown once): "):
            new_password = line.split(": ", 1)[1].strip()
            _secret_file(password_file, new_password)
    port_file = run_dir / f"{NAME}.port"
    record = processes.read_record(run_dir, NAME)
    if record is not None and processes.is_alive(record) and port_file.exists():
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    else:
        port = ports.free_port() if ports.port_is_open(8080) else 8080
        port_file.write_text(str(port))
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "dtwin_api", "serve", "--host", "127.0.0.1", "--port", str(port)]
        processes.start(run_dir, NAME, argv, api_env)
        log.info("API gateway starting on %s", url)
    wait_until(lambda: _healthy(url), 60, f"the API at {url}/health")
    return ApiProcess(url, "admin", password_file, new_password)
