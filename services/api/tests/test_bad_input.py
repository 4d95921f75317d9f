"""Bad input is a 4xx with a JSON body, never a 500: a table of malformed requests against the real app."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from dtwin_api.authz import Role

T = "/api/v1/sites/alpha/telemetry"
OK_RANGE = "from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z"

CASES = [
    ("GET", f"{T}?{OK_RANGE}", 422, "invalid_request"),  # no sensor
    ("GET", f"{T}?sensor=s&from=2026-01-01T00:00:00&to=2026-01-01T01:00:00", 422, "invalid_range"),  # naive
    ("GET", f"{T}?sensor=s&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", 422, "invalid_range"),
    ("GET", f"{T}?sensor=s&from=yesterday&to=2026-01-01T00:00:00Z", 422, "invalid_request"),
    ("GET", f"{T}?sensor=s&{OK_RANGE}&bucket=5m", 422, "invalid_request"),
    ("GET", f"{T}?sensor=s%00x&{OK_RANGE}", 400, "invalid_value"),  # NUL: PostgreSQL refuses it
    ("GET", f"{T}?{'&'.join(f'sensor=s{i}' for i in range(21))}&{OK_RANGE}", 422, "too_many_sensors"),
    ("GET", f"{T}?sensor=s&from=0001-01-01T00:00:00Z&to=9999-12-31T00:00:00Z&bucket=raw", 200, None),
    ("GET", "/api/v1/sites/alpha/alerts?state=closed", 422, "invalid_request"),
    ("GET", "/api/v1/sites/alpha/alerts?severity=info", 422, "invalid_request"),
    ("GET", "/api/v1/sites/alpha/alerts?limit=0", 422, "invalid_request"),
    ("GET", "/api/v1/sites/alpha/alerts?limit=1000000", 422, "invalid_request"),
    ("GET", f"/api/v1/sites/alpha/alerts?before_id={2**70}", 422, "invalid_request"),
    ("GET", "/api/v1/sites/alpha/alerts?asset=a%00b", 400, "invalid_value"),
    ("GET", "/api/v1/sites/Not_A_Site/assets", 422, "invalid_request"),
    ("POST", "/api/v1/sites/alpha/alerts/abc/acknowledge", 422, "invalid_request"),
    ("POST", f"/api/v1/sites/alpha/alerts/{2**64}/acknowledge", 422, "invalid_request"),
    ("POST", "/api/v1/sites/alpha/alerts/0/resolve", 422, "invalid_request"),
    ("POST", "/api/v1/sites/alpha/alerts/999999/resolve", 404, "not_found"),
    ("GET", "/api/v1/nowhere", 404, "not_found"),
    ("DELETE", "/api/v1/sites", 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "path", "status", "error"), CASES)
def test_bad_input_is_4xx_with_body(shared_world: Any, method: str, path: str, status: int, error: str | None) -> None:
    async def scenario() -> None:
        eng = await shared_world.user("eng", {"alpha": Role.engineer})
        async with shared_world.serve() as api:
            r = await api.client.request(method, path, headers=api.auth(eng))
            assert r.status_code == status, r.text
            if error is not None:
                assert r.json()["error"] == error and r.json()["message"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/api/v1/auth/token", {"data": {"username": "x"}}),  # no password
        ("/api/v1/auth/token", {"json": {"username": "x", "password": "s3cr3t-pw"}}),  # not a form
        ("/api/v1/auth/refresh", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
        ("/api/v1/auth/refresh", {"json": {"refresh_token": "s3cr3t-pw" * 50}}),
    ],
)
def test_bad_auth_requests_are_422(shared_world: Any, path: str, kwargs: dict[str, Any]) -> None:
    async def scenario() -> None:
        async with shared_world.serve() as api:
            r = await api.client.post(path, **kwargs)
            assert r.status_code == 422 and r.json()["error"] == "invalid_request"
            assert "s3cr3t" not in r.text  # inputs (passwords, tokens) are not echoed

    asyncio.run(scenario())


def test_telemetry_buckets_and_result_bound(shared_world: Any) -> None:
    world = shared_world

    async def scenario() -> None:
        viewer = await world.user("v", {"alpha": Role.viewer})
        end = world.now.isoformat().replace("+00:00", "Z")
        async with world.serve(telemetry_max_points=100) as api:
            c, h = api.client, api.auth(viewer)
            r = await c.get(f"{T}?sensor=ahu-1-temp&from=2026-01-01T00:00:00Z&to={end}&bucket=raw", headers=h)
            assert r.status_code == 422 and r.json()["error"] == "too_many_points"
            # A day: auto picks the 1-minute rollup; 360 readings at 10 s are 60 one-minute buckets.
            day = (world.now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
            r = await c.get(f"{T}?sensor=ahu-1-temp&sensor=unknown&from={day}&to={end}", headers=h)
            assert r.status_code == 200, r.text
            assert r.json()["bucket"] == "1m"
            rows = r.json()["rows"]
            assert {row["sensor"] for row in rows} <= {"ahu-1-temp"}
            assert 0 < sum(row["count"] for row in rows) <= 360 and all(
                row["min"] <= row["avg"] <= row["max"] for row in rows
            )

    asyncio.run(scenario())
