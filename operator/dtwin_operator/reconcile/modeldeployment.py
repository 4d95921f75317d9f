"""The level-based reconcile of one ModelDeployment: selection, canary verdict, serving, routing, retraining,
scoring.

One run resolves the asset selection from the indexes, reads the call statistics the model's callers report
in their Leases (owning them, deleting those of versions no longer served), decides the canary's fate
(`dtwin_operator.serving.plan`), renders the children (`render.model`, the scorer's from `render.scorer`),
server-side-applies them under the ModelDeployment's ownership, prunes what is no longer rendered (a
rolled-back or removed canary, the recommendations CronJob of a model no longer `energy`), and writes the
status once. A rollback also posts a Warning Event that says why.
Create, update, resume, the drift and calls timers and every owned-object event run this same function.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from dtwin_core import model_calls
from dtwin_core.model_calls import CallStats
from dtwin_operator import labels, metrics, names, resolve, serving
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.indexes import Indexes, Obj, many, one
from dtwin_operator.k8s.client import Kube, owner_reference
from dtwin_operator.reconcile.site import ref
from dtwin_operator.render.context import Images, ModelContext
from dtwin_operator.render.model import PRUNABLE, model_children
from dtwin_operator.render.scorer import SCORER_IMAGE
from dtwin_operator.status import Cond, compose, condition, now, ready_of

log = logging.getLogger(__name__)
KIND = "ModelDeployment"


@dataclass(frozen=True)
class RolledBack:
    version: str
    message: str  # the CanaryHealthy message that says why


# (namespace, name, uid) -> the canary this process rolled back. The index may still hold the status from
# before the rollback when the next reconcile runs; this keeps that reconcile from bringing the canary back
# (or from replacing the message that says why with a vaguer one).
Rollbacks = MutableMapping[tuple[str, str, str], RolledBack]


@dataclass(frozen=True)
class ModelConfig:
    images: Images
    model_store_claim: str | None = None
    retry_delay: float = 10.0
    trainer_secret: str = "dtwin-trainer"
    scorer_image: str = SCORER_IMAGE


def status_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `current` into `desired`, {} if nothing changes.

    None means "absent" on both sides; a nested map's keys that `desired` no longer has are deleted (merge
    patch null), so `calls.canaryMeanScore` goes when there is no canary.
    """
    patch: dict[str, Any] = {}
    for k, v in desired.items():
        if isinstance(v, dict):
            v = {kk: vv for kk, vv in v.items() if vv is not None}
            prior = current.get(k)
            before: dict[str, Any] = prior if isinstance(prior, dict) else {}
            if before != v:
                patch[k] = {**{kk: None for kk in before if kk not in v}, **v}
        elif current.get(k) != v:
            patch[k] = v
    return patch


async def apply_children(
    kube: Kube, me: Obj, manifests: list[dict[str, Any]], canary: bool, energy: bool = False
) -> Cond:
    owner = owner_reference(KIND, me.name, me.uid)
    for manifest in manifests:
        what = f"{manifest['kind']} {manifest['metadata']['name']}"
        try:
            applied = await asyncio.to_thread(kube.apply, manifest, owner)
        except Exception as e:
            kopf.warn(ref(KIND, me), reason="ApplyFailed", message=f"applying {what}: {e}")
            return Cond("ChildrenApplied", False, "ApplyFailed", f"applying {what} failed: {str(e)[:300]}; retrying.")
        metrics.APPLIED.labels(kind=applied.kind, action=applied.action).inc()
        if applied.action != "unchanged":
            kopf.info(ref(KIND, me), reason=applied.action.capitalize(), message=f"{applied.action} {what}")
    tracks = "stable and canary" if canary else "stable"
    cronjobs = "retraining and recommendations CronJobs" if energy else "retraining CronJob"
    return Cond(
        "ChildrenApplied",
        True,
        "Applied",
        f"serving Deployment, Service and HorizontalPodAutoscaler ({tracks}), routing ConfigMap, {cronjobs} and "
        "scorer applied",
    )


async def prune(kube: Kube, me: Obj, manifests: list[dict[str, Any]]) -> None:
    """Delete the children this reconcile no longer renders (the canary trio after a rollback, the
    recommendations CronJob of a model whose task is no longer energy)."""
    keep = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    selector = f"{labels.MODEL}={me.name},{labels.MANAGED_BY}={labels.OPERATOR}"
    gone = await asyncio.to_thread(kube.prune, me.namespace, selector, me.uid, keep, PRUNABLE)
    for kind, name in gone:
        kopf.info(ref(KIND, me), reason="Deleted", message=f"deleted {kind} {name}")


def _sites(spec: ModelDeploymentSpec, chosen: list[Obj]) -> tuple[str, ...]:
    found = {str(a.spec.get("siteRef")) for a in chosen if a.spec.get("siteRef")}
    return tuple(sorted(found | ({spec.selector.site} if spec.selector.site else set())))


