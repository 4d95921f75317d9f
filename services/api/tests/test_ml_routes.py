"""Predictions, energy recommendations, asset failure risk / maintenance due and predictive alert details,
against real PostgreSQL (the site schemas as `dtwin_core.migrate` builds them, rows as the scorers write them).

The authorization matrix of these routes: every role granted at alpha only x own / other site; beta's
recommendation id under alpha's URL is 404; afterwards beta's rows are untouched and no beta audit row exists.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from dtwin_api.authz import Role

PREDICTIONS = (
    "INSERT INTO site_{site}.predictions (asset, model, version, task, ts, score, horizon_hours, rul_hours, "
    "explanation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
RECOMMENDATION = (
    "INSERT INTO site_{site}.energy_recommendations (asset, kind, title, detail, kwh_saved, cost_saved, currency, "
    "period_start, period_end, model, version) VALUES ($1, $2, $3, 'why', 120.5, 30.1, 'EUR', $4, $5, 'energy-gbm', "
    "'1.0.0') RETURNING id"
)


async def _seed_ml(world: Any) -> dict[str, list[int]]:
    """Predictions of ahu-1 at both sites (alpha: two failure predictions and one anomaly), one recommendation
    per site (beta's id 1001), a predictive alert with details at alpha."""
    now, recs = world.now, {}
    conn = await world.connect()
    try:
        await conn.execute("SELECT setval('site_beta.energy_recommendations_id_seq', 1000)")
        for site in world.sites:
            rows = [
                ("ahu-1", "failure-gbm", "1.0.0", "failure", now - timedelta(hours=2), 0.2, 168, 900.0, None),
                ("ahu-1", "failure-gbm", "1.0.1", "failure", now - timedelta(hours=1), 0.7, 168, 120.0,
                 {"top_features": [{"name": "vibration_rms", "weight": 0.6}], "site": site}),
                ("ahu-1", "anomaly-if", "1.0.0", "anomaly", now - timedelta(minutes=30), 0.1, None, None, None),
            ]  # fmt: skip
            await conn.executemany(PREDICTIONS.format(site=site), rows)
            start = now - timedelta(days=7)
            title = f"{site} AHU runs at night"
            rec = await conn.fetchval(RECOMMENDATION.format(site=site), "ahu-1", "after_hours", title, start, now)
            recs[site] = [int(rec)]
        await conn.execute(
            "INSERT INTO site_alpha.alerts (asset, kind, severity, message, dedup_key, details) VALUES "
            "('ahu-1', 'predictive', 'warning', 'failure likely', 'pred-1', $1)",
            {"probability": 0.7, "horizon_hours": 168, "model": "failure-gbm", "version": "1.0.1",
             "top_features": [{"name": "vibration_rms", "weight": 0.6}]},
        )  # fmt: skip
    finally:
        await conn.close()
    return recs


def test_predictions_latest_assets_and_alert_details(world: Any) -> None:
    async def scenario() -> None:
        await _seed_ml(world)
        viewer = await world.add_user("v", {"alpha": Role.viewer})
        manager = await world.add_user("m", {"alpha": Role.manager})
        async with world.serve() as api:
            c, h = api.client, api.auth(viewer)
            r = await c.get("/api/v1/sites/alpha/predictions", headers=h)
            assert r.status_code == 200
            assert [(p["model"], p["score"]) for p in r.json()] == [
                ("anomaly-if", 0.1), ("failure-gbm", 0.7), ("failure-gbm", 0.2)
            ]  # fmt: skip
            since = (world.now - timedelta(minutes=90)).isoformat()
            r = await c.get("/api/v1/sites/alpha/predictions", params={"task": "failure", "from": since}, headers=h)
            assert [(p["version"], p["rul_hours"]) for p in r.json()] == [("1.0.1", 120.0)]
            assert r.json()[0]["explanation"]["top_features"][0]["name"] == "vibration_rms"
            assert r.json()[0]["explanation"]["site"] == "alpha"
            r = await c.get("/api/v1/sites/alpha/predictions", params={"asset": "pump-alpha"}, headers=h)
            assert r.json() == []
            r = await c.get("/api/v1/sites/alpha/predictions/latest", headers=h)
            assert [(p["model"], p["version"]) for p in r.json()] == [("anomaly-if", "1.0.0"), ("failure-gbm", "1.0.1")]
            r = await c.get("/api/v1/sites/alpha/predictions/latest", params={"task": "failure"}, headers=h)
            assert [p["score"] for p in r.json()] == [0.7]

            # Asset: the latest failure prediction, and the earliest scheduled active work order.
            today = world.now.date()
            for title, day in (("later", today + timedelta(days=5)), ("late", today - timedelta(days=1))):
                r = await c.post("/api/v1/sites/alpha/work-orders", headers=api.auth(manager),
                                 json={"asset": "ahu-1", "title": title, "scheduled_for": day.isoformat()})  # fmt: skip
                assert r.status_code == 201, r.text
            late_id = r.json()["id"]
            r = await c.get("/api/v1/sites/alpha/assets", headers=h)
            assets = {a["name"]: a for a in r.json()}
            risk = assets["ahu-1"]["failure_risk"]
            assert (risk["probability"], risk["horizon_hours"], risk["version"]) == (0.7, 168, "1.0.1")
            due = assets["ahu-1"]["maintenance_due"]
            assert due == {"date": (today - timedelta(days=1)).isoformat(), "overdue": True, "work_order_id": late_id}
            assert assets["pump-alpha"]["failure_risk"] is None and assets["pump-alpha"]["maintenance_due"] is None
            r = await c.post(f"/api/v1/sites/alpha/work-orders/{late_id}/cancel", headers=api.auth(manager))
            assert r.status_code == 200
            r = await c.get("/api/v1/sites/alpha/assets", headers=h)
            due = {a["name"]: a for a in r.json()}["ahu-1"]["maintenance_due"]
            assert (
                due is not None and due["overdue"] is False and due["date"] == (today + timedelta(days=5)).isoformat()
            )

            r = await c.get("/api/v1/sites/alpha/alerts", params={"asset": "ahu-1"}, headers=h)
            predictive = [a for a in r.json() if a["kind"] == "predictive"]
            assert predictive[0]["details"]["probability"] == 0.7
            assert predictive[0]["details"]["top_features"] == [{"name": "vibration_rms", "weight": 0.6}]
            assert all(a["details"] is None for a in r.json() if a["kind"] != "predictive")

    asyncio.run(scenario())


def test_recommendation_status_is_audited(world: Any) -> None:
    async def scenario() -> None:
        recs = await _seed_ml(world)
        manager = await world.add_user("m", {"alpha": Role.manager})
        rec = recs["alpha"][0]
        url = f"/api/v1/sites/alpha/energy-recommendations/{rec}"
        async with world.serve() as api:
            c, h = api.client, api.auth(manager)
            r = await c.get("/api/v1/sites/alpha/energy-recommendations", params={"status": "open"}, headers=h)
            assert [(x["id"], x["kind"], x["kwh_saved"], x["currency"]) for x in r.json()] == [
                (rec, "after_hours", 120.5, "EUR")
            ]
            r = await c.patch(url, json={"status": "accepted"}, headers=h)
            assert r.status_code == 200 and r.json()["status"] == "accepted" and r.json()["status_changed_at"]
            assert (await c.patch(url, json={"status": "accepted"}, headers=h)).status_code == 200  # no change
            r = await c.patch(url, json={"status": "dismissed"}, headers=h)
            assert r.json()["status"] == "dismissed"
            r = await c.get("/api/v1/sites/alpha/energy-recommendations", params={"status": "open"}, headers=h)
            assert r.json() == []
            for bad in ({"status": "done"}, {"status": "accepted", "kind": "x"}, {}):
                r = await c.patch(url, json=bad, headers=h)
                assert r.status_code == 422 and r.json()["error"] == "invalid_request", bad
        conn = await world.connect()
        try:
            rows = await conn.fetch(
                "SELECT action, actor, before->>'status' AS b, after->>'status' AS a FROM dtwin_api.audit_log "
                "WHERE site = 'alpha' AND target = $1 ORDER BY id",
                f"energy_recommendation/{rec}",
            )
        finally:
            await conn.close()
        assert [tuple(r) for r in rows] == [
            ("energy_recommendation.accept", "m", "open", "accepted"),
            ("energy_recommendation.dismiss", "m", "accepted", "dismissed"),
        ]

    asyncio.run(scenario())


READS = (
    "/api/v1/sites/{site}/predictions",
    "/api/v1/sites/{site}/predictions?task=failure&asset=ahu-1",
    "/api/v1/sites/{site}/predictions/latest",
    "/api/v1/sites/{site}/energy-recommendations",
    "/api/v1/sites/{site}/assets",
)


async def _matrix(world: Any) -> list[str]:
    recs = await _seed_ml(world)
    problems = world.problems()
    for role in Role:
        await world.add_user(f"{role.name}-alpha", {"alpha": role})
    async with world.serve() as api:
        c = api.client
        for role in Role:
            h = api.auth(world.users[f"{role.name}-alpha"])
            for site, own in (("alpha", True), ("beta", False)):
                for path in READS:
                    url = path.format(site=site)
                    r = await c.get(url, headers=h)
                    problems.expect(f"{role.name} GET {url}", r.status_code, 200 if own else 403, r.json())
                    if own and r.status_code == 200 and "beta" in r.text:
                        problems.append(f"{role.name} GET {url} leaked beta rows")
                rec = recs[site][0]
                r = await c.patch(f"/api/v1/sites/{site}/energy-recommendations/{rec}", json={"status": "dismissed"},
                                  headers=h)  # fmt: skip
                wanted = (200 if role >= Role.manager else 403) if own else 403
                problems.expect(f"{role.name} PATCH {site} recommendation", r.status_code, wanted, r.json())
                if r.status_code == 200:  # back to open, so the next role changes it again
                    await c.patch(f"/api/v1/sites/{site}/energy-recommendations/{rec}", json={"status": "open"},
                                  headers=h)  # fmt: skip
            # beta's recommendation id under alpha's URL: it exists, but not at this site.
            r = await c.patch(f"/api/v1/sites/alpha/energy-recommendations/{recs['beta'][0]}",
                              json={"status": "accepted"}, headers=h)  # fmt: skip
            problems.expect(f"{role.name} PATCH alpha/beta-id", r.status_code, 404 if role >= Role.manager else 403,
                            r.json())  # fmt: skip
        for path in READS:
            r = await c.get(path.format(site="alpha"))
            problems.expect(f"anonymous GET {path}", r.status_code, 401, r.json())
    conn = await world.connect()
    try:
        status = await conn.fetchval("SELECT status FROM site_beta.energy_recommendations WHERE id = $1", 1001)
        if status != "open":
            problems.append(f"beta recommendation changed to {status}")
        beta_audit = await conn.fetchval("SELECT count(*) FROM dtwin_api.audit_log WHERE site = 'beta'")
        if beta_audit:
            problems.append(f"{beta_audit} audit rows for beta")
        writers = sum(1 for r in Role if r >= Role.manager)
        alpha_audit = await conn.fetchval("SELECT count(*) FROM dtwin_api.audit_log WHERE site = 'alpha'")
        if alpha_audit != 2 * writers:
            problems.append(f"{alpha_audit} audit rows for alpha, expected {2 * writers}")
    finally:
        await conn.close()
    return problems


def test_ml_authorization_matrix(world: Any) -> None:
    assert asyncio.run(_matrix(world)) == []
