"""HTTP calls to the model servers: `/info` and `/predict`, a timeout on each, and a backoff per endpoint.

An endpoint that failed (connection refused, timeout, HTTP 5xx, an answer that breaks the contract) is not
called again before its backoff expires: 30 s after the first failure, doubling up to 10 min by default. A pass
never waits for a failing server beyond one request timeout, and the backoff spares a struggling server. (No
retry library is installed in the image; the policy is a few lines.) Every request carries the W3C
`traceparent` of the current span, so a model server's spans join the scorer's trace.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry import propagate


class CallError(Exception):
    """A request that gave no usable answer; `reason` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class Backoff:
    initial_s: float
    max_s: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    until: float = 0.0

    def ready(self) -> bool:
        return self.clock() >= self.until

    def failed(self) -> float:
        """Record a failure; returns the seconds until the next attempt."""
        self.failures += 1
        wait = min(self.max_s, self.initial_s * 2 ** (self.failures - 1))
        self.until = self.clock() + wait
        return wait

    def ok(self) -> None:
        self.failures, self.until = 0, 0.0


def _headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


async def _post(http: httpx.AsyncClient, url: str, body: Any, timeout_s: float) -> Any:
    try:
        resp = await http.post(url, json=body, headers=_headers(), timeout=timeout_s)
    except httpx.TimeoutException as err:
        raise CallError("timeout", f"{url}: {type(err).__name__}") from err
    except httpx.HTTPError as err:
        raise CallError("connect", f"{url}: {type(err).__name__} {err}") from err
    if resp.status_code >= 400:
        raise CallError(f"http_{resp.status_code // 100}xx", f"{url}: HTTP {resp.status_code} {resp.text[:200]}")
    try:
        return resp.json()
    except ValueError as err:
        raise CallError("invalid", f"{url}: answer is not JSON") from err


async def info(http: httpx.AsyncClient, base: str, timeout_s: float) -> dict[str, Any]:
    got = await _post(http, f"{base}/info", {}, timeout_s)
    if not isinstance(got, dict) or not isinstance(got.get("lookback_steps"), int) or got["lookback_steps"] < 1:
        raise CallError("invalid", f"{base}/info: no positive integer lookback_steps")
    return got


async def predict(http: httpx.AsyncClient, base: str, windows: list[Any], timeout_s: float) -> list[Any]:
    got = await _post(http, f"{base}/predict", {"windows": windows}, timeout_s)
    if not isinstance(got, list) or len(got) != len(windows):
        n = len(got) if isinstance(got, list) else type(got).__name__
        raise CallError("invalid", f"{base}/predict: {n} results for {len(windows)} windows")
    return got
