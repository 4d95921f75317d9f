"""`make up` end to end, in its own run directory: the demo campus Ready, telemetry growing in both site schemas,
BridgeReady from the local bridges' heartbeat Leases, a kubectl-style binding edit hot-reloaded by the running
bridge, health on the Assets, alerts raised by the simulator's injected faults, the API, predictive alerts, a
canary rollback and energy recommendations; `make down` leaves nothing.

Everything is real (control plane, operator, PostgreSQL, Mosquitto, bridges, simulator at 60x). The examples'
Sites name MQTT port 1883, so the broker must get it: the test says so instead of timing out if it is taken.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dtwin_localcp import embedded, ports, processes
from dtwin_localcp.controlplane import ControlPlane
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.postgres import Postgres
from dtwin_localcp.twin import Twin

NS = "dtwin-demo"
# The first `make up` on a machine also trains the demo models (about 5 minutes on 2 cores), inside the first
# test's setup.
pytestmark = pytest.mark.timeout(1500)


@pytest.fixture(scope="module")
def campus() -> Iterator[tuple[Path, Twin, Postgres]]:
    if ports.port_is_open(1883):
        pytest.fail("port 1883 is taken (another `make up`?): the demo Sites publish there; run `make down` first")
    # Not under pytest's 0700 tmp: PostgreSQL runs as its own user and must reach its data dir.
    base = Path(tempfile.mkdtemp(prefix="dtwin-e2e-"))
    base.chmod(0o755)
    run_dir = base / "run"
    try:
        embedded.up(run_dir=run_dir, timeout=300)
        yield run_dir, Twin(ControlPlane.attach(run_dir / "cluster").kubeconfig), Postgres.attach(run_dir / "postgres")
    finally:
        embedded.down(run_dir=run_dir)
    alive = [r.name for d in ("dataplane", "operator") for r in processes.read_records(run_dir / d)
             if processes.is_alive(r)]  # fmt: skip
    assert alive == [], f"still running after down: {alive}"
    shutil.rmtree(base, ignore_errors=True)


def condition(obj: dict | None, kind: str) -> dict:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == kind), {})


def test_bridges_heartbeat_into_bridge_ready(campus: tuple[Path, Twin, Postgres]) -> None:
    _run, twin, _pg = campus
    for site in ("hq", "plant"):
        wait_until(lambda s=site: condition(twin.get("Site", NS, s), "BridgeReady").get("status") == "True", 60,
                   f"Site {site} BridgeReady")  # fmt: skip
        assert "embedded" in condition(twin.get("Site", NS, site), "BridgeReady")["message"]


def test_telemetry_keeps_growing(campus: tuple[Path, Twin, Postgres]) -> None:
    _run, _twin, pg = campus
    before = int(pg.sql("SELECT count(*) FROM site_hq.telemetry", "dtwin"))
    wait_until(lambda: int(pg.sql("SELECT count(*) FROM site_hq.telemetry", "dtwin")) > before, 60, "more rows")
    assert pg.sql("SELECT count(*) FROM site_hq.dead_letters", "dtwin") == "0"


def test_injected_faults_raise_alerts_and_health(campus: tuple[Path, Twin, Postgres]) -> None:
    """faults-demo.yaml takes ct-1 (plant) offline from +30 simulated minutes: at 60x, within a wall minute."""
    _run, twin, pg = campus

    def offline_alert() -> bool:
        return (
            pg.sql("SELECT count(*) FROM site_plant.alerts WHERE asset = 'ct-1' AND kind = 'offline'", "dtwin") != "0"
        )

    wait_until(offline_alert, 150, "the offline alert of ct-1 (fault ct-1-offline)")
    # Not every asset of the campus is offline: stale/offline are judged in stream time, not the wall's.
    assets = int(pg.sql("SELECT count(DISTINCT asset) FROM site_plant.alerts WHERE kind = 'offline'", "dtwin"))
    assert assets == 1
    wait_until(lambda: ((twin.get("Asset", NS, "chiller-1") or {}).get("status") or {}).get("healthScore") is not None,
               90, "health on the Assets")  # fmt: skip


def test_binding_edit_is_hot_reloaded_by_the_running_bridge(campus: tuple[Path, Twin, Postgres]) -> None:
    run_dir, twin, _pg = campus
    port = int((run_dir / "dataplane" / f"bridge-{NS}-hq.port").read_text())

    def reloads() -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        m = re.search(r'dtwin_bridge_routing_reloads_total\{result="ok",site="hq"\} (\S+)', text)
        return float(m.group(1)) if m else 0.0

    before = reloads()
    binding = next(b for b in twin.items("SensorBinding", NS, "dtwin.io/v1alpha1") if b["spec"]["assetRef"] == "ahu-1")
    twin.resource("SensorBinding", "dtwin.io/v1alpha1").patch(
        name=binding["metadata"]["name"], namespace=NS, body={"spec": {"expectedIntervalSeconds": 77}},
        content_type="application/merge-patch+json",
    )  # fmt: skip
    wait_until(lambda: reloads() > before, 60, "the bridge to reload the edited routing table")
    table = (run_dir / "dataplane" / f"bridge-{NS}-hq.json").read_text()
    assert '"expectedIntervalSeconds": 77' in table


def api_get(run_dir: Path, path: str) -> Any:
    """GET `path` from the API of `make up` as its first admin, logged in with the password generated at install."""
    url = f"http://127.0.0.1:{(run_dir / 'dataplane' / 'api.port').read_text().strip()}"
    password = (run_dir / "api" / "admin-password").read_text().strip()
    form = urllib.parse.urlencode({"username": "admin", "password": password}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/api/v1/auth/token", data=form), timeout=10) as r:
        token = json.loads(r.read())["access_token"]
    req = urllib.request.Request(f"{url}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_the_api_serves_the_campus_to_the_first_admin(campus: tuple[Path, Twin, Postgres]) -> None:
    """`make up` runs the API gateway; its first admin logs in with the password generated at install."""
    run_dir, _twin, _pg = campus
    assert (run_dir / "api" / "admin-password").stat().st_mode & 0o077 == 0, "the password file is the user's alone"
    sites = api_get(run_dir, "/api/v1/sites")
    names = {s["name"] for s in (sites["items"] if isinstance(sites, dict) else sites)}
    assert {"hq", "plant"} <= names


def test_energy_recommendations_come_from_the_backfilled_history(campus: tuple[Path, Twin, Postgres]) -> None:
    """The energy model's recommendations CronJob runs once under `make up` (rendered by the operator, run as a
    local process) in the Site's time zone; the API lists what it found with kWh and cost saved."""
    run_dir, _twin, _pg = campus
    dataplane = run_dir / "dataplane"
    (job,) = [r for r in processes.read_records(dataplane) if r.name.startswith("recs-")]
    wait_until(lambda: not processes.is_alive(job), 300, f"{job.name} to finish")
    log = processes.log_path(dataplane, job.name).read_text()
    assert "--schema site_hq=Europe/Paris" in log and "site_hq (Europe/Paris):" in log, log
    recs = api_get(run_dir, "/api/v1/sites/hq/energy-recommendations")
    assert isinstance(recs, list) and recs, log
    for rec in recs:
        assert rec["kwh_saved"] > 0 and rec["cost_saved"] > 0 and rec["currency"] == "EUR", rec
        assert rec["status"] == "open" and "Europe/Paris" in rec["detail"], rec


