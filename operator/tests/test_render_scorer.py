"""Unit tests of the scorer's manifests: what it runs on, the routing file it reads, its minimal RBAC."""

from __future__ import annotations

import dataclasses
from typing import Any

from dtwin_operator import labels, names
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.render.context import ModelContext
from dtwin_operator.render.model import model_children, routing_configmap
from dtwin_operator.render.scorer import role, role_binding, scorer_children, scorer_deployment, service_account


def context(canary: bool = False) -> ModelContext:
    spec = {"task": "anomaly", "model": {"name": "iforest", "version": "1"}, "canary": {"version": "2"}}
    return ModelContext(
        "demo", "pumps", ModelDeploymentSpec.model_validate(spec), ("demo/pump-1",), ("hq",), canary=canary
    )


def pod_spec(dep: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = dep["spec"]["template"]["spec"]
    return spec


def test_scorer_runs_dtwin_scorer_on_the_models_routing_file() -> None:
    ctx = context()
    dep = scorer_deployment(ctx, "ghcr.io/dtwin/scorer:test")
    (c,) = pod_spec(dep)["containers"]
    assert (c["image"], c["command"]) == ("ghcr.io/dtwin/scorer:test", ["python", "-m", "dtwin_scorer", "run"])
    env = {e["name"]: e for e in c["env"]}
    assert env["DTWIN_SCORER_ROUTING_DIR"]["value"] == "/etc/dtwin/models"
    # The routing ConfigMap is projected as <dir>/<name>.json: the scorer reads every *.json of its directory.
    (mount,) = c["volumeMounts"]
    assert (mount["mountPath"], mount["readOnly"]) == ("/etc/dtwin/models", True)
    (volume,) = pod_spec(dep)["volumes"]
    assert volume["name"] == mount["name"]
    assert volume["configMap"] == {
        "name": "dtwin-model-pumps-routing",
        "items": [{"key": "routing.json", "path": "pumps.json"}],
    }
    assert names.ROUTING_KEY in routing_configmap(ctx)["data"]
    # The DSN comes from the trainers' Secret, never from the spec; the Secret is required.
    assert env["DTWIN_SCORER_DATABASE_URL"] == {
        "name": "DTWIN_SCORER_DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "dtwin-trainer", "key": "dsn"}},
    }
    (c2,) = pod_spec(scorer_deployment(dataclasses.replace(ctx, trainer_secret="db-creds")))["containers"]
    assert c2["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "db-creds"
    # Its calls Lease is named after the full pod name.
    assert env["DTWIN_SCORER_REPORTER"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["DTWIN_SCORER_METRICS_PORT"]["value"] == "9466"


def test_scorer_is_one_replica_probed_on_its_metrics_port() -> None:
    dep = scorer_deployment(context())
    spec = dep["spec"]
    # Two scorers would count the same calls twice: one replica, and a rollout never adds a second pod.
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    (c,) = pod_spec(dep)["containers"]
    assert c["ports"] == [{"name": "metrics", "containerPort": 9466, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert c["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    sel = spec["selector"]["matchLabels"]
    assert sel == {"app.kubernetes.io/name": "dtwin-scorer", "app.kubernetes.io/instance": "pumps"}
    assert sel.items() <= spec["template"]["metadata"]["labels"].items()
    # Never selected by a serving Service, whose selector names dtwin-model.
    assert not labels.model_selector("pumps", "stable").items() <= spec["template"]["metadata"]["labels"].items()
    assert pod_spec(dep)["serviceAccountName"] == "dtwin-scorer-pumps"
    assert "automountServiceAccountToken" not in pod_spec(dep)  # it needs its token for the Leases


def test_scorer_may_write_leases_and_nothing_else() -> None:
    ctx = context()
    assert service_account(ctx) == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "dtwin-scorer-pumps", "namespace": "demo", "labels": labels.model("pumps", "scorer")},
    }
    # A server-side apply that creates the Lease when missing: create and patch, no get, list, update or delete.
    assert role(ctx)["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "patch"]}
    ]
    binding = role_binding(ctx)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "dtwin-scorer-pumps"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dtwin-scorer-pumps", "namespace": "demo"}]


def test_scorer_comes_after_the_routing_it_mounts_and_its_identity_before_it() -> None:
    ctx = context(canary=True)
    kinds = [(m["kind"], m["metadata"]["name"]) for m in model_children(ctx, "s:1")]
    assert kinds[-4:] == [
        ("ServiceAccount", "dtwin-scorer-pumps"),
        ("Role", "dtwin-scorer-pumps"),
        ("RoleBinding", "dtwin-scorer-pumps"),
        ("Deployment", "dtwin-scorer-pumps"),
    ]
    assert kinds.index(("ConfigMap", "dtwin-model-pumps-routing")) < kinds.index(("Deployment", "dtwin-scorer-pumps"))
    (dep,) = [m for m in model_children(ctx, "s:1") if m["metadata"]["name"] == "dtwin-scorer-pumps" and
              m["kind"] == "Deployment"]  # fmt: skip
    assert dep == scorer_deployment(ctx, "s:1")
    # The scorer does not change with the canary: a new routing reaches it through the projected file.
    assert scorer_children(ctx) == scorer_children(context(canary=False))
