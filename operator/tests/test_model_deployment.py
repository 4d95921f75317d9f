"""ModelDeployments against a real API server and a real operator process: serving, versions, canary, rollback,
the scorer's workload and identity, energy recommendations, garbage collection (children and callers' Leases).

The local control plane runs kube-controller-manager and KWOK, so the serving Deployments really roll out and
become ready (KWOK fakes the pods); callers' reports are real Leases written as the scorer writes them
(`dtwin_core.model_calls`). One operator serves the module, each test has its own namespace, nothing sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from dtwin_core.model_calls import CallStats, lease_body
from dtwin_localcp import kopf_process, processes
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.twin import Twin, wait_deleted
from dtwin_scorer.lease import Reporter

pytestmark = pytest.mark.cluster

CONVERGE = 120.0
OPERATOR_ENV = {
    "DTWIN_OPERATOR_DRIFT_INTERVAL": "3",
    "DTWIN_OPERATOR_CALLS_INTERVAL": "1",
    "DTWIN_OPERATOR_RETRY_DELAY": "1",
    "DTWIN_OPERATOR_ERROR_BACKOFF": "1",
}
NAME = "pumps"
LEASE = "coordination.k8s.io/v1"


@pytest.fixture(scope="module")
def twin(kubeconfig: Path, crds_installed: list[str]) -> Twin:
    return Twin(kubeconfig, field_manager="dtwin-tests")


@pytest.fixture(scope="module")
def operator(kubeconfig: Path, crds_installed: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("model-operator")
    with kopf_process.running(run_dir, kubeconfig, OPERATOR_ENV):
        yield run_dir
    print(f"operator log: {processes.log_path(run_dir, kopf_process.NAME)}")


def asset_doc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "dtwin.io/v1alpha1",
        "kind": "Asset",
        "metadata": {"name": name},
        "spec": {"siteRef": "hq", "kind": "Pump", "location": {"floor": "l1"}},
    }


def model_doc(version: str = "1.0", canary: dict[str, Any] | None = None, task: str = "failure") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "task": task,
        "model": {"name": "failure-rf", "version": version},
        "selector": {"kinds": ["Pump"]},
        "serving": {"minReplicas": 1, "maxReplicas": 2},
    }
    if canary is not None:
        spec["canary"] = canary
    return {"apiVersion": "dtwin.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": NAME}, "spec": spec}


def condition(obj: dict[str, Any] | None, type_: str = "Ready") -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def wait_status(twin: Twin, ns: str, what: str, check: Any, timeout: float = CONVERGE) -> dict[str, Any]:
    """The ModelDeployment once its status, written for its current generation, passes `check(status)`."""

    def done() -> dict[str, Any] | None:
        obj = twin.get("ModelDeployment", ns, NAME) or {}
        st = obj.get("status") or {}
        current = st.get("observedGeneration") == obj.get("metadata", {}).get("generation")
        return obj if current and check(st) else None

    return wait_until(
        done, timeout, what, on_timeout=lambda: json.dumps((twin.get("ModelDeployment", ns, NAME) or {}).get("status"))
    )


def routing(twin: Twin, ns: str) -> dict[str, Any] | None:
    cm = twin.get("ConfigMap", ns, f"dtwin-model-{NAME}-routing", "v1")
    return json.loads(cm["data"]["routing.json"]) if cm else None


def env(dep: dict[str, Any]) -> dict[str, str]:
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def owned_lease(twin: Twin, ns: str, reporter: str) -> dict[str, Any] | None:
    """The calls Lease of `reporter`, once it has an ownerReference."""
    lease = twin.get("Lease", ns, f"dtwin-model-{NAME}-calls-{reporter}", LEASE)
    return lease if lease and lease["metadata"].get("ownerReferences") else None


def test_model_is_served_and_a_new_version_rolls_out(twin: Twin, operator: Path, namespace: str) -> None:
    for asset in ("p2", "p1"):
        twin.apply(asset_doc(asset), namespace)
    twin.apply(model_doc("1.0"), namespace)
    obj = wait_status(
        twin,
        namespace,
        "ModelDeployment Ready, version 1.0 served by a ready replica",
        lambda st: (
            condition({"status": st}).get("status") == "True"
            and st.get("activeVersion") == "1.0"
            and st.get("readyReplicas") == 1
        ),
    )
    st = obj["status"]
    assert st["endpoint"] == f"http://dtwin-model-{NAME}.{namespace}.svc:3000"
    assert (st["canaryState"], st["selectedAssets"]) == ("Off", 2)
    assert condition(obj, "ServingAvailable")["status"] == "True"
    for kind, version, name in (
        ("Deployment", "apps/v1", f"dtwin-model-{NAME}"),
        ("Service", "v1", f"dtwin-model-{NAME}"),
        ("HorizontalPodAutoscaler", "autoscaling/v2", f"dtwin-model-{NAME}"),
        ("CronJob", "batch/v1", f"dtwin-train-{NAME}"),
        ("ConfigMap", "v1", f"dtwin-model-{NAME}-routing"),
    ):
        child = twin.get(kind, namespace, name, version)
        assert child is not None, f"{kind} {name}"
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", NAME, True)
    cron = twin.get("CronJob", namespace, f"dtwin-train-{NAME}", "batch/v1")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert "--schema" in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    table = routing(twin, namespace)
    assert table is not None
    assert table["assets"] == [f"{namespace}/p1", f"{namespace}/p2"]
    assert (table["stable"]["version"], table["canary"]) == ("1.0", None)

    # Callers' Leases get the ModelDeployment as a (non-controlling) owner...
    twin.apply(lease_body(namespace, NAME, "scorer-old", CallStats("1.0", 5), None))
    twin.apply(lease_body(namespace, NAME, "scorer-both", CallStats("1.0", 9), CallStats("1.1", 2)))
    for reporter in ("scorer-old", "scorer-both"):
        lease = wait_until(lambda r=reporter: owned_lease(twin, namespace, r), 30, f"{reporter}'s Lease owned")
        (owner,) = lease["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", NAME, False)

    # Promotion: a new spec.model.version rolls the same Deployment.
    twin.apply(model_doc("1.1"), namespace)

    def rolled() -> bool:
        dep = twin.get("Deployment", namespace, f"dtwin-model-{NAME}", "apps/v1") or {}
        labels = dep["spec"]["template"]["metadata"]["labels"]
        return env(dep)["DTWIN_MODEL_TAG"] == "failure-rf:1.1" and labels["dtwin.io/model-version"] == "1.1"

    wait_until(rolled, 30, "the stable Deployment's template to carry version 1.1")
    wait_status(twin, namespace, "activeVersion 1.1 once rolled out", lambda st: st.get("activeVersion") == "1.1")
    assert routing(twin, namespace)["stable"]["version"] == "1.1"  # type: ignore[index]
    # ...and a Lease that reports only versions no longer served goes; one still reporting 1.1 stays.
    wait_deleted(twin, "Lease", namespace, f"dtwin-model-{NAME}-calls-scorer-old", 30, LEASE)
    assert owned_lease(twin, namespace, "scorer-both") is not None


def test_bad_canary_is_rolled_back_with_a_warning(twin: Twin, operator: Path, namespace: str) -> None:
    twin.apply(asset_doc("p1"), namespace)
    twin.apply(model_doc("1.0"), namespace)
    wait_status(twin, namespace, "stable served", lambda st: st.get("readyReplicas") == 1)
    canary = {"version": "1.1", "trafficPercent": 20, "minCalls": 50, "maxErrorRate": 0.05}
    twin.apply(model_doc("1.0", canary), namespace)
    wait_status(
        twin,
        namespace,
        "the canary Progressing with a ready replica",
        lambda st: (
            (st.get("canaryState"), st.get("canaryVersion"), st.get("canaryReadyReplicas")) == ("Progressing", "1.1", 1)
        ),
    )
    for kind, version in (("Deployment", "apps/v1"), ("Service", "v1"), ("HorizontalPodAutoscaler", "autoscaling/v2")):
        assert twin.get(kind, namespace, f"dtwin-model-{NAME}-canary", version) is not None, kind
    dep = twin.get("Deployment", namespace, f"dtwin-model-{NAME}-canary", "apps/v1")
    assert env(dep)["DTWIN_MODEL_TAG"] == "failure-rf:1.1"
    assert routing(twin, namespace)["canary"] == {  # type: ignore[index]
        "version": "1.1",
        "url": f"http://dtwin-model-{NAME}-canary.{namespace}.svc:3000",
        "percent": 20,
    }

    # Too few calls: no verdict, whatever the errors.
    twin.apply(lease_body(namespace, NAME, "scorer-0", CallStats("1.0", 30), CallStats("1.1", 10, 10)))
    obj = wait_status(twin, namespace, "10 canary calls counted", lambda st: st.get("calls", {}).get("canary") == 10)
    assert obj["status"]["canaryState"] == "Progressing"
    assert condition(obj, "CanaryHealthy")["status"] == "Unknown"

    # Two reporters, 120 canary calls, 50 failed: rolled back. The first report alone is below minCalls, so
    # the verdict waits for both whenever the operator happens to read them.
    twin.apply(lease_body(namespace, NAME, "scorer-0", CallStats("1.0", 300, 1, 60.0), CallStats("1.1", 40, 17)))
    twin.apply(lease_body(namespace, NAME, "scorer-1", CallStats("1.0", 100, 1, 20.0), CallStats("1.1", 80, 33)))
    obj = wait_status(twin, namespace, "the canary RolledBack", lambda st: st.get("canaryState") == "RolledBack")
    st = obj["status"]
    assert (st["rolledBackVersion"], st.get("canaryVersion"), st["calls"]["canary"]) == ("1.1", None, 120)
    assert condition(obj, "CanaryHealthy")["status"] == "False"
    assert condition(obj)["status"] == "True", "the stable version still serves"
    for kind, version in (("Deployment", "apps/v1"), ("Service", "v1"), ("HorizontalPodAutoscaler", "autoscaling/v2")):
        wait_deleted(twin, kind, namespace, f"dtwin-model-{NAME}-canary", 30, version)
    assert routing(twin, namespace)["canary"] is None  # type: ignore[index]
    reason = "canary 1.1 rolled back: error rate 0.42 > 0.05 over 120 calls"

    def warned() -> bool:
        return any(
            e["involvedObject"]["name"] == NAME
            and e["involvedObject"]["kind"] == "ModelDeployment"
            and (e["type"], e["reason"], e["message"]) == ("Warning", "CanaryRolledBack", reason)
            for e in twin.items("Event", namespace, "v1")
        )

    wait_until(warned, 30, f"a Warning Event {reason!r}")

    # Good reports later do not bring a rolled-back version back...
    twin.apply(lease_body(namespace, NAME, "scorer-1", CallStats("1.0", 100, 1, 20.0), CallStats("1.1", 1000)))
    obj = wait_status(twin, namespace, "1040 canary calls counted", lambda st: st["calls"]["canary"] == 1040)
    assert obj["status"]["canaryState"] == "RolledBack"
    assert twin.get("Deployment", namespace, f"dtwin-model-{NAME}-canary", "apps/v1") is None
    # ...a new canary version does.
    twin.apply(model_doc("1.0", {**canary, "version": "1.2"}), namespace)
    obj = wait_status(
        twin,
        namespace,
        "canary 1.2 Progressing",
        lambda st: (
            (st.get("canaryState"), st.get("canaryVersion"), st.get("canaryReadyReplicas")) == ("Progressing", "1.2", 1)
        ),
    )
    assert obj["status"].get("rolledBackVersion") is None
    assert routing(twin, namespace)["canary"]["version"] == "1.2"  # type: ignore[index]


def serviceaccount_client(twin: Twin, namespace: str, name: str) -> client.ApiClient:
    """An API client authenticated as the ServiceAccount `name` (a short-lived token), on the admin's server."""
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    status = client.CoreV1Api(twin.api).create_namespaced_service_account_token(name, namespace, request).status
    assert status is not None
    token = status.token
    admin = twin.api.configuration
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert, cfg.api_key = admin.host, admin.ssl_ca_cert, {"authorization": f"Bearer {token}"}
    return client.ApiClient(cfg)