def test_bearing_wear_raises_a_predictive_alert_before_the_failure(campus: tuple[Path, Twin, Postgres]) -> None:
    """faults-demo.yaml wears chwp-1's bearing until it fails about 25 simulated hours into the live stream; the
    failure model, served by a local bento and called by the scorer, must say so before that instant."""
    run_dir, _twin, pg = campus
    truth = [json.loads(line) for line in (run_dir / "dataplane" / "truth.jsonl").read_text().splitlines()]
    failure = next(t for t in truth if t["id"] == "chwp-1-bearing/failure")
    query = (
        "SELECT details::text FROM site_plant.alerts WHERE asset = 'chwp-1' AND details ? 'probability' "
        "ORDER BY opened_at LIMIT 1"
    )
    wait_until(lambda: pg.sql(query, "dtwin") != "", 240, "a predictive alert on chwp-1")
    details = json.loads(pg.sql(query, "dtwin"))
    routing = json.loads((run_dir / "dataplane" / "routing" / f"{NS}.failure-rotating.json").read_text())
    assert details["probability"] >= routing["threshold"] and details["horizon_hours"] > 0, details
    assert details["top"], "the alert names the features that drove it"
    first = pg.sql(
        "SELECT to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM site_plant.predictions "
        f"WHERE asset = 'chwp-1' AND task = 'failure' AND score >= {routing['threshold']}",
        "dtwin",
    )
    assert first and first < failure["start"], f"flagged at {first} (stream time), failure at {failure['start']}"


def test_a_broken_canary_is_rolled_back_automatically(campus: tuple[Path, Twin, Postgres]) -> None:
    """The whole loop with real parts: a canary version missing from the model store never serves, so the scorer's
    calls to it fail; it reports them in its Lease, and the operator rolls the canary back with a Warning Event
    saying why, while the stable version keeps scoring."""
    _run, twin, pg = campus
    name, broken = "anomaly-hvac", "9.9.9-missing"
    canary = {"version": broken, "trafficPercent": 50, "minCalls": 5, "maxErrorRate": 0.2}
    twin.resource("ModelDeployment", "dtwin.io/v1alpha1").patch(
        name=name, namespace=NS, body={"spec": {"canary": canary}}, content_type="application/merge-patch+json"
    )

    def status() -> dict:
        return (twin.get("ModelDeployment", NS, name, "dtwin.io/v1alpha1") or {}).get("status") or {}

    wait_until(lambda: status().get("canaryState") == "RolledBack", 300, f"canary {broken} rolled back")
    assert status()["rolledBackVersion"] == broken
    events = [e for e in twin.items("Event", NS, "v1")
              if e["involvedObject"]["name"] == name and e["reason"] == "CanaryRolledBack"]  # fmt: skip
    assert events and events[-1]["type"] == "Warning", events
    assert f"canary {broken} rolled back: error rate" in events[-1]["message"]
    wait_until(lambda: twin.get("Deployment", NS, f"dtwin-model-{name}-canary", "apps/v1") is None, 60,
               "the canary's Deployment removed")  # fmt: skip
    scored = "SELECT count(*) FROM site_hq.predictions WHERE model = 'anomaly-iforest'"
    before = int(pg.sql(scored, "dtwin"))
    wait_until(
        lambda: int(pg.sql(scored, "dtwin")) > before,
        120,
        "the stable anomaly model still scoring",
    )
