"""The identity of a Site's bridge pods: a ServiceAccount, and a Role + RoleBinding for their heartbeat Leases.

Each bridge replica renews a coordination.k8s.io Lease in its own namespace (`dtwin_bridge.lease`); that is
all it ever asks of the API server, so its Role grants exactly that: create the Lease, patch it (renewals are
server-side applies) and delete it on the way out. Lease names carry the pod name, unknown in advance, so
`resourceNames` cannot narrow it further. Pure, like every renderer: the reconciler adds ownerReferences.

The operator can only create a Role granting rights it holds itself (Kubernetes RBAC escalation prevention),
which is why the chart's ClusterRole gives the operator these Lease verbs too.
"""

from __future__ import annotations

from typing import Any

from dtwin_operator import labels, names
from dtwin_operator.render.context import SiteContext

LEASE_VERBS = ("create", "patch", "delete")


def _meta(ctx: SiteContext) -> dict[str, Any]:
    return {"name": names.bridge(ctx.name), "namespace": ctx.namespace, "labels": labels.common(ctx.name, "bridge")}


def service_account(ctx: SiteContext) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ctx)}


def role(ctx: SiteContext) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(ctx),
        "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": list(LEASE_VERBS)}],
    }


def role_binding(ctx: SiteContext) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(ctx),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": names.bridge(ctx.name)},
        "subjects": [{"kind": "ServiceAccount", "name": names.bridge(ctx.name), "namespace": ctx.namespace}],
    }


def bridge_rbac(ctx: SiteContext) -> list[dict[str, Any]]:
    """In apply order: the account, what it may do, then the grant."""
    return [service_account(ctx), role(ctx), role_binding(ctx)]
