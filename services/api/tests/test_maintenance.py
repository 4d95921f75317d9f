"""Work orders, alert assignment/comments, sensors and CSV export against the real app and PostgreSQL:
the acceptance test (a work order completed from an alert resolves it and sets the asset's service date),
the state machine and who may move it, the authorization matrix of the new routes (every role x own/other
site, zero cross-site reads or writes), bad input as 4xx with a body, and audit rows of every new write.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from dtwin_api.authz import Role

A = "/api/v1/sites/alpha"


def test_work_order_from_alert_resolves_it_and_records_the_service_date(world: Any) -> None:
    async def scenario() -> None:
        tech = await world.add_user("tina", {"alpha": Role.technician})
        alert = await world.new_alert("alpha", severity="critical", asset="ahu-1")
        async with world.serve() as api:
            c, h = api.client, api.auth(tech)
            r = await c.get(f"{A}/assets", headers=h)
            assert {a["name"]: a["last_service_at"] for a in r.json()}["ahu-1"] is None
            r = await c.post(f"{A}/alerts/{alert}/work-order", headers=h, json={"assignee_user_id": tech})
            assert r.status_code == 201, r.text
            wo = r.json()
            assert (wo["asset"], wo["state"], wo["priority"], wo["alert_ids"]) == ("ahu-1", "open", "high", [alert])
            assert wo["title"] == "alpha alert" and wo["assignee_user_id"] == tech
            r = await c.patch(f"{A}/work-orders/{wo['id']}", headers=h, json={"state": "in_progress", "notes": "on it"})
            assert r.status_code == 200 and r.json()["state"] == "in_progress", r.text
            r = await c.post(f"{A}/work-orders/{wo['id']}/complete", headers=h, json={"notes": "replaced the belt"})
            assert r.status_code == 200, r.text
            done = r.json()
            assert done["work_order"]["state"] == "completed" and done["work_order"]["completed_at"]
            assert done["work_order"]["completion_notes"] == "replaced the belt"
            assert [(a["id"], a["state"]) for a in done["resolved_alerts"]] == [(alert, "resolved")]
            r = await c.get(f"{A}/alerts?state=resolved", headers=h)
            assert alert in [a["id"] for a in r.json()]
            r = await c.get(f"{A}/assets", headers=h)
            assert {a["name"]: a["last_service_at"] for a in r.json()}["ahu-1"] == done["last_service_at"]
            r = await c.post(f"{A}/work-orders/{wo['id']}/complete", headers=h)
            assert r.status_code == 409 and r.json()["error"] == "conflict"
        conn = await world.connect()
        try:
            row = await conn.fetchrow(f"SELECT state, resolved_at FROM site_alpha.alerts WHERE id = {alert}")
            audit = await conn.fetch("SELECT actor, action, target, before, after FROM dtwin_api.audit_log ORDER BY id")
        finally:
            await conn.close()
        assert row["state"] == "resolved" and row["resolved_at"] is not None
        assert [(a["actor"], a["action"], a["target"]) for a in audit] == [
            ("tina", "work_order.create", f"work_order/{wo['id']}"),
            ("tina", "work_order.update", f"work_order/{wo['id']}"),
            ("tina", "work_order.complete", f"work_order/{wo['id']}"),
            ("tina", "alert.resolve", f"alert/{alert}"),
        ]
        assert audit[0]["before"] is None and audit[0]["after"]["state"] == "open"
        assert audit[1]["before"]["state"] == "open" and audit[1]["after"]["state"] == "in_progress"
        assert audit[2]["after"]["state"] == "completed" and audit[3]["before"]["state"] == "open"
        assert audit[3]["after"]["state"] == "resolved"

    asyncio.run(scenario())


def test_work_order_lifecycle_roles_and_validation(world: Any) -> None:
    async def scenario() -> None:
        boss = await world.add_user("mo", {"alpha": Role.manager})
        tech = await world.add_user("tina", {"alpha": Role.technician})
        other_tech = await world.add_user("tom", {"alpha": Role.technician})
        viewer = await world.add_user("vic", {"alpha": Role.viewer})
        beta_tech = await world.add_user("bea", {"beta": Role.technician})
        global_eng = await world.add_user("gus", {"*": Role.engineer})
        a1, a2 = await world.new_alert("alpha"), await world.new_alert("alpha", asset="pump-alpha")
        async with world.serve() as api:
            c, hb = api.client, api.auth(boss)
            body = {"asset": "ahu-1", "title": "filters", "alert_ids": [a1, a2]}
            for bad, code in (
                ({"assignee_user_id": viewer}, "invalid_assignee"),
                ({"assignee_user_id": beta_tech}, "invalid_assignee"),
                ({"assignee_user_id": 999999}, "invalid_assignee"),
                ({"asset": "nope"}, "unknown_asset"),
                ({"alert_ids": [1001]}, "unknown_alert"),  # beta's alert id
            ):
                r = await c.post(f"{A}/work-orders", headers=hb, json=body | bad)
                assert r.status_code == 422 and r.json()["error"] == code, (bad, r.text)
            r = await c.post(f"{A}/work-orders", headers=hb, json=body | {"assignee_user_id": global_eng})
            assert r.status_code == 201 and r.json()["alert_ids"] == [a1, a2]
            r = await c.post(f"{A}/work-orders", headers=hb, json=body)
            wo = r.json()["id"]
            # A date on an open work order schedules it; assigning is manager's.
            r = await c.patch(f"{A}/work-orders/{wo}", headers=hb, json={"scheduled_for": "2027-01-15"})
            assert (
                r.status_code == 200 and r.json()["state"] == "scheduled" and r.json()["scheduled_for"] == "2027-01-15"
            )
            r = await c.patch(f"{A}/work-orders/{wo}", headers=api.auth(tech), json={"assignee_user_id": tech})
            assert r.status_code == 403
            r = await c.patch(f"{A}/work-orders/{wo}", headers=hb, json={"assignee_user_id": tech})
            assert r.status_code == 200 and r.json()["assignee_user_id"] == tech
            r = await c.patch(f"{A}/work-orders/{wo}", headers=api.auth(other_tech), json={"state": "in_progress"})
            assert r.status_code == 403 and r.json()["error"] == "forbidden"
            r = await c.patch(f"{A}/work-orders/{wo}", headers=api.auth(tech), json={"title": "mine now"})
            assert r.status_code == 403
            r = await c.patch(f"{A}/work-orders/{wo}", headers=hb, json={"scheduled_for": None})
            assert r.status_code == 409  # scheduled needs a date
            r = await c.patch(f"{A}/work-orders/{wo}", headers=api.auth(tech), json={"state": "in_progress"})
            assert r.status_code == 200 and r.json()["state"] == "in_progress"
            r = await c.patch(f"{A}/work-orders/{wo}", headers=hb, json={"state": "scheduled"})
            assert r.status_code == 409  # no way back
            r = await c.post(f"{A}/work-orders/{wo}/complete", headers=api.auth(other_tech))
            assert r.status_code == 403
            r = await c.post(f"{A}/work-orders/{wo}/cancel", headers=api.auth(tech))
            assert r.status_code == 403
            r = await c.get(f"{A}/work-orders?assignee={tech}&state=in_progress", headers=api.auth(viewer))
            assert [w["id"] for w in r.json()] == [wo]
            r = await c.get(f"{A}/work-orders?asset=pump-alpha", headers=api.auth(viewer))
            assert r.json() == []
            r = await c.get(f"{A}/work-orders?limit=1", headers=api.auth(viewer))
            first = r.json()
            r = await c.get(f"{A}/work-orders?before_id={first[0]['id']}", headers=api.auth(viewer))
            assert len(first) == 1 and len(r.json()) == 1 and r.json()[0]["id"] < first[0]["id"]
            r = await c.post(f"{A}/work-orders/{wo}/cancel", headers=hb, json={"notes": "duplicate"})
            assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["completed_at"] is None
            for path, payload in (("complete", None), ("cancel", None)):
                r = await c.post(f"{A}/work-orders/{wo}/{path}", headers=hb, json=payload)
                assert r.status_code == 409
            r = await c.patch(f"{A}/work-orders/{wo}", headers=hb, json={"priority": "low"})
            assert r.status_code == 409
        conn = await world.connect()
        try:
            states = await conn.fetch(f"SELECT state FROM site_alpha.alerts WHERE id IN ({a1}, {a2})")
            actions = await conn.fetch("SELECT action, count(*) n FROM dtwin_api.audit_log GROUP BY action")
        finally:
            await conn.close()
        assert {r["state"] for r in states} == {"open"}  # a cancelled work order resolves nothing
        assert {r["action"]: r["n"] for r in actions} == {
            "work_order.create": 2,
            "work_order.update": 3,
            "work_order.cancel": 1,
        }

    asyncio.run(scenario())


def test_alert_assign_and_comments_are_audited(world: Any) -> None:
    async def scenario() -> None:
        tech = await world.add_user("tina", {"alpha": Role.technician})
        viewer = await world.add_user("vic", {"alpha": Role.viewer})
        alert = await world.new_alert("alpha")
        async with world.serve() as api:
            c, h = api.client, api.auth(tech)
            r = await c.post(f"{A}/alerts/{alert}/assign", headers=h, json={"assignee_user_id": viewer})
            assert r.status_code == 422 and r.json()["error"] == "invalid_assignee"
            r = await c.post(f"{A}/alerts/{alert}/assign", headers=h, json={"assignee_user_id": tech})
            assert r.status_code == 200 and r.json()["assignee_user_id"] == tech
            r = await c.get(f"{A}/alerts", headers=api.auth(viewer))
            assert {a["id"]: a["assignee_user_id"] for a in r.json()}[alert] == tech
            for text in ("first", "second"):
                r = await c.post(f"{A}/alerts/{alert}/comments", headers=h, json={"body": text})
                assert r.status_code == 201 and r.json()["author"] == "tina"
            r = await c.get(f"{A}/alerts/{alert}/comments", headers=api.auth(viewer))
            assert [x["body"] for x in r.json()] == ["first", "second"]
            r = await c.get(f"{A}/alerts/{alert}/comments?after_id={r.json()[0]['id']}", headers=api.auth(viewer))
            assert [x["body"] for x in r.json()] == ["second"]
            r = await c.post(f"{A}/alerts/{alert}/comments", headers=api.auth(viewer), json={"body": "x"})
            assert r.status_code == 403
        conn = await world.connect()
        try:
            audit = await conn.fetch("SELECT action, target, before, after FROM dtwin_api.audit_log ORDER BY id")
        finally:
            await conn.close()
        assert [(a["action"], a["target"]) for a in audit] == [
            ("alert.assign", f"alert/{alert}"),
            ("alert.comment", f"alert/{alert}"),
            ("alert.comment", f"alert/{alert}"),
        ]
        assert audit[0]["before"] is None and audit[0]["after"]["assignee_user_id"] == tech
        assert audit[1]["after"]["body"] == "first"

    asyncio.run(scenario())


def test_sensors_last_value_state_and_csv_export(world: Any) -> None:
    async def scenario() -> None:
        viewer = await world.add_user("vic", {"alpha": Role.viewer})
        conn = await world.connect()
        try:
            await conn.execute(
                "INSERT INTO site_alpha.sensors (name, asset, metric, unit, canonical_unit, topic, format) VALUES "
                "('ahu-1-temp', 'ahu-1', 'supply_air_temp', 'degC', 'degC', 't/1', 'json'), "
                "('ahu-1-old', 'ahu-1', 'return_air_temp', 'degC', 'degC', 't/2', 'json'), "
                "('ahu-1-none', 'ahu-1', 'fan_speed', 'pct', 'pct', 't/3', 'json'), "
                "('pump-alpha-p', 'pump-alpha', 'pressure', 'kPa', 'kPa', 't/4', 'json')"
            )
            await conn.execute(
                "INSERT INTO site_alpha.telemetry (sensor, ts, value) VALUES ('ahu-1-old', $1::timestamptz - "
                "interval '3 days', 7.5)",
                world.now,
            )
        finally:
            await conn.close()
        await world.new_alert("alpha", sensor="ahu-1-old", kind="stale")
        async with world.serve() as api:
            c, h = api.client, api.auth(viewer)
            r = await c.get(f"{A}/sensors", headers=h)
            assert r.status_code == 200, r.text
            got = {s["name"]: s for s in r.json()}
            assert got["ahu-1-temp"]["last_value"] == 1.0  # the seed's newest reading is g = 1
            assert got["ahu-1-temp"]["state"] == "alerting" and got["ahu-1-temp"]["open_alerts"] == 1
            assert got["ahu-1-old"]["last_value"] == 7.5 and got["ahu-1-old"]["state"] == "stale"
            assert got["ahu-1-none"]["last_ts"] is None and got["ahu-1-none"]["state"] == "no_data"
            assert got["pump-alpha-p"]["state"] == "no_data"
            r = await c.get(f"{A}/sensors?asset=pump-alpha", headers=h)
            assert [s["name"] for s in r.json()] == ["pump-alpha-p"]

            # A fixed 30-minute window (180 seeded readings), not "since the hour": the point bound below must
            # trip whatever minute of the hour the test runs at.
            start = (world.now - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
            end = world.now.isoformat().replace("+00:00", "Z")
            q = f"{A}/telemetry?sensor=ahu-1-temp&from={start}&to={end}&bucket=raw"
            js = (await c.get(q, headers=h)).json()
            r = await c.get(q + "&format=csv", headers=h)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            lines = r.text.splitlines()
            assert lines[0] == "sensor,ts,value" and len(lines) == len(js["rows"]) + 1
            r2 = await c.get(q, headers=h | {"Accept": "text/csv"})
            assert r2.text == r.text
            r = await c.get(q.replace("bucket=raw", "bucket=1m") + "&format=csv", headers=h)
            assert r.text.splitlines()[0] == "sensor,ts,avg,min,max,count" and r.headers["x-bucket"] == "1m"
            async with world.serve(telemetry_max_points=5) as small:
                r = await small.client.get(q + "&format=csv", headers=small.auth(viewer))
                assert r.status_code == 422 and r.json()["error"] == "too_many_points"

    asyncio.run(scenario())


async def _matrix(world: Any) -> list[str]:
    for role in Role:
        await world.add_user(f"{role.name}-alpha", {"alpha": role})
    root = await world.add_user("root", {"*": Role.admin})
    tech_id = world.users["technician-alpha"]
    problems = world.problems()
    expect = problems.expect

    async with world.serve() as api:
        c, hr = api.client, api.auth(root)

        async def new_wo(site: str) -> int:
            r = await c.post(f"/api/v1/sites/{site}/work-orders", headers=hr, json={"asset": "ahu-1", "title": "t"})
            assert r.status_code == 201, r.text
            return int(r.json()["id"])

        beta_wo = await new_wo("beta")
        conn = await world.connect()
        try:
            beta_before = dict(await conn.fetchrow("SELECT * FROM dtwin_api.work_orders WHERE id = $1", beta_wo))
            beta_audit_before = await conn.fetchval("SELECT count(*) FROM dtwin_api.audit_log WHERE site = 'beta'")
        finally:
            await conn.close()
        start = (world.now - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
        for role in Role:
            h = api.auth(world.users[f"{role.name}-alpha"])
            for site, own in (("alpha", True), ("beta", False)):
                base = f"/api/v1/sites/{site}"
                wo = await new_wo("alpha") if own else beta_wo
                alert = await world.new_alert("alpha") if own else 1001

                def want(minimum: Role, ok: int = 200, own: bool = own, role: Role = role) -> int:
                    return (ok if role >= minimum else 403) if own else 403

                reads = (
                    f"{base}/work-orders",
                    f"{base}/work-orders/{wo}",
                    f"{base}/alerts/{alert}/comments",
                    f"{base}/sensors",
                    f"{base}/telemetry?sensor=ahu-1-temp&from={start}&to={world.now.isoformat()}&format=csv".replace(
                        "+", "%2B"
                    ),
                )
                for path in reads:
                    r = await c.get(path, headers=h)
                    body = r.json() if r.headers["content-type"].startswith("application/json") else r.text
                    expect(f"{role.name} GET {path}", r.status_code, want(Role.viewer), body)
                    if own and r.status_code == 200 and "beta" in r.text:
                        problems.append(f"{role.name} GET {path} leaked beta rows")
                writes: list[tuple[str, str, Any, int]] = [
                    ("POST", f"{base}/alerts/{alert}/assign", {"assignee_user_id": tech_id}, want(Role.technician)),
                    ("POST", f"{base}/alerts/{alert}/comments", {"body": "hi"}, want(Role.technician, 201)),
                    ("POST", f"{base}/alerts/{alert}/work-order", {}, want(Role.technician, 201)),
                    ("POST", f"{base}/work-orders", {"asset": "ahu-1", "title": "x"}, want(Role.manager, 201)),
                    ("PATCH", f"{base}/work-orders/{wo}", {"priority": "high"}, want(Role.manager)),
                    ("POST", f"{base}/work-orders/{wo}/complete", {}, want(Role.manager)),
                    (
                        "POST",
                        f"{base}/work-orders/{await new_wo('alpha') if own else wo}/cancel",
                        {},
                        want(Role.manager),
                    ),
                ]
                for method, path, payload, wanted in writes:
                    r = await c.request(method, path, headers=h, json=payload)
                    expect(f"{role.name} {method} {path}", r.status_code, wanted, r.json())
            # Beta's ids under alpha's URLs: they exist, but not at this site.
            cross: list[tuple[str, str, Any, Role]] = [
                ("GET", f"{A}/work-orders/{beta_wo}", None, Role.viewer),
                ("GET", f"{A}/alerts/1001/comments", None, Role.viewer),
                ("PATCH", f"{A}/work-orders/{beta_wo}", {"priority": "low"}, Role.technician),
                ("POST", f"{A}/work-orders/{beta_wo}/complete", {}, Role.technician),
                ("POST", f"{A}/work-orders/{beta_wo}/cancel", {}, Role.manager),
                ("POST", f"{A}/alerts/1001/work-order", {}, Role.technician),
                ("POST", f"{A}/alerts/1001/assign", {"assignee_user_id": tech_id}, Role.technician),
                ("POST", f"{A}/alerts/1001/comments", {"body": "x"}, Role.technician),
            ]
            for method, path, payload, minimum in cross:
                r = await c.request(method, path, headers=h, json=payload)
                wanted = 404 if role >= minimum else 403
                expect(f"{role.name} {method} {path}", r.status_code, wanted, r.json())

    conn = await world.connect()
    try:
        beta_after = dict(await conn.fetchrow("SELECT * FROM dtwin_api.work_orders WHERE id = $1", beta_wo))
        if beta_after != beta_before:
            problems.append(f"beta work order changed: {beta_before} -> {beta_after}")
        states = await conn.fetch("SELECT id, state FROM site_beta.alerts ORDER BY id")
        if [(r["id"], r["state"]) for r in states] != [(1001, "open"), (1002, "open")]:
            problems.append(f"beta alerts changed: {states}")
        for table in ("alert_comments", "alert_assignments", "asset_service"):
            if n := await conn.fetchval(f"SELECT count(*) FROM dtwin_api.{table} WHERE site = 'beta'"):
                problems.append(f"{n} beta rows in {table}")
        n = await conn.fetchval("SELECT count(*) FROM dtwin_api.work_orders WHERE site = 'beta'")
        if n != 1:
            problems.append(f"{n} beta work orders")
        if await conn.fetchval("SELECT count(*) FROM dtwin_api.audit_log WHERE site = 'beta'") != beta_audit_before:
            problems.append("audit rows written for beta")
    finally:
        await conn.close()
    return problems


def test_authorization_matrix_of_maintenance_routes(world: Any) -> None:
    assert asyncio.run(_matrix(world)) == []


W = f"{A}/work-orders"
BAD = [
    ("POST", W, {"title": "no asset"}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": ""}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t" * 201}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t", "priority": "asap"}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t", "state": "completed"}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t", "scheduled_for": "soon"}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t", "scheduled_for": "9999-01-01"}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t", "alert_ids": [0]}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t", "alert_ids": list(range(1, 60))}, 422, "invalid_request"),
    ("POST", W, {"asset": "ahu-1", "title": "t", "assignee_user_id": 2**70}, 422, "invalid_request"),
    ("POST", W, {"asset": "a\x00b", "title": "t"}, 400, "invalid_value"),
    ("POST", W, "not json", 422, "invalid_request"),
    ("GET", f"{W}?state=done", None, 422, "invalid_request"),
    ("GET", f"{W}?limit=0", None, 422, "invalid_request"),
    ("GET", f"{W}?assignee=abc", None, 422, "invalid_request"),
    ("GET", f"{W}/0", None, 422, "invalid_request"),
    ("GET", f"{W}/{2**64}", None, 422, "invalid_request"),
    ("GET", f"{W}/999999", None, 404, "not_found"),
    ("PATCH", f"{W}/999999", {"priority": "low"}, 404, "not_found"),
    ("PATCH", f"{W}/1", {"state": "completed"}, 422, "invalid_request"),
    ("PATCH", f"{W}/1", {"title": None}, 422, "invalid_request"),
    ("PATCH", f"{W}/1", {"bogus": 1}, 422, "invalid_request"),
    ("POST", f"{W}/999999/complete", None, 404, "not_found"),
    ("POST", f"{W}/1/complete", {"notes": "n" * 4001}, 422, "invalid_request"),
    ("POST", f"{A}/alerts/999999/work-order", None, 404, "not_found"),
    ("POST", f"{A}/alerts/1/assign", {}, 422, "invalid_request"),
    ("POST", f"{A}/alerts/1/assign", {"assignee_user_id": "me"}, 422, "invalid_request"),
    ("POST", f"{A}/alerts/1/comments", {"body": ""}, 422, "invalid_request"),
    ("POST", f"{A}/alerts/1/comments", {"body": "x" * 4001}, 422, "invalid_request"),
    ("POST", f"{A}/alerts/1/comments", {"body": "a\x00b"}, 400, "invalid_value"),
    ("GET", f"{A}/alerts/1/comments?limit=501", None, 422, "invalid_request"),
    ("GET", f"{A}/sensors?asset=a%00b", None, 400, "invalid_value"),
    ("GET", f"{A}/telemetry?sensor=s&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z&format=xml", None, 422, None),
]


@pytest.mark.parametrize(("method", "path", "payload", "status", "error"), BAD)
def test_bad_maintenance_input_is_4xx_with_body(
    shared_world: Any, method: str, path: str, payload: Any, status: int, error: str | None
) -> None:
    async def scenario() -> None:
        boss = await shared_world.user("boss", {"alpha": Role.manager})
        async with shared_world.serve() as api:
            kwargs: dict[str, Any] = {"json": payload} if not isinstance(payload, str) else {"content": payload}
            if payload is None:
                kwargs = {}
            r = await api.client.request(
                method, path, headers=api.auth(boss) | {"content-type": "application/json"}, **kwargs
            )
            assert r.status_code == status, r.text
            assert r.json()["message"] and (error is None or r.json()["error"] == error)

    asyncio.run(scenario())
