"""Everything a Site becomes in Kubernetes: bridge identity and routing, StatefulSet, Service, HPA, dashboard.

`site_children(ctx)` is pure: the same context always gives the same manifests
in the same order. Owner references are added by the reconciler (they need the
live object's uid), not here.
"""

from __future__ import annotations

import json
from typing import Any

from dtwin_operator import labels, names
from dtwin_operator.render import routing
from dtwin_operator.render.bridge_rbac import bridge_rbac
from dtwin_operator.render.context import SiteContext
from dtwin_operator.render.dashboard import dashboard

METRICS_PORT = 9100
ROUTING_DIR = "/etc/dtwin/routing"


def _meta(ctx: SiteContext, name: str, component: str, **extra_labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": ctx.namespace, "labels": {**labels.common(ctx.name, component), **extra_labels}}


def routing_configmap(ctx: SiteContext, serialized: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(ctx, names.routing_configmap(ctx.name), "bridge"),
        "data": {names.ROUTING_KEY: serialized},
    }


def _container(ctx: SiteContext) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/ready", "port": "metrics"}, "periodSeconds": 10}
    return {
        "name": "bridge",
        "image": ctx.images.bridge,
        "args": ["--routing", f"{ROUTING_DIR}/{names.ROUTING_KEY}"],
        "env": [
            {"name": "DTWIN_BRIDGE_SITE", "value": ctx.name},
            {"name": "DTWIN_BRIDGE_NAMESPACE", "value": ctx.namespace},
            # The bridge's own default is 9465; the port the probes and the Service use is this one.
            {"name": "DTWIN_BRIDGE_METRICS_PORT", "value": str(METRICS_PORT)},
            {"name": "DTWIN_BRIDGE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            # The heartbeat Lease (dtwin_bridge.lease): in the pod's namespace, owned by the pod so that
            # garbage collection removes the Lease of a replica that died without deleting it.
            {"name": "DTWIN_BRIDGE_LEASE_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "DTWIN_BRIDGE_LEASE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "DTWIN_BRIDGE_LEASE_POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        ],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/health", "port": "metrics"}},
        # CPU request is what the HPA's utilisation target is a percentage of.
        "resources": {"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "volumeMounts": [{"name": "routing", "mountPath": ROUTING_DIR, "readOnly": True}],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def bridge_statefulset(ctx: SiteContext, config_hash: str) -> dict[str, Any]:
    """The bridge StatefulSet: stable pod names, because each replica is a persistent MQTT session.

    A replica's client id is `dtwin-bridge-<site>-<hostname>` (dtwin_bridge.settings), and a pod's hostname
    is its name. The broker keeps the QoS 1 messages it delivered but that were not yet acknowledged (the
    bridge acknowledges after the database commit) until the same client id reconnects. A Deployment
    replaces a killed pod under a new random name, stranding them; a StatefulSet brings back
    `dtwin-bridge-<site>-<ordinal>`, which resumes the session and gets them redelivered. It also never
    runs two pods of one name, so two processes never fight over one session.

    `replicas` is left out: the HPA owns it (server-side apply would fight it).
    """
    selector = labels.selector(ctx.name, "bridge")
    pod_labels = labels.common(ctx.name, "bridge")
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(ctx, names.bridge(ctx.name), "bridge"),
        "spec": {
            "selector": {"matchLabels": selector},
            # The metrics Service (bridge_service). Only a headless Service gives pods DNS records, which
            # nothing needs (a bridge is a client), so it stays a ClusterIP Service.
            "serviceName": names.bridge(ctx.name),
            # Replicas share the load through a shared subscription and need no start order: scale up and
            # down all at once instead of one ordinal at a time.
            "podManagementPolicy": "Parallel",
            # Pods are replaced one at a time, highest ordinal first, each under its old name.
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    # A new routing table changes the hash, which rolls the pods.
                    "annotations": {names.CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": {
                    "serviceAccountName": names.bridge(ctx.name),  # rendered by bridge_rbac: Leases only
                    "containers": [_container(ctx)],
                    "volumes": [{"name": "routing", "configMap": {"name": names.routing_configmap(ctx.name)}}],
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
    }


def bridge_service(ctx: SiteContext) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(ctx, names.bridge(ctx.name), "bridge"),
        "spec": {
            "selector": labels.selector(ctx.name, "bridge"),
            "ports": [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def bridge_hpa(ctx: SiteContext) -> dict[str, Any]:
    b = ctx.spec.bridge
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(ctx, names.bridge(ctx.name), "bridge"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": names.bridge(ctx.name)},
            "minReplicas": b.min_replicas,
            "maxReplicas": b.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": b.target_cpu_utilization},
                    },
                }
            ],
        },
    }


def dashboard_configmap(ctx: SiteContext) -> dict[str, Any]:
    """Picked up by Grafana's dashboard sidecar through the `grafana_dashboard: "1"` label."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(ctx, names.dashboard_configmap(ctx.name), "dashboard", **{labels.GRAFANA_DASHBOARD: "1"}),
        "data": {names.dashboard_file(ctx.name): json.dumps(dashboard(ctx), sort_keys=True, indent=1)},
    }


def site_children(ctx: SiteContext) -> list[dict[str, Any]]:
    """All objects owned by the Site, in apply order (identity and config before the workload that uses them)."""
    serialized = routing.serialize(routing.table(ctx))
    return [
        *bridge_rbac(ctx),
        routing_configmap(ctx, serialized),
        bridge_service(ctx),  # the StatefulSet's serviceName: applied first, as the StatefulSet API asks
        bridge_statefulset(ctx, routing.config_hash(serialized)),
        bridge_hpa(ctx),
        dashboard_configmap(ctx),
    ]
