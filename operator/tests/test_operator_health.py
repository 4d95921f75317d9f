"""The health summary end to end: a real operator, kube-apiserver and PostgreSQL; rows written straight into the
site schema show up in the Asset and SensorBinding status, and an unchanged summary is not written again."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dtwin_localcp import kopf_process, processes
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.ports import free_port
from dtwin_localcp.postgres import PgServer
from dtwin_localcp.twin import Twin

pytestmark = pytest.mark.cluster

INTERVAL = 0.5
METRICS_PORT = free_port()
ENV = {
    "DTWIN_OPERATOR_HEALTH_INTERVAL": str(INTERVAL),
    "DTWIN_OPERATOR_RETRY_DELAY": "1",
    "DTWIN_OPERATOR_ERROR_BACKOFF": "1",
    "DTWIN_OPERATOR_METRICS_PORT": str(METRICS_PORT),
}
WAIT = 30.0
HEALTH_KEYS = ("state", "lastSeen", "lastValue", "openAlerts", "alertSeverity", "rejects", "healthScore")


@pytest.fixture(scope="module")
def operator(
    kubeconfig: Path, crds_installed: list[str], postgres_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("operator")
    env = {**ENV, "DTWIN_OPERATOR_DATABASE_URL": postgres_server.dsn("{database}")}
    with kopf_process.running(run_dir, kubeconfig, env):
        yield run_dir
    print(f"operator log: {processes.log_path(run_dir, kopf_process.NAME)}")


def docs() -> list[dict[str, Any]]:
    def doc(kind: str, name: str, /, **spec: Any) -> dict[str, Any]:
        return {"apiVersion": "dtwin.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}

    sensor = {"assetRef": "p1", "unit": "degC", "expectedIntervalSeconds": 60}
    return [
        doc("Site", "hq", layout={"floors": [{"name": "l1", "level": 1}]}),
        doc("Asset", "p1", siteRef="hq", kind="Pump", location={"floor": "l1"}),
        doc("SensorBinding", "p1-temp", metric="temp", topic="sites/hq/p1/t", **sensor),
        doc("SensorBinding", "p1-flow", metric="flow", topic="sites/hq/p1/f", **sensor),
    ]


def health(twin: Twin, kind: str, ns: str, name: str) -> dict[str, Any]:
    status = (twin.get(kind, ns, name) or {}).get("status") or {}
    return {k: status[k] for k in HEALTH_KEYS if k in status}


def wait_health(twin: Twin, kind: str, ns: str, name: str, want: dict[str, Any], what: str) -> None:
    wait_until(
        lambda: health(twin, kind, ns, name) == want,
        WAIT,
        f"{kind} {name} health: {what}",
        on_timeout=lambda: json.dumps(health(twin, kind, ns, name)),
    )


def scrape(name: str, labels: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=2) as r:
            body = r.read().decode()
    except OSError:
        return None
    m = re.search(rf"^{name}\{{{labels}\}} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def refreshed_more_than(metric: tuple[str, str], n: int, since: float | None = None) -> float:
    """Wait until the counter has grown by `n` (from `since`, or from now); returns its value."""
    start = since if since is not None else wait_until(lambda: scrape(*metric), WAIT, f"metric {metric[0]}")
    return wait_until(lambda: (v := scrape(*metric) or 0) >= start + n and v, WAIT, f"{n} more health refreshes")


def test_health_follows_readings_and_alerts_and_is_not_rewritten_unchanged(
    kubeconfig: Path, operator: Path, namespace: str, postgres_server: PgServer
) -> None:
    twin, db = Twin(kubeconfig, field_manager="dtwin-tests", database_per_namespace=True), namespace.replace("-", "_")
    for doc in docs():
        twin.apply(doc, namespace)
    # Nothing stored yet: both sensors silent, which costs the asset the full silence penalty.
    silent = {"state": "NoData", "openAlerts": 0, "healthScore": 70}
    wait_health(twin, "Asset", namespace, "p1", silent, "no data yet")

    at = datetime.now(UTC).replace(microsecond=0)
    postgres_server.sql(
        f"INSERT INTO site_hq.telemetry VALUES ('p1-temp', '{at - timedelta(seconds=5)}', 21.5), "
        f"('p1-temp', '{at - timedelta(seconds=65)}', 20.0), ('p1-flow', '{at}', 3.25);"
        "INSERT INTO site_hq.alerts (sensor, asset, kind, severity, dedup_key) "
        "VALUES ('p1-temp', 'p1', 'threshold', 'critical', 'p1-temp:threshold')",
        db,
    )
    seen = at.isoformat().replace("+00:00", "Z")
    alerting = {"state": "Alerting", "lastSeen": seen, "openAlerts": 1, "alertSeverity": "critical", "healthScore": 60}
    wait_health(twin, "Asset", namespace, "p1", alerting, "a critical alert open")
    temp = {
        "state": "Alerting",
        "lastSeen": (at - timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
        "lastValue": 21.5,
        "openAlerts": 1,
        "alertSeverity": "critical",
        "rejects": 0,
        "healthScore": 60,
    }
    wait_health(twin, "SensorBinding", namespace, "p1-temp", temp, "its critical alert")
    flow = {"state": "Healthy", "lastSeen": seen, "lastValue": 3.25, "openAlerts": 0, "rejects": 0, "healthScore": 100}
    wait_health(twin, "SensorBinding", namespace, "p1-flow", flow, "fresh and quiet")

    # Bounded rate: while nothing changes, refreshes go on and write nothing. (Two refreshes first, so the
    # operator's watch has surely seen its own last patch.)
    refreshes = "dtwin_operator_health_refreshes_total", 'result="ok"'
    patches = "dtwin_operator_health_status_patches_total", 'kind="assets"'
    settled = refreshed_more_than(refreshes, 2)
    written = scrape(*patches)
    assert written is not None and written >= 2
    refreshed_more_than(refreshes, 3, settled)
    assert scrape(*patches) == written

    postgres_server.sql("UPDATE site_hq.alerts SET state = 'resolved', resolved_at = now()", db)
    healthy = {"state": "Healthy", "lastSeen": seen, "openAlerts": 0, "healthScore": 100}
    wait_health(twin, "Asset", namespace, "p1", healthy, "recovered once the alert is resolved")
    # The reconciler's part of the status is untouched by the health patches.
    asset = twin.get("Asset", namespace, "p1") or {}
    assert asset["status"]["site"] == "hq" and asset["status"]["sensors"] == 2
    assert {c["type"] for c in asset["status"]["conditions"]} >= {"Ready", "SiteResolved"}
