"""Fixtures of the scorer's tests: a site schema with telemetry in real PostgreSQL, and a tiny real model server.

`FakeModel` is an aiohttp server on 127.0.0.1 that implements the model servers' HTTP contract
(`dtwin_ml.serving`: POST /info, POST /predict) with a transparent rule, so a test knows every answer: the
failure probability of a window is its last `temp` value / 100, an asset named `*-bad` gets an error result.
It records every window it was sent and the `traceparent` of every request. `delay_s` makes it slow, `status`
makes it fail. The real-bento test (test_bentos.py) uses `bentoml serve` instead.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from dtwin_core import migrate
from dtwin_core.schema import StorageSpec


@dataclass
class FakeModel:
    version: str
    lookback_steps: int = 12
    model: str = "pump-failure"
    delay_s: float = 0.0
    status: int = 200
    windows: list[dict[str, Any]] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)  # windows per /predict request
    traceparents: list[str] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)  # set by the first /predict request
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "model": self.model, "version": self.version, "tag": f"{self.model}:{self.version}",
                "task": "failure", "lookback_steps": self.lookback_steps, "feature_names": ["temp:value"],
                "metrics": {},
            }
        )  # fmt: skip

    def _one(self, w: dict[str, Any]) -> dict[str, Any]:
        if str(w["asset"]).endswith("-bad"):
            return {"asset": w["asset"], "error": "cannot score this window"}
        last = [v for v in w["values"]["temp"] if v is not None][-1]
        p = round(last / 100, 6)
        return {
            "asset": w["asset"], "timestamp": w["timestamps"][-1], "known": True, "probability": p,
            "horizon_h": 72.0, "alert": p >= 0.7, "top": [{"feature": "temp:slope_36", "contribution": 0.5}],
            "model": self.model, "version": self.version,
        }  # fmt: skip

    async def _predict(self, request: web.Request) -> web.Response:
        self.traceparents.append(request.headers.get("traceparent", ""))
        self.received.set()
        body = await request.json()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.status != 200:
            return web.Response(status=self.status, text="unavailable")
        self.requests.append(len(body["windows"]))
        self.windows += body["windows"]
        return web.json_response([self._one(w) for w in body["windows"]])

    async def __aenter__(self) -> FakeModel:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_post("/info", self._info)
        app.router.add_post("/predict", self._predict)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class Site:
    """One site schema with sensors `<asset>-temp` and a reading every 5 minutes per asset."""

    dsn: str
    schema: str = "site_hq"

    async def create(self, assets: dict[str, float], start: datetime, end: datetime) -> None:
        """`assets`: asset -> its constant temperature (so its failure probability in `FakeModel` is known)."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await migrate.apply(conn, StorageSpec(schema=self.schema))
            await conn.executemany(
                f"INSERT INTO {self.schema}.sensors (name, asset, metric, unit, canonical_unit, topic, format) "
                "VALUES ($1, $2, 'temp', 'degC', 'degC', $1, 'json')",
                [(f"{a}-temp", a) for a in assets],
            )
            await conn.execute(
                f"INSERT INTO {self.schema}.telemetry (sensor, ts, value) "
                "SELECT a.sensor, t, a.value FROM unnest($1::text[], $2::float8[]) AS a(sensor, value), "
                "generate_series($3::timestamptz, $4::timestamptz, interval '5 minutes') t",
                [f"{a}-temp" for a in assets],
                list(assets.values()),
                start,
                end,
            )
        finally:
            await conn.close()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return list(await conn.fetch(sql.replace("{s}", self.schema), *args))
        finally:
            await conn.close()


def write_routing(directory: Path, name: str, stable_at: FakeModel | str, canary_at: FakeModel | str | None = None,
                  percent: int = 20, **over: Any) -> Path:  # fmt: skip
    """`<name>.json` as the operator renders it; a URL or a `FakeModel` per track; `over` replaces any key."""

    def url(m: FakeModel | str) -> str:
        return m if isinstance(m, str) else m.url

    def version(m: FakeModel | str, default: str) -> str:
        return default if isinstance(m, str) else m.version

    doc = {
        "version": 1, "name": name, "namespace": "demo", "task": "failure", "model": "pump-failure",
        "threshold": 0.7, "horizonHours": 72, "maxBatchSize": 8, "maxLatencyMs": 20,
        "stable": {"version": version(stable_at, "1.0"), "url": url(stable_at)},
        "canary": None if canary_at is None else {
            "version": version(canary_at, "1.1"), "url": url(canary_at), "percent": percent,
        },
        "assets": [], "schemas": ["site_hq"],
    } | over  # fmt: skip
    path = directory / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def site(pg_dsn: str) -> Site:
    return Site(pg_dsn)


@pytest.fixture
def fake_model() -> type[FakeModel]:
    return FakeModel


@pytest.fixture
def routing_writer() -> Callable[..., Path]:
    return write_routing


@pytest.fixture
def closed_port_url() -> str:
    """A URL nobody listens on (connection refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def bucket_ends(first: datetime, n: int) -> list[datetime]:
    return [first + timedelta(minutes=10 * k) for k in range(n)]


@pytest.fixture
def ends() -> Callable[[datetime, int], list[datetime]]:
    return bucket_ends
