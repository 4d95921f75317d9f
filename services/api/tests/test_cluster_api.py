"""The API against the local control plane (a real kube-apiserver), real PostgreSQL and real Mosquitto:
`/ready` (database, broker, API server; 503 naming what failed) and ModelDeployments read from the cluster,
scoped to the caller's sites by namespace + `spec.selector.site`, with their authorization matrix.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from dtwin_api.authz import Role
from dtwin_core import model_calls

GROUP, VERSION, PLURAL = "dtwin.io", "v1alpha1", "modeldeployments"


def _namespace(api: client.ApiClient) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def _model(api: client.ApiClient, namespace: str, name: str, task: str, site: str | None, **extra: Any) -> None:
    spec: dict[str, Any] = {"task": task, "model": {"name": f"{task}-model", "version": "1.0.0"}, **extra}
    if site is not None:
        spec["selector"] = {"site": site}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}  # fmt: skip
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def _models(api: client.ApiClient) -> str:
    """Models in a fresh namespace (alpha's and beta's claims are moved there) and one in another namespace."""
    ns, other = _namespace(api), _namespace(api)
    _model(api, ns, "fail-alpha", "failure", "alpha", canary={"version": "1.1.0", "trafficPercent": 20})
    _model(api, ns, "energy-all", "energy", None)
    _model(api, ns, "anomaly-beta", "anomaly", "beta", canary={"version": "2.0.0"})
    _model(api, other, "fail-elsewhere", "failure", "alpha")  # same site name, another namespace: not alpha's
    status = {"status": {"activeVersion": "1.0.0", "endpoint": "http://fail-alpha.svc:3000", "selectedAssets": 2,
                         "canaryState": "Progressing", "canaryVersion": "1.1.0", "readyReplicas": 2,
                         "canaryReadyReplicas": 1,
                         "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "ok",
                                         "lastTransitionTime": "2026-12-03T10:00:00Z"}]}}  # fmt: skip
    custom = client.CustomObjectsApi(api)
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "fail-alpha", status)
    rolled_back = {"status": {"activeVersion": "1.0.0", "canaryState": "RolledBack", "rolledBackVersion": "2.0.0"}}
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "anomaly-beta", rolled_back)
    # Two callers' calls Leases of fail-alpha (as `dtwin_core.model_calls` reporters write them).
    for reporter, stable, canary in (("scorer-0", model_calls.CallStats("1.0.0", 8, 0, 4.0), None),
                                     ("scorer-1", model_calls.CallStats("1.0.0", 2, 1, 0.5),
                                      model_calls.CallStats("1.1.0", 3, 0, 2.4))):  # fmt: skip
        body = model_calls.lease_body(ns, "fail-alpha", reporter, stable, canary)
        client.CoordinationV1Api(api).create_namespaced_lease(ns, body)
    return ns


async def _claim(world: Any, namespace: str) -> None:
    conn = await world.connect()
    try:
        await conn.execute("UPDATE public.dtwin_schema_owners SET namespace = $1", namespace)
    finally:
        await conn.close()


def test_models_are_scoped_to_the_site(world: Any, model_crd: client.ApiClient, kubeconfig: Path) -> None:
    namespace = _models(model_crd)

    async def scenario() -> list[str]:
        await _claim(world, namespace)
        for role in Role:
            await world.add_user(f"{role.name}-alpha", {"alpha": role})
        both = await world.add_user("both", {"alpha": Role.viewer, "beta": Role.viewer})
        problems = world.problems()
        async with world.serve(kube_enabled=True, kubeconfig=str(kubeconfig)) as api:
            c = api.client
            r = await c.get("/api/v1/sites/alpha/models", headers=api.auth(both))
            assert [m["name"] for m in r.json()] == ["energy-all", "fail-alpha"], r.text
            fail = r.json()[1]
            assert (fail["task"], fail["site"], fail["desired_version"], fail["active_version"]) == (
                "failure", "alpha", "1.0.0", "1.0.0"
            )  # fmt: skip
            assert (fail["canary_version"], fail["canary_traffic_percent"]) == ("1.1.0", 20)
            assert (fail["canary_state"], fail["rolled_back_version"]) == ("Progressing", None)
            assert (fail["ready_replicas"], fail["canary_ready_replicas"]) == (2, 1)
            assert (r.json()[0]["canary_state"], r.json()[0]["ready_replicas"]) == (None, None)  # no status yet
            assert fail["endpoint"] == "http://fail-alpha.svc:3000" and fail["selected_assets"] == 2
            assert fail["conditions"][0]["type"] == "Ready" and fail["conditions"][0]["reason"] == "Serving"
            assert [(c["version"], c["calls"], c["errors"]) for c in fail["calls"]] == [
                ("1.0.0", 10, 1),
                ("1.1.0", 3, 0),
            ]
            assert fail["calls"][1]["mean_score"] == pytest.approx(0.8)
            assert r.json()[0]["calls"] == []
            r = await c.get("/api/v1/sites/beta/models", headers=api.auth(both))
            assert [m["name"] for m in r.json()] == ["anomaly-beta", "energy-all"]
            beta = r.json()[0]
            # The spec still names the rolled-back version; the API does not call it the canary.
            assert (beta["canary_state"], beta["rolled_back_version"], beta["canary_version"]) == (
                "RolledBack", "2.0.0", None
            )  # fmt: skip
            assert beta["ready_replicas"] == 0  # the CRD's default for a status without it

            for role in Role:
                h = api.auth(world.users[f"{role.name}-alpha"])
                for path, wanted in (
                    ("/api/v1/sites/alpha/models", 200),
                    ("/api/v1/sites/alpha/models/fail-alpha", 200),
                    ("/api/v1/sites/alpha/models/anomaly-beta", 404),  # exists, serves another site
                    ("/api/v1/sites/alpha/models/fail-elsewhere", 404),  # another namespace
                    ("/api/v1/sites/beta/models", 403),
                    ("/api/v1/sites/beta/models/anomaly-beta", 403),
                ):
                    r = await c.get(path, headers=h)
                    problems.expect(f"{role.name} GET {path}", r.status_code, wanted, r.json())
                    if r.status_code == 200 and "beta" in r.text:
                        problems.append(f"{role.name} GET {path} leaked a beta model: {r.text[:200]}")
            r = await c.get("/api/v1/sites/alpha/models")
            problems.expect("anonymous models", r.status_code, 401, r.json())
        return problems

    assert asyncio.run(scenario()) == []


def test_ready_checks_database_broker_and_api_server(
    world: Any, model_crd: client.ApiClient, kubeconfig: Path, mosquitto_server: Any, tmp_path: Path
) -> None:
    dead = yaml.safe_load(kubeconfig.read_text())
    for cluster in dead["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens there
    dead_path = tmp_path / "dead-kubeconfig"
    dead_path.write_text(yaml.safe_dump(dead))

    async def scenario() -> None:
        live = {"kube_enabled": True, "kubeconfig": str(kubeconfig), "mqtt_enabled": True,
                "mqtt_port": mosquitto_server.port}  # fmt: skip
        async with world.serve(**live) as api:
            subscribed = await asyncio.to_thread(api.app.state.subscriber.subscribed.wait, 20)
            assert subscribed, "the API did not subscribe to the broker"
            r = await api.client.get("/ready")
            assert r.status_code == 200, r.text
            assert r.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok", "kubernetes": "ok"}}

        async with world.serve(**(live | {"kubeconfig": str(dead_path), "mqtt_port": 1, "kube_timeout_s": 1})) as api:
            r = await api.client.get("/ready")
            body = r.json()
            assert r.status_code == 503 and body["error"] == "not_ready", body
            assert body["checks"]["database"] == "ok"
            assert body["checks"]["broker"].startswith("failed") and body["checks"]["kubernetes"].startswith("failed")
            assert body["message"] == "not ready: broker, kubernetes"
            r = await api.client.get("/api/v1/sites/alpha/models", headers=api.auth(await world.add_user(
                "v", {"alpha": Role.viewer})))  # fmt: skip
            assert r.status_code == 503 and r.json()["error"] == "cluster_unavailable", r.text

    asyncio.run(scenario())
