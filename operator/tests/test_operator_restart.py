"""The operator SIGKILLed in the middle of reconciling the examples, then restarted, converges cleanly.

"Cleanly" means: every object Ready for its current generation, exactly the
expected owned objects per Site and per ModelDeployment (no duplicates), each
owned by a live Site or ModelDeployment (no orphans), and each bridge
StatefulSet rolled out once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from dtwin_localcp import kopf_process, processes
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.postgres import PgServer
from dtwin_localcp.twin import Twin, load_yaml

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
ENV = {"DTWIN_OPERATOR_DRIFT_INTERVAL": "5", "DTWIN_OPERATOR_RETRY_DELAY": "1", "DTWIN_OPERATOR_ERROR_BACKOFF": "1"}
MANAGED = "app.kubernetes.io/managed-by=dtwin-operator,dtwin.io/site"
OWNED_KINDS = (
    ("ConfigMap", "v1"),
    ("StatefulSet", "apps/v1"),
    ("Service", "v1"),
    ("HorizontalPodAutoscaler", "autoscaling/v2"),
)
MODEL_MANAGED = "app.kubernetes.io/managed-by=dtwin-operator,dtwin.io/model"
MODEL_KINDS = (
    ("ConfigMap", "v1"),
    ("Deployment", "apps/v1"),
    ("Service", "v1"),
    ("HorizontalPodAutoscaler", "autoscaling/v2"),
    ("CronJob", "batch/v1"),
    ("ServiceAccount", "v1"),
    ("Role", "rbac.authorization.k8s.io/v1"),
    ("RoleBinding", "rbac.authorization.k8s.io/v1"),
)


def owned_objects(twin: Twin, namespace: str) -> list[dict[str, Any]]:
    return [o for kind, version in OWNED_KINDS for o in twin.items(kind, namespace, version, label_selector=MANAGED)]


def model_objects(twin: Twin, namespace: str) -> list[dict[str, Any]]:
    return [
        o for kind, version in MODEL_KINDS for o in twin.items(kind, namespace, version, label_selector=MODEL_MANAGED)
    ]


def expected_model_objects(doc: dict[str, Any]) -> list[tuple[str, str]]:
    m = doc["metadata"]["name"]
    tracks = [f"dtwin-model-{m}", *([f"dtwin-model-{m}-canary"] if "canary" in doc["spec"] else [])]
    serving = [(k, t) for t in tracks for k in ("Deployment", "Service", "HorizontalPodAutoscaler")]
    recommend = [("CronJob", f"dtwin-recs-{m}")] if doc["spec"]["task"] == "energy" else []
    scorer = [(k, f"dtwin-scorer-{m}") for k in ("Deployment", "ServiceAccount", "Role", "RoleBinding")]
    return [*serving, ("ConfigMap", f"dtwin-model-{m}-routing"), ("CronJob", f"dtwin-train-{m}"), *recommend, *scorer]


def test_sigkill_mid_reconcile_then_restart_converges(
    kubeconfig: Path, crds_installed: list[str], namespace: str, postgres_server: PgServer, tmp_path: Path
) -> None:
    twin = Twin(kubeconfig, field_manager="dtwin-tests", database_per_namespace=True)
    docs = [d for d in load_yaml((ROOT / "examples").glob("*.yaml")) if d["kind"] != "Namespace"]
    sites = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Site")

    env = {**ENV, "DTWIN_OPERATOR_DATABASE_URL": postgres_server.dsn("{database}")}
    record = kopf_process.start(tmp_path, kubeconfig, env)
    try:
        for doc in docs:
            twin.apply(doc, namespace)
        # Kill as soon as the operator has written its first owned object: the Site reconcile is mid-way.
        wait_until(
            lambda: owned_objects(twin, namespace),
            60,
            "the operator's first owned object",
            interval=0.05,
            on_timeout=lambda: processes.tail(tmp_path, kopf_process.NAME),
        )
        os.kill(record.pid, signal.SIGKILL)
        wait_until(lambda: not processes.is_alive(record), 10, "the operator to die")
        ready_before = sum(r.ready for r in twin.readiness(namespace))
        assert ready_before < len(docs), "the kill came too late to be mid-reconcile"

        kopf_process.start(tmp_path, kubeconfig, env)
        twin.wait_all_ready(namespace, expected=len(docs), timeout=180)
    finally:
        kopf_process.stop(tmp_path)

    live = {s: twin.get("Site", namespace, s)["metadata"]["uid"] for s in sites}
    objs = owned_objects(twin, namespace)
    names = sorted((o["kind"], o["metadata"]["name"]) for o in objs)
    expected = sorted(
        [
            (k, n)
            for s in sites
            for k, n in (
                ("ConfigMap", f"dtwin-bridge-{s}-routing"),
                ("ConfigMap", f"dtwin-dashboard-{s}"),
                ("StatefulSet", f"dtwin-bridge-{s}"),
                ("Service", f"dtwin-bridge-{s}"),
                ("HorizontalPodAutoscaler", f"dtwin-bridge-{s}"),
            )
        ]
    )
    assert names == expected, "duplicate or missing owned objects"
    for o in objs:
        site = o["metadata"]["labels"]["dtwin.io/site"]
        assert [r["uid"] for r in o["metadata"]["ownerReferences"]] == [live[site]], "orphaned object"
    models = [d for d in docs if d["kind"] == "ModelDeployment"]
    got = sorted((o["kind"], o["metadata"]["name"]) for o in model_objects(twin, namespace))
    assert got == sorted(n for d in models for n in expected_model_objects(d)), "duplicate or missing model objects"
    model_uids = {d["metadata"]["name"]: twin.get("ModelDeployment", namespace, d["metadata"]["name"]) for d in models}
    for o in model_objects(twin, namespace):
        owner = model_uids[o["metadata"]["labels"]["dtwin.io/model"]]["metadata"]["uid"]
        assert [r["uid"] for r in o["metadata"]["ownerReferences"]] == [owner], "orphaned model object"
    for s in sites:
        # A StatefulSet keeps one ControllerRevision per pod template it ever had (labelled like its pods).
        revisions = twin.items(
            "ControllerRevision", namespace, "apps/v1", label_selector=f"app.kubernetes.io/instance={s}"
        )
        assert len(revisions) == 1, "the bridge was rolled more than once (its rendered template changed)"
        (owner,) = revisions[0]["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("StatefulSet", f"dtwin-bridge-{s}")
