"""The operator against a real API server: examples converge, references heal, drift is repaired, GC works.

One operator process (a real `kopf run`) serves the whole module; each test
works in its own namespace. Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dtwin_localcp import kopf_process, processes
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.ports import free_port
from dtwin_localcp.postgres import PgServer
from dtwin_localcp.twin import Twin, load_yaml, wait_deleted

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
DRIFT = 3.0
OPERATOR_ENV = {
    "DTWIN_OPERATOR_DRIFT_INTERVAL": str(DRIFT),
    "DTWIN_OPERATOR_RETRY_DELAY": "1",
    "DTWIN_OPERATOR_ERROR_BACKOFF": "1",
}
CONVERGE = 120.0
BRIDGE_PODS = "app.kubernetes.io/name=dtwin-bridge"


@pytest.fixture(scope="module")
def twin(kubeconfig: Path, crds_installed: list[str]) -> Twin:
    return Twin(kubeconfig, field_manager="dtwin-tests", database_per_namespace=True)


METRICS_PORT = free_port()


@pytest.fixture(scope="module")
def operator(
    kubeconfig: Path, crds_installed: list[str], postgres_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("operator")
    env = {
        **OPERATOR_ENV,
        "DTWIN_OPERATOR_METRICS_PORT": str(METRICS_PORT),
        "DTWIN_OPERATOR_DATABASE_URL": postgres_server.dsn("{database}"),
    }
    with kopf_process.running(run_dir, kubeconfig, env):
        yield run_dir
    print(f"operator log: {processes.log_path(run_dir, kopf_process.NAME)}")


def example_docs() -> list[dict[str, Any]]:
    return [d for d in load_yaml(EXAMPLES) if d["kind"] != "Namespace"]


def site_doc(name: str = "hq", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "dtwin.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": name},
        "spec": {"layout": {"floors": [{"name": "l1", "level": 1}]}, **spec},
    }


def asset_doc(name: str, site: str = "hq") -> dict[str, Any]:
    return {
        "apiVersion": "dtwin.io/v1alpha1",
        "kind": "Asset",
        "metadata": {"name": name},
        "spec": {"siteRef": site, "kind": "Pump", "location": {"floor": "l1"}},
    }


def binding_doc(name: str, asset: str, unit: str = "degC") -> dict[str, Any]:
    return {
        "apiVersion": "dtwin.io/v1alpha1",
        "kind": "SensorBinding",
        "metadata": {"name": name},
        "spec": {"assetRef": asset, "metric": "discharge_temp", "topic": f"sites/hq/{asset}/t", "unit": unit},
    }


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == type_), {})


def wait_condition(
    twin: Twin, kind: str, ns: str, name: str, status: str, reason: str | None = None, timeout: float = 60
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = twin.get(kind, ns, name)
        c = condition(obj)
        ok = c.get("status") == status and (reason is None or c.get("reason") == reason)
        return obj if ok and obj and obj["status"].get("observedGeneration") == obj["metadata"]["generation"] else None

    return wait_until(
        check,
        timeout,
        f"{kind} {name} Ready={status} {reason or ''}",
        on_timeout=lambda: json.dumps(condition(twin.get(kind, ns, name))),
    )


def statefulset_available(twin: Twin, ns: str, name: str) -> bool:
    """Every replica the StatefulSet should run is available (a StatefulSet has no Available condition)."""
    sts = twin.get("StatefulSet", ns, name, "apps/v1") or {}
    want, st = sts.get("spec", {}).get("replicas"), sts.get("status") or {}
    return (
        bool(want)
        and st.get("observedGeneration") == sts["metadata"]["generation"]
        and (st.get("availableReplicas") == st.get("readyReplicas") == want)
    )


def test_examples_converge_and_bridges_become_available(twin: Twin, operator: Path, namespace: str) -> None:
    docs = example_docs()
    for doc in docs:
        twin.apply(doc, namespace)
    rows = twin.wait_all_ready(namespace, expected=len(docs), timeout=CONVERGE)
    assert len(rows) >= 2 + 12 + 48 + 3
    sites = [d for d in docs if d["kind"] == "Site"]
    for site in sites:
        name = site["metadata"]["name"]
        wait_until(
            lambda n=name: statefulset_available(twin, namespace, f"dtwin-bridge-{n}"),
            CONVERGE,
            f"bridge {name} Available via the KWOK node",
        )
        assets = {d["metadata"]["name"] for d in docs if d["kind"] == "Asset" and d["spec"]["siteRef"] == name}
        bindings = [d for d in docs if d["kind"] == "SensorBinding" and d["spec"]["assetRef"] in assets]
        obj = wait_condition(twin, "Site", namespace, name, "True")
        assert (obj["status"]["assets"], obj["status"]["sensors"]) == (len(assets), len(bindings))
        # Stable identities: each replica is dtwin-bridge-<site>-<ordinal>, which is its hostname and so names
        # its MQTT client id. KWOK reports no CPU, so the HPA holds the StatefulSet at minReplicas.
        minimum = site["spec"].get("bridge", {}).get("minReplicas", 1)

        def pods(n: str = name) -> list[tuple[str, str]]:
            selector = f"{BRIDGE_PODS},app.kubernetes.io/instance={n}"
            return sorted(
                (p["metadata"]["name"], p["spec"]["hostname"]) for p in twin.items("Pod", namespace, "v1", selector)
            )

        expected = [(f"dtwin-bridge-{name}-{i}",) * 2 for i in range(minimum)]
        wait_until(lambda e=expected: pods() == e, CONVERGE, f"bridge pods {expected}", on_timeout=lambda: str(pods()))
        wait_until(
            lambda n=name: condition(twin.get("Site", namespace, n), "BridgeAvailable").get("status") == "True",
            30,
            f"Site {name} BridgeAvailable",
        )
        routing = twin.get("ConfigMap", namespace, f"dtwin-bridge-{name}-routing", "v1")
        table = json.loads(routing["data"]["routing.json"])
        assert sorted(r["sensor"] for r in table["routes"]) == sorted(b["metadata"]["name"] for b in bindings)
        hpa = twin.get("HorizontalPodAutoscaler", namespace, f"dtwin-bridge-{name}", "autoscaling/v2")
        bridge = {"minReplicas": 1, "maxReplicas": 3, **site["spec"].get("bridge", {})}
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
            bridge["minReplicas"],
            bridge["maxReplicas"],
        )
        dash = twin.get("ConfigMap", namespace, f"dtwin-dashboard-{name}", "v1")
        assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
        for kind, version in (("ConfigMap", "v1"), ("StatefulSet", "apps/v1"), ("Service", "v1")):
            owned = twin.get(kind, namespace, f"dtwin-bridge-{name}", version) or routing
            (ref,) = owned["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["name"], ref["controller"]) == ("Site", name, True)
        events = twin.items("Event", namespace, "v1")
        said = {e["message"] for e in events if e["involvedObject"]["name"] == name and e["reason"] == "Created"}
        assert f"created StatefulSet dtwin-bridge-{name}" in said


def test_operator_exposes_prometheus_metrics(operator: Path) -> None:
    def scrape() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            return None
        return body if 'dtwin_operator_reconciles_total{kind="Site"' in body else None

    body = wait_until(scrape, 60, "Site reconcile metrics on /metrics")
    assert "dtwin_operator_reconcile_duration_seconds_bucket" in body
    assert 'dtwin_operator_applied_objects_total{action="created",kind="StatefulSet"}' in body


def test_asset_waits_for_its_site_then_becomes_ready(twin: Twin, operator: Path, namespace: str) -> None:
    twin.apply(asset_doc("p1", site="late"), namespace)
    twin.apply(binding_doc("p1-temp", "p1"), namespace)
    twin.apply(binding_doc("orphan-temp", "nobody"), namespace)
    obj = wait_condition(twin, "Asset", namespace, "p1", "False", "SiteNotFound")
    assert "Site 'late' does not exist" in condition(obj)["message"]
    wait_condition(twin, "SensorBinding", namespace, "p1-temp", "False", "SiteNotFound")
    wait_condition(twin, "SensorBinding", namespace, "orphan-temp", "False", "AssetNotFound")
    twin.apply(site_doc("late"), namespace)
    obj = wait_condition(twin, "Asset", namespace, "p1", "True")
    assert obj["status"]["site"] == "late" and obj["status"]["sensors"] == 1
    wait_condition(twin, "SensorBinding", namespace, "p1-temp", "True")


def test_unknown_floor_is_reported_on_the_asset(twin: Twin, operator: Path, namespace: str) -> None:
    twin.apply(site_doc(), namespace)
    doc = asset_doc("p9")
    doc["spec"]["location"] = {"floor": "l9"}
    twin.apply(doc, namespace)
    obj = wait_condition(twin, "Asset", namespace, "p9", "False", "UnknownFloor")
    assert "floors: l1" in condition(obj)["message"]


def test_binding_edit_updates_routing_and_rolls_the_bridge(twin: Twin, operator: Path, namespace: str) -> None:
    twin.apply(site_doc(), namespace)
    twin.apply(asset_doc("p1"), namespace)
    twin.apply(binding_doc("p1-temp", "p1"), namespace)
    wait_condition(twin, "SensorBinding", namespace, "p1-temp", "True")

    def routed_unit() -> str | None:
        cm = twin.get("ConfigMap", namespace, "dtwin-bridge-hq-routing", "v1")
        routes = json.loads(cm["data"]["routing.json"])["routes"] if cm else []
        return routes[0]["unit"] if routes else None

    wait_until(lambda: routed_unit() == "degC", 30, "routing table with the binding")
    wait_until(lambda: statefulset_available(twin, namespace, "dtwin-bridge-hq"), CONVERGE, "bridge available")
    before = twin.get("StatefulSet", namespace, "dtwin-bridge-hq", "apps/v1")
    hash_before = before["spec"]["template"]["metadata"]["annotations"]["dtwin.io/config-hash"]
    revision_before = before["status"]["updateRevision"]

    twin.apply(binding_doc("p1-temp", "p1", unit="degF"), namespace)
    wait_until(lambda: routed_unit() == "degF", 30, "routing table with the new unit")

    def rolled() -> bool:
        sts = twin.get("StatefulSet", namespace, "dtwin-bridge-hq", "apps/v1")
        new_hash = sts["spec"]["template"]["metadata"]["annotations"]["dtwin.io/config-hash"]
        st = sts.get("status") or {}
        return (
            new_hash != hash_before
            and st.get("observedGeneration") == sts["metadata"]["generation"]
            and st.get("updateRevision") not in (None, revision_before)
            # The controller moves currentRevision once every pod runs the new template and is ready.
            and st.get("currentRevision") == st.get("updateRevision")
            and st.get("updatedReplicas") == st.get("replicas") == st.get("readyReplicas")
        )

    wait_until(rolled, CONVERGE, "the bridge StatefulSet to roll out the new routing table")
    sts = twin.get("StatefulSet", namespace, "dtwin-bridge-hq", "apps/v1")
    new_hash = sts["spec"]["template"]["metadata"]["annotations"]["dtwin.io/config-hash"]
    # Each pod was replaced under its old name, running the new revision.
    pods = twin.items("Pod", namespace, "v1", label_selector=f"{BRIDGE_PODS},app.kubernetes.io/instance=hq")
    assert [(p["metadata"]["name"], p["metadata"]["labels"]["controller-revision-hash"]) for p in pods] == [
        (f"dtwin-bridge-hq-{i}", sts["status"]["updateRevision"]) for i in range(sts["spec"]["replicas"])
    ]
    # The Site's status is written after its children in the same reconcile: wait for it, don't race it.
    wait_until(
        lambda: (twin.get("Site", namespace, "hq") or {}).get("status", {}).get("configHash") == new_hash,
        30,
        "the Site status to report the new routing table's hash",
    )
    wait_condition(twin, "Site", namespace, "hq", "True")


def test_drift_is_repaired(twin: Twin, operator: Path, namespace: str) -> None:
    twin.apply(site_doc(), namespace)
    wait_condition(twin, "Site", namespace, "hq", "True", timeout=CONVERGE)
    uid = twin.get("StatefulSet", namespace, "dtwin-bridge-hq", "apps/v1")["metadata"]["uid"]
    twin.resource("StatefulSet", "apps/v1").delete(name="dtwin-bridge-hq", namespace=namespace)

    def recreated() -> bool:
        sts = twin.get("StatefulSet", namespace, "dtwin-bridge-hq", "apps/v1")
        return sts is not None and sts["metadata"]["uid"] != uid

    wait_until(recreated, 3 * DRIFT + 30, "the deleted bridge StatefulSet to be re-created")
    # Its replacement brings the same replica back: dtwin-bridge-hq-0, owned by the new StatefulSet.
    wait_until(
        lambda: statefulset_available(twin, namespace, "dtwin-bridge-hq"), CONVERGE, "the new bridge StatefulSet"
    )
    new_uid = twin.get("StatefulSet", namespace, "dtwin-bridge-hq", "apps/v1")["metadata"]["uid"]
    pod = twin.get("Pod", namespace, "dtwin-bridge-hq-0", "v1")
    assert pod is not None and [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [new_uid]

    cm = twin.get("ConfigMap", namespace, "dtwin-bridge-hq-routing", "v1")
    original = cm["data"]["routing.json"]
    twin.resource("ConfigMap", "v1").patch(
        name=cm["metadata"]["name"],
        namespace=namespace,
        body={"data": {"routing.json": "{}"}},
        content_type="application/merge-patch+json",
    )
    wait_until(
        lambda: twin.get("ConfigMap", namespace, "dtwin-bridge-hq-routing", "v1")["data"]["routing.json"] == original,
        3 * DRIFT + 30,
        "the hand-edited routing ConfigMap to be restored",
    )

    twin.resource("HorizontalPodAutoscaler", "autoscaling/v2").patch(
        name="dtwin-bridge-hq",
        namespace=namespace,
        body={"spec": {"maxReplicas": 42}},
        content_type="application/merge-patch+json",
    )
    wait_until(
        lambda: (
            twin.get("HorizontalPodAutoscaler", namespace, "dtwin-bridge-hq", "autoscaling/v2")["spec"]["maxReplicas"]
            == 3
        ),
        3 * DRIFT + 30,
        "the hand-edited HPA to be restored",
    )


def test_deleting_a_site_collects_its_children_and_recreating_converges(
    twin: Twin, operator: Path, namespace: str
) -> None:
    twin.apply(site_doc(), namespace)
    twin.apply(asset_doc("p1"), namespace)
    first = wait_condition(twin, "Site", namespace, "hq", "True", timeout=CONVERGE)
    wait_condition(twin, "Asset", namespace, "p1", "True")
    twin.resource("Site").delete(name="hq", namespace=namespace)
    wait_deleted(twin, "Site", namespace, "hq", 30)
    owned = [
        ("ConfigMap", "v1", "dtwin-bridge-hq-routing"),
        ("ConfigMap", "v1", "dtwin-dashboard-hq"),
        ("StatefulSet", "apps/v1", "dtwin-bridge-hq"),
        ("Service", "v1", "dtwin-bridge-hq"),
        ("HorizontalPodAutoscaler", "autoscaling/v2", "dtwin-bridge-hq"),
    ]
    for kind, version, name in owned:
        wait_deleted(twin, kind, namespace, name, 60, version)
    wait_condition(twin, "Asset", namespace, "p1", "False", "SiteNotFound")

    twin.apply(site_doc(), namespace)
    second = wait_condition(twin, "Site", namespace, "hq", "True", timeout=CONVERGE)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    wait_condition(twin, "Asset", namespace, "p1", "True")
    for kind, version, name in owned:
        obj = twin.get(kind, namespace, name, version)
        assert obj is not None, f"{kind} {name} not re-created"
        assert [r["uid"] for r in obj["metadata"]["ownerReferences"]] == [second["metadata"]["uid"]]


def test_site_schema_is_migrated_and_registry_follows_the_crs(
    twin: Twin, operator: Path, namespace: str, postgres_server: PgServer
) -> None:
    db = namespace.replace("-", "_")
    twin.apply(site_doc(), namespace)
    twin.apply(asset_doc("p1"), namespace)
    twin.apply(binding_doc("p1-temp", "p1"), namespace)
    wait_condition(twin, "SensorBinding", namespace, "p1-temp", "True")
    site = wait_condition(twin, "Site", namespace, "hq", "True")
    assert site["status"]["storage"]["backend"] in ("postgresql", "timescaledb")
    assert site["status"]["storage"]["schemaName"] == "site_hq"
    assert "schema site_hq" in condition(site, "StorageReady")["message"]

    def registry() -> str:
        return postgres_server.sql(
            "SELECT string_agg(name || ':' || canonical_unit, ',' ORDER BY name) FROM site_hq.sensors", db
        )

    wait_until(lambda: registry() == "p1-temp:degC", 30, "the sensor registry row")
    twin.apply(binding_doc("p1-temp2", "p1", unit="degF"), namespace)
    wait_until(lambda: registry() == "p1-temp:degC,p1-temp2:degC", 30, "the new binding in the registry")
    twin.resource("SensorBinding").delete(name="p1-temp", namespace=namespace)
    wait_until(lambda: registry() == "p1-temp2:degC", 30, "the deleted binding gone from the registry")
    assert postgres_server.sql("SELECT name FROM site_hq.assets", db) == "p1"


def test_deletion_policy_delete_drops_and_retain_keeps_the_schema(
    twin: Twin, operator: Path, namespace: str, postgres_server: PgServer
) -> None:
    db = namespace.replace("-", "_")

    def schemas() -> set[str]:
        out = postgres_server.sql("SELECT string_agg(nspname, ',') FROM pg_namespace WHERE nspname LIKE 'site_%'", db)
        return set(filter(None, out.split(",")))

    twin.apply(site_doc("keep"), namespace)
    twin.apply(site_doc("drop", storage={"deletionPolicy": "Delete"}), namespace)
    wait_condition(twin, "Site", namespace, "keep", "True", timeout=CONVERGE)
    wait_condition(twin, "Site", namespace, "drop", "True", timeout=CONVERGE)
    assert {"site_keep", "site_drop"} <= schemas()
    postgres_server.sql("INSERT INTO site_keep.telemetry VALUES ('s', now(), 1.5)", db)
    for name in ("keep", "drop"):
        twin.resource("Site").delete(name=name, namespace=namespace)
        wait_deleted(twin, "Site", namespace, name, 60)
    assert "site_drop" not in schemas()
    assert postgres_server.sql("SELECT count(*) FROM site_keep.telemetry", db) == "1", "Retain lost data"


def test_same_site_name_in_two_namespaces_cannot_share_a_schema(
    kubeconfig: Path, operator: Path, namespace: str, kube_client: Any
) -> None:
    from kubernetes import client

    twin = Twin(kubeconfig, field_manager="dtwin-tests")  # keeps the database the doc names

    other = f"{namespace}-b"
    client.CoreV1Api(kube_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        shared = namespace.replace("-", "_") + "_shared"
        twin.apply(site_doc(storage={"database": shared}), namespace)
        wait_condition(twin, "Site", namespace, "hq", "True", timeout=CONVERGE)
        twin.apply(site_doc(storage={"database": shared}), other)
        obj = wait_condition(twin, "Site", other, "hq", "False", "SchemaConflict")
        assert f"already belongs to Site {namespace}/hq" in condition(obj)["message"]
        assert "set spec.storage.database" in condition(obj)["message"]
    finally:
        client.CoreV1Api(kube_client).delete_namespace(other)
