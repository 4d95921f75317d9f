"""The level-based reconcile of a ModelDeployment.

For now it resolves the asset selection and reports it; rendering the BentoML
serving Deployment/Service/HPA, the canary and the retraining CronJob is added
here by the ML work, through the same render → apply → status path as Sites.
"""

from __future__ import annotations

import kopf

from dtwin_operator import metrics, resolve
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.indexes import Indexes, many, one
from dtwin_operator.k8s.client import Kube
from dtwin_operator.reconcile.site import write_status
from dtwin_operator.status import compose, now


async def reconcile_model(kube: Kube, idx: Indexes, namespace: str, name: str, retry_delay: float) -> None:
    me = next((m for m in many(idx["models_by_namespace"], namespace) if m.name == name), None)
    if me is None:
        return
    spec = ModelDeploymentSpec.model_validate(me.spec)
    with metrics.RECONCILE_SECONDS.labels(kind="ModelDeployment").time():
        chosen = resolve.selected(spec.selector, many(idx["assets_by_namespace"], namespace))
        parts = [resolve.selection(len(chosen))]
        if spec.selector.site and one(idx["sites"], (namespace, spec.selector.site)) is None:
            parts.insert(0, resolve.site_missing(namespace, spec.selector.site))
        fields = {
            "selectedAssets": len(chosen),
            "activeVersion": spec.model.version,
            "canaryVersion": spec.canary.version if spec.canary else None,
        }
        await write_status(kube, "modeldeployments", me, compose(me.status, parts, me.generation, now(), fields))
    ok = all(p.ok for p in parts)
    metrics.RECONCILES.labels(kind="ModelDeployment", result="ok" if ok else "degraded").inc()
    if not ok:
        raise kopf.TemporaryError(next(p.message for p in parts if not p.ok), delay=retry_delay)