def forbidden(call: Any) -> bool:
    try:
        call()
    except ApiException as e:
        return e.status == 403
    return False


def test_scorer_and_recommendations_run_with_their_own_identity_and_go_with_the_model(
    twin: Twin, operator: Path, namespace: str
) -> None:
    twin.apply(asset_doc("p1"), namespace)
    twin.apply(model_doc(task="energy"), namespace)
    wait_status(twin, namespace, "stable served", lambda st: st.get("readyReplicas") == 1)
    scorer = f"dtwin-scorer-{NAME}"
    children = [
        ("Deployment", "apps/v1", scorer),
        ("ServiceAccount", "v1", scorer),
        ("Role", "rbac.authorization.k8s.io/v1", scorer),
        ("RoleBinding", "rbac.authorization.k8s.io/v1", scorer),
        ("CronJob", "batch/v1", f"dtwin-recs-{NAME}"),
    ]
    for kind, version, name in children:

        def rendered(k: str = kind, v: str = version, n: str = name) -> dict[str, Any] | None:
            return twin.get(k, namespace, n, v)

        child = wait_until(rendered, 30, f"{kind} {name}")
        (owner,) = child["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", NAME, True)
        assert child["metadata"]["labels"]["app.kubernetes.io/instance"] == NAME
    dep = twin.get("Deployment", namespace, scorer, "apps/v1")
    pod = dep["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["serviceAccountName"] == scorer
    assert pod["volumes"][0]["configMap"]["items"] == [{"key": "routing.json", "path": f"{NAME}.json"}]
    cron = twin.get("CronJob", namespace, f"dtwin-recs-{NAME}", "batch/v1")
    (c,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert (c["command"][3:], cron["spec"]["suspend"]) == (["recommend", "--schema", "site_hq", "--days", "7"], False)  # type: ignore[index]
    # Occupied hours are the site's local hours: once the Site says where it is, its time zone goes along.
    where = {"location": {"timezone": "Europe/Paris"}, "layout": {"floors": [{"name": "l1", "level": 1}]}}
    twin.apply(
        {"apiVersion": "dtwin.io/v1alpha1", "kind": "Site", "metadata": {"name": "hq"}, "spec": where}, namespace
    )

    def zoned() -> bool:
        cj = twin.get("CronJob", namespace, f"dtwin-recs-{NAME}", "batch/v1") or {}
        (c,) = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        return bool(c["command"][3:6] == ["recommend", "--schema", "site_hq=Europe/Paris"])

    wait_until(zoned, CONVERGE, "the recommendations to run in the Site's time zone")

    # The scorer's ServiceAccount writes its calls Lease exactly as the scorer does, and the operator reads it...
    api = serviceaccount_client(twin, namespace, scorer)
    try:
        Reporter(api, "dtwin-scorer-pumps-abc12", 5.0).report(namespace, NAME, CallStats("1.0", 7, 1, 3.0), None)
        wait_status(twin, namespace, "the scorer's 7 calls counted", lambda st: st.get("calls", {}).get("stable") == 7)
        # ...and may do nothing else.
        leases, core = client.CoordinationV1Api(api), client.CoreV1Api(api)
        assert forbidden(lambda: leases.list_namespaced_lease(namespace))
        assert forbidden(
            lambda: leases.delete_namespaced_lease(f"dtwin-model-{NAME}-calls-dtwin-scorer-pumps-abc12", namespace)
        )
        assert forbidden(lambda: core.read_namespaced_secret("dtwin-trainer", namespace))
        assert forbidden(lambda: core.list_namespaced_pod(namespace))
    finally:
        api.close()

    # No longer an energy model: its recommendations go, the scorer stays.
    twin.apply(model_doc(task="failure"), namespace)
    wait_deleted(twin, "CronJob", namespace, f"dtwin-recs-{NAME}", 30, "batch/v1")
    assert twin.get("Deployment", namespace, scorer, "apps/v1") is not None

    # Everything the ModelDeployment rendered goes with it (garbage collection of its ownerReferences).
    twin.resource("ModelDeployment").delete(name=NAME, namespace=namespace)
    for kind, version, name in [
        *children[:4],
        ("CronJob", "batch/v1", f"dtwin-train-{NAME}"),
        ("Lease", LEASE, f"dtwin-model-{NAME}-calls-dtwin-scorer-pumps-abc12"),
    ]:
        wait_deleted(twin, kind, namespace, name, CONVERGE, version)
