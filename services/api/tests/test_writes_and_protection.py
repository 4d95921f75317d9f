"""Audit log of alert writes, rate limits (per IP and per user), request size limit, security headers,
CORS, health/readiness and metrics, against the real app and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from dtwin_api.authz import Role


def test_acknowledge_and_resolve_are_audited_with_before_and_after(world: Any) -> None:
    async def scenario() -> None:
        tech = await world.add_user("tina", {"alpha": Role.technician})
        alert = await world.new_alert("alpha", severity="critical")
        async with world.serve() as api:
            c, h = api.client, api.auth(tech)
            r = await c.post(f"/api/v1/sites/alpha/alerts/{alert}/acknowledge", headers=h)
            assert r.status_code == 200 and r.json()["state"] == "acknowledged" and r.json()["acknowledged_at"]
            again = await c.post(f"/api/v1/sites/alpha/alerts/{alert}/acknowledge", headers=h)
            assert again.status_code == 200  # no change, so no second audit row
            r = await c.post(f"/api/v1/sites/alpha/alerts/{alert}/resolve", headers=h)
            assert r.status_code == 200 and r.json()["state"] == "resolved"
            r = await c.post(f"/api/v1/sites/alpha/alerts/{alert}/acknowledge", headers=h)
            assert r.status_code == 409 and r.json()["error"] == "conflict"
        conn = await world.connect()
        try:
            rows = await conn.fetch(
                "SELECT actor_user_id, actor, action, site, target, before, after, client, at "
                "FROM dtwin_api.audit_log ORDER BY id"
            )
        finally:
            await conn.close()
        assert [(r["actor"], r["action"], r["site"], r["target"]) for r in rows] == [
            ("tina", "alert.acknowledge", "alpha", f"alert/{alert}"),
            ("tina", "alert.resolve", "alpha", f"alert/{alert}"),
        ]
        ack = rows[0]
        assert ack["actor_user_id"] == tech and ack["client"] == "203.0.113.7" and ack["at"] is not None
        assert ack["before"]["state"] == "open" and ack["before"]["acknowledged_at"] is None
        assert ack["after"]["state"] == "acknowledged" and ack["after"]["acknowledged_at"] is not None
        assert ack["before"]["id"] == ack["after"]["id"] == alert
        assert rows[1]["before"]["state"] == "acknowledged" and rows[1]["after"]["state"] == "resolved"

    asyncio.run(scenario())


def test_rate_limit_per_ip_is_429_with_body(world: Any) -> None:
    async def scenario() -> None:
        async with world.serve(rate_limit_per_ip="3/minute") as api:
            statuses = [(await api.client.get("/health")).status_code for _ in range(3)]
            r = await api.client.get("/health")
            assert statuses == [200, 200, 200]
            assert (
                r.status_code == 429 and r.json()["error"] == "rate_limited" and "3 per 1 minute" in r.json()["message"]
            )
            assert int(r.headers["retry-after"]) >= 1

    asyncio.run(scenario())


def test_rate_limit_per_user_is_429_with_body(world: Any) -> None:
    async def scenario() -> None:
        a = await world.add_user("a", {"alpha": Role.viewer})
        b = await world.add_user("b", {"alpha": Role.viewer})
        async with world.serve(rate_limit_per_user="2/minute") as api:
            c = api.client
            assert [(await c.get("/api/v1/sites", headers=api.auth(a))).status_code for _ in range(2)] == [200, 200]
            r = await c.get("/api/v1/sites", headers=api.auth(a))
            assert r.status_code == 429 and r.json()["error"] == "rate_limited" and "per user" in r.json()["message"]
            # Same address, another user: not limited by a's budget.
            assert (await c.get("/api/v1/sites", headers=api.auth(b))).status_code == 200

    asyncio.run(scenario())


def test_request_size_limit(world: Any) -> None:
    async def scenario() -> None:
        async with world.serve(max_request_bytes=4096) as api:
            r = await api.client.post("/api/v1/auth/token", content=b"x" * 5000)
            assert r.status_code == 413 and r.json()["error"] == "too_large"

            async def chunks() -> Any:  # no Content-Length: counted while streaming
                for _ in range(10):
                    yield b"y" * 1000

            r = await api.client.post("/api/v1/auth/refresh", content=chunks())
            assert r.status_code == 413 and r.json()["error"] == "too_large"

    asyncio.run(scenario())


def test_ops_endpoints_headers_cors_and_metrics(world: Any) -> None:
    async def scenario() -> None:
        viewer = await world.add_user("v", {"alpha": Role.viewer})
        async with world.serve(cors_origins=["https://portal.example"]) as api:
            c = api.client
            r = await c.get("/health")
            assert r.status_code == 200 and r.json() == {"status": "ok"}
            assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
            assert "default-src 'none'" in r.headers["content-security-policy"]
            r = await c.get("/ready")
            assert r.status_code == 200 and r.json()["checks"] == {
                "database": "ok",
                "broker": "disabled",
                "kubernetes": "disabled",
            }
            await c.get("/api/v1/sites/alpha/assets", headers=api.auth(viewer))
            pre = await c.options(
                "/api/v1/sites",
                headers={"Origin": "https://portal.example", "Access-Control-Request-Method": "GET"},
            )
            assert pre.headers["access-control-allow-origin"] == "https://portal.example"
            pre = await c.options(
                "/api/v1/sites", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
            )
            assert "access-control-allow-origin" not in pre.headers
            text = (await c.get("/metrics")).text
            assert 'dtwin_api_requests_total{method="GET",route="/api/v1/sites/{site}/assets",status="200"} 1.0' in text
            assert 'dtwin_api_request_duration_seconds_bucket{le="0.005",method="GET",route="/health"}' in text

    asyncio.run(scenario())


def test_ready_is_503_when_the_database_is_gone(world: Any) -> None:
    async def scenario() -> None:
        async with world.serve() as api:
            await api.app.state.pool.close()
            r = await api.client.get("/ready")
            assert r.status_code == 503 and r.json()["error"] == "not_ready"
            assert r.json()["checks"]["database"].startswith("failed") and "database" in r.json()["message"]

    asyncio.run(scenario())
