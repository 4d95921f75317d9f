"""A minimal JSON client for the local kube-apiserver, plus a deadline-based wait helper.

The control plane's own readiness checks must not depend on the operator's
client libraries or on a kubeconfig loader, so this uses `urllib` with an explicit
CA file and bearer token. Proxies from the environment are ignored on purpose and
the server must be a loopback URL: nothing here ever dials another address.
`wait_until` polls a condition until it is truthy or a deadline passes; it is the
only place where this package sleeps, and only as the poll interval.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

T = TypeVar("T")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


class WaitTimeoutError(TimeoutError):
    """A condition did not become true before its deadline."""


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    interval: float = 0.2,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Poll `condition` until it returns a truthy value (returned) or `timeout` s pass.

    Exceptions raised by `condition` propagate (use them for fail-fast checks such as
    "the process died"). On timeout, raises WaitTimeoutError naming `what`, followed by the
    text returned by `on_timeout` (e.g. the tail of a log).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = on_timeout() if on_timeout else ""
            raise WaitTimeoutError(
                f"timed out after {timeout:.0f} s waiting for {what}" + (f"\n{detail}" if detail else "")
            )
        time.sleep(interval)


@dataclass(frozen=True)
class KubeAPI:
    """Bearer-token JSON client for one loopback apiserver."""

    server: str
    token: str
    ca_file: Path

    def __post_init__(self) -> None:
        host = urlsplit(self.server).hostname
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"refusing a non-loopback apiserver URL: {self.server}")

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeAPI:
        """Read server, token and CA file of the current context of a kubeconfig we wrote."""
        config = yaml.safe_load(path.read_text())
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        return cls(cluster["server"], user["token"], Path(cluster["certificate-authority"]))

    def _opener(self) -> urllib.request.OpenerDirector:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))

    def request(self, method: str, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
        """Send a request; returns (HTTP status, parsed JSON body or raw text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self._opener().open(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode(errors="replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def readyz(self) -> bool:
        """True when /readyz answers 200; False on any error (not up yet)."""
        try:
            status, _ = self.request("GET", "/readyz", timeout=3.0)
        except (OSError, ssl.SSLError):
            return False
        return status == 200
