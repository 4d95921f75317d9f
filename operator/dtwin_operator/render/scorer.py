"""What calls a ModelDeployment's model servers in a cluster: its online scorer, and the scorer's identity.

Per ModelDeployment `<name>`: the Deployment `dtwin-scorer-<name>` running `python -m dtwin_scorer run` on the
model's routing ConfigMap (projected as `<name>.json` into the scorer's routing directory) with the database DSN
from the trainers' Secret, and the ServiceAccount, Role and RoleBinding `dtwin-scorer-<name>` that let it write
its call statistics Leases (`dtwin-model-<name>-calls-<pod>`, `dtwin_core.model_calls`) in the namespace: the
reports the operator judges the canary on.

The Role grants `create` and `patch` on Leases and nothing else: the scorer only server-side-applies its own
Lease (`dtwin_scorer.lease`), an apply that creates the Lease when it is missing. The Lease names carry the pod
name, unknown in advance, so `resourceNames` cannot narrow it. The operator can only create a Role granting
rights it holds itself (RBAC escalation prevention); the chart's ClusterRole already holds these for the
bridges' Roles. Pure, like every renderer: the reconciler adds ownerReferences.
"""

from __future__ import annotations

from typing import Any

from dtwin_operator import labels, names
from dtwin_operator.render.context import ModelContext

COMPONENT = "scorer"
SCORER_IMAGE = "dtwin/scorer:0.1.0"
LEASE_VERBS = ("create", "patch")
# A pass finishes its model calls (each bounded by the scorer's 30 s request timeout) and writes before exiting.
GRACE_SECONDS = 60


def _meta(ctx: ModelContext) -> dict[str, Any]:
    return {"name": names.scorer(ctx.name), "namespace": ctx.namespace, "labels": labels.model(ctx.name, COMPONENT)}


def service_account(ctx: ModelContext) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ctx)}


def role(ctx: ModelContext) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(ctx),
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(LEASE_VERBS)}],
    }


def role_binding(ctx: ModelContext) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(ctx),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.scorer(ctx.name)},
        "subjects": [{"kind": "ServiceAccount", "name": names.scorer(ctx.name), "namespace": ctx.namespace}],
    }


def routing_file(ctx: ModelContext) -> str:
    """The routing file's name in the scorer's routing directory (it reads every `*.json` there)."""
    return f"{ctx.name}.json"


def _container(ctx: ModelContext, image: str) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/metrics", "port": "metrics"}}  # the scorer serves nothing else over HTTP
    return {
        "name": COMPONENT,
        "image": image,
        "command": ["python", "-m", "dtwin_scorer", "run"],
        "env": [
            # Not optional, unlike the trainers': a scorer without its database would fail every pass against the
            # built-in default DSN; a missing Secret keeps the pod in CreateContainerConfigError, which says why.
            {
                "name": "DTWIN_SCORER_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": ctx.trainer_secret, "key": "dsn"}},
            },
            {"name": "DTWIN_SCORER_ROUTING_DIR", "value": names.SCORER_ROUTING_DIR},
            {"name": "DTWIN_SCORER_METRICS_PORT", "value": str(names.SCORER_METRICS_PORT)},
            # Names the calls Lease. The pod name, not the hostname (the scorer's default): kubelet cuts a
            # hostname to 63 characters, which for a long model name drops the part that tells two pods apart.
            {"name": "DTWIN_SCORER_REPORTER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [{"name": "metrics", "containerPort": names.SCORER_METRICS_PORT, "protocol": "TCP"}],
        # The metrics endpoint starts before the first pass; a pass's failures show in its metrics, not here.
        "readinessProbe": {**probe, "periodSeconds": 10},
        "livenessProbe": {**probe, "periodSeconds": 20, "initialDelaySeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "volumeMounts": [{"name": "routing", "mountPath": names.SCORER_ROUTING_DIR, "readOnly": True}],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
    }


def scorer_deployment(ctx: ModelContext, image: str = SCORER_IMAGE) -> dict[str, Any]:
    """The scorer: one replica, replaced without a surge.

    One scorer per model, because each replica scores every asset of the routing: a second one would score the
    same windows again. Its predictions would be harmless (they upsert on their key), but its calls would count
    twice in the canary's evidence (each replica reports its own Lease, and the operator adds them up). A rollout
    therefore never adds a pod (maxSurge 0): the old pod is told to stop and the new one starts at once, so the
    only overlap is the old pod finishing its pass. `Recreate` would also wait for the old pod to be gone,
    leaving the model unscored for longer, with nothing gained.

    A changed routing needs no restart: kubelet updates the projected file and the scorer re-reads it.
    """
    selector = labels.model_workload_selector(ctx.name, COMPONENT)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(ctx),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": labels.model(ctx.name, COMPONENT)},
                "spec": {
                    "serviceAccountName": names.scorer(ctx.name),  # Leases only (role)
                    "containers": [_container(ctx, image)],
                    "volumes": [
                        {
                            "name": "routing",
                            "configMap": {
                                "name": names.model_routing_configmap(ctx.name),
                                "items": [{"key": names.ROUTING_KEY, "path": routing_file(ctx)}],
                            },
                        }
                    ],
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                },
            },
        },
    }


def scorer_children(ctx: ModelContext, image: str = SCORER_IMAGE) -> list[dict[str, Any]]:
    """In apply order: the account, what it may do, the grant, then the pods that use them."""
    return [service_account(ctx), role(ctx), role_binding(ctx), scorer_deployment(ctx, image)]