def _timezones(idx: Indexes, namespace: str, sites: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    found = ((s, one(idx["sites"], (namespace, s))) for s in sites)
    return tuple((s, str((o.spec.get("location") or {}).get("timezone") or "UTC")) for s, o in found if o)


async def tidy_leases(kube: Kube, me: Obj, spec: ModelDeploymentSpec, leases: list[dict[str, Any]]) -> None:
    """Make the ModelDeployment an owner of its callers' Leases, so they go with it, and delete the Leases that
    report only versions it no longer serves (a replaced scorer pod's, once the model moved on). Best effort: a
    failure is logged and the next reconcile tries again; the verdict does not depend on it."""
    versions = {spec.model.version, *([spec.canary.version] if spec.canary else [])}
    owner = {**owner_reference(KIND, me.name, me.uid), "controller": False, "blockOwnerDeletion": False}
    for meta in leases:
        name, owners = meta["name"], meta.get("ownerReferences") or []
        try:
            if model_calls.outdated(meta.get("annotations"), versions):
                if await asyncio.to_thread(kube.delete_lease, me.namespace, name):
                    log.info("deleted calls Lease %s/%s: it reports no version %s serves", me.namespace, name, me.name)
            elif not any(o.get("uid") == me.uid for o in owners):
                await asyncio.to_thread(kube.add_owner, me.namespace, name, [*owners, owner])
        except ApiException as err:
            log.warning("calls Lease %s/%s not tidied: %s", me.namespace, name, err.reason)


async def judge_canary(
    kube: Kube, me: Obj, spec: ModelDeploymentSpec, rollbacks: Rollbacks
) -> tuple[serving.CanaryPlan, dict[str, CallStats]]:
    """The canary plan from the callers' Leases, and the call totals per version it was made from."""
    leases = await asyncio.to_thread(kube.leases, me.namespace, model_calls.selector(me.name))
    await tidy_leases(kube, me, spec, leases)
    totals = model_calls.aggregate(s for m in leases for s in model_calls.decode(m.get("annotations")))
    key = (me.namespace, me.name, me.uid)
    remembered = rollbacks.get(key)
    rolled: str | None
    if remembered is not None:
        rolled, message = remembered.version, remembered.message
    else:
        before = condition(me.status, "CanaryHealthy") or {}
        rolled = me.status.get("rolledBackVersion")
        message = str(before.get("message") or "") if before.get("reason") == "RolledBack" else ""
    plan = serving.plan(spec, rolled, totals, message)
    if plan.rolled_back_version:
        rollbacks[key] = RolledBack(plan.rolled_back_version, plan.condition.message)
    else:
        rollbacks.pop(key, None)
    return plan, totals


async def reconcile_model(
    kube: Kube, idx: Indexes, namespace: str, name: str, cfg: ModelConfig, rollbacks: Rollbacks
) -> None:
    me = next((m for m in many(idx["models_by_namespace"], namespace) if m.name == name), None)
    if me is None or me.deleting:
        return  # its children go by garbage collection (ownerReferences)
    spec = ModelDeploymentSpec.model_validate(me.spec)
    with metrics.RECONCILE_SECONDS.labels(kind=KIND).time():
        chosen = resolve.selected(spec.selector, many(idx["assets_by_namespace"], namespace))
        refs = [resolve.selection(len(chosen))]
        if spec.selector.site and one(idx["sites"], (namespace, spec.selector.site)) is None:
            refs.insert(0, resolve.site_missing(namespace, spec.selector.site))
        plan, totals = await judge_canary(kube, me, spec, rollbacks)
        sites = _sites(spec, chosen)
        ctx = ModelContext(
            namespace=namespace,
            name=name,
            spec=spec,
            assets=tuple(f"{a.namespace}/{a.name}" for a in chosen),
            sites=sites,
            timezones=_timezones(idx, namespace, sites),
            canary=plan.render,
            images=cfg.images,
            model_store_claim=cfg.model_store_claim,
            trainer_secret=cfg.trainer_secret,
        )
        manifests = model_children(ctx, cfg.scorer_image)
        applied = await apply_children(kube, me, manifests, plan.render, spec.task == "energy")
        if applied.ok:
            await prune(kube, me, manifests)
        if plan.rollback and spec.canary is not None:
            message = f"canary {spec.canary.version} rolled back: {plan.rollback}"
            kopf.warn(ref(KIND, me), reason="CanaryRolledBack", message=message)
        stable = await asyncio.to_thread(kube.deployment_state, namespace, names.model(name))
        canary = (
            await asyncio.to_thread(kube.deployment_state, namespace, names.model(name, True)) if plan.render else None
        )
        parts = [*refs, applied, serving.serving_available(names.model(name), stable, spec.model.version)]
        fields = {
            "selectedAssets": len(chosen),
            "activeVersion": serving.active_version(stable, me.status.get("activeVersion")),
            "canaryVersion": spec.canary.version if plan.render and spec.canary else None,
            "canaryState": plan.state,
            "rolledBackVersion": plan.rolled_back_version,
            "endpoint": names.model_url(namespace, name),
            "readyReplicas": serving.ready_replicas(stable),
            "canaryReadyReplicas": serving.ready_replicas(canary),
            "calls": serving.calls_status(spec, totals),
        }
        # CanaryHealthy stays out of Ready: a rolled-back canary leaves the stable version serving.
        desired = compose(me.status, [*parts, plan.condition], me.generation, now(), fields, ready=ready_of(parts))
        if patch := status_patch(me.status, desired):
            await asyncio.to_thread(kube.patch_status, "modeldeployments", namespace, name, patch)
    metrics.RECONCILES.labels(kind=KIND, result="ok" if all(p.ok for p in parts) else "degraded").inc()
    if failing := [p for p in [*refs, applied] if not p.ok]:
        raise kopf.TemporaryError(failing[0].message, delay=cfg.retry_delay)
