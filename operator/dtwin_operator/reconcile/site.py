"""The level-based reconcile of one Site and everything resolved to it.

One run reads the indexes, renders the Site's children, server-side-applies
them under the Site's ownership, and writes the status of the Site, its Assets
and their SensorBindings — each only when it changed. Every trigger (Site,
Asset or SensorBinding change, an owned object drifting, the drift timer, an
operator restart) runs this same function, so whatever triggered it, the
cluster ends in the same state.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg
import kopf

from dtwin_operator import heartbeats, metrics, names, resolve
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.common import API_VERSION
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.db.storage import SchemaConflictError, Storage
from dtwin_operator.indexes import Indexes, Obj, many, one
from dtwin_operator.k8s.client import Kube, owner_reference
from dtwin_operator.render import routing
from dtwin_operator.render import storage as render_storage
from dtwin_operator.render.context import AssetView, BindingView, Images, SiteContext
from dtwin_operator.render.site import site_children
from dtwin_operator.status import Cond, compose, now, ready_of

log = logging.getLogger(__name__)


def ref(kind: str, o: Obj) -> Any:
    """A minimal body Kopf can post Events about (Kopf accepts any mapping with these keys)."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": o.name, "namespace": o.namespace, "uid": o.uid},
    }


def context(site: Obj, idx: Indexes, images: Images) -> tuple[SiteContext, list[Obj], list[Obj]]:
    """The render context plus the raw Asset and SensorBinding objects it was built from."""
    assets = many(idx["assets_by_site"], (site.namespace, site.name))
    bindings = [b for a in assets for b in many(idx["bindings_by_asset"], (site.namespace, a.name))]
    bindings.sort(key=lambda b: b.name)
    ctx = SiteContext(
        namespace=site.namespace,
        name=site.name,
        uid=site.uid,
        spec=SiteSpec.model_validate(site.spec),
        assets=tuple(AssetView(a.name, AssetSpec.model_validate(a.spec)) for a in assets),
        bindings=tuple(BindingView(b.name, SensorBindingSpec.model_validate(b.spec)) for b in bindings),
        images=images,
    )
    return ctx, assets, bindings


async def write_status(kube: Kube, plural: str, o: Obj, desired: dict[str, Any]) -> None:
    """Patch the status subresource only when something a reader sees would change."""
    if any(o.status.get(k) != v for k, v in desired.items()):
        await asyncio.to_thread(kube.patch_status, plural, o.namespace, o.name, desired)


async def apply_children(kube: Kube, site: Obj, ctx: SiteContext) -> list[Cond]:
    """Apply every rendered child; one condition saying whether all of them made it."""
    owner = owner_reference("Site", site.name, site.uid)
    for manifest in site_children(ctx):
        try:
            applied = await asyncio.to_thread(kube.apply, manifest, owner)
        except Exception as e:
            what = f"{manifest['kind']} {manifest['metadata']['name']}"
            kopf.warn(ref("Site", site), reason="ApplyFailed", message=f"applying {what}: {e}")
            return [
                Cond(
                    "ChildrenApplied",
                    False,
                    "ApplyFailed",
                    f"applying {what} failed: {str(e)[:300]}; the operator retries.",
                )
            ]
        metrics.APPLIED.labels(kind=applied.kind, action=applied.action).inc()
        if applied.action != "unchanged":
            kopf.info(
                ref("Site", site),
                reason=applied.action.capitalize(),
                message=f"{applied.action} {applied.kind} {applied.name}",
            )
    return [
        Cond(
            "ChildrenApplied",
            True,
            "Applied",
            "bridge ServiceAccount and Role, routing ConfigMap, bridge Service, StatefulSet, "
            "HorizontalPodAutoscaler and dashboard applied",
        )
    ]


async def reconcile_storage(storage: Storage | None, site: Obj, ctx: SiteContext) -> tuple[Cond, dict[str, Any] | None]:
    """Migrate the Site's schema and sync its registry; a condition either way, never an exception."""
    database = ctx.spec.storage.database
    if storage is None:
        return Cond(
            "StorageReady",
            False,
            "StorageNotConfigured",
            "the operator has no database (DTWIN_OPERATOR_DATABASE_URL); set it to manage site schemas",
        ), None
    spec = render_storage.storage_spec(ctx)
    try:
        state = await storage.reconcile(
            database, spec, site.namespace, site.name, render_storage.asset_rows(ctx), render_storage.sensor_rows(ctx)
        )
    except SchemaConflictError as e:
        return Cond(
            "StorageReady",
            False,
            "SchemaConflict",
            f"{e} in database {database!r}; set spec.storage.database to another database",
        ), None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        return Cond(
            "StorageReady", False, "DatabaseUnavailable", f"database {database!r}: {str(e)[:300]}; the operator retries"
        ), None
    if state.applied:
        kopf.info(
            ref("Site", site),
            reason="Migrated",
            message=f"applied schema migrations {list(state.applied)} to {state.schema} on {state.backend}",
        )
    fields = {"backend": state.backend, "database": database, "schemaName": state.schema, "version": state.version}
    return Cond(
        "StorageReady",
        True,
        "Migrated",
        f"schema {state.schema} v{state.version} on {state.backend} ({state.assets} assets, "
        f"{state.sensors} sensors in the registry)",
    ), fields


async def reconcile_site(
    kube: Kube, idx: Indexes, namespace: str, name: str, images: Images, storage: Storage | None = None
) -> None:
    site = one(idx["sites"], (namespace, name))
    if site is None or site.deleting:
        # Its children go by garbage collection (ownerReferences); its Assets and their
        # bindings now say the Site is missing, until a Site of that name appears again.
        await orphan(kube, idx, namespace, name)
        return
    with metrics.RECONCILE_SECONDS.labels(kind="Site").time():
        ctx, assets, bindings = context(site, idx, images)
        parts = await apply_children(kube, site, ctx)
        storage_cond, storage_fields = await reconcile_storage(storage, site, ctx)
        parts.append(storage_cond)
        sts = await asyncio.to_thread(kube.statefulset_state, namespace, names.bridge(name))
        parts.append(resolve.bridge_available(names.bridge(name), sts))
        bridge = (sts or {}).get("status") or {}
        # BridgeReady (live heartbeat Leases) is reported but stays out of Ready: see dtwin_operator.heartbeats.
        alive, live = heartbeats.bridge_ready(
            name, namespace, heartbeats.of_site(idx, namespace, name), datetime.now(UTC)
        )
        at = now()
        serialized = routing.serialize(routing.table(ctx))
        fields = {
            "assets": len(assets),
            "sensors": len(ctx.bindings),
            "bridge": {
                "replicas": bridge.get("replicas") or 0,
                "readyReplicas": bridge.get("readyReplicas") or 0,
                "liveReplicas": live,
            },
            "configHash": routing.config_hash(serialized),
            **({"storage": storage_fields} if storage_fields else {}),
        }
        status = compose(site.status, [*parts, alive], site.generation, at, fields, ready=ready_of(parts))
        await write_status(kube, "sites", site, status)
        await _write_assets(kube, idx, ctx, assets, at)
        await _write_bindings(kube, ctx, bindings, at)
    metrics.RECONCILES.labels(kind="Site", result="ok" if all(p.ok for p in parts) else "degraded").inc()


async def orphan(kube: Kube, idx: Indexes, namespace: str, site: str) -> None:
    """Statuses of everything that refers to a Site that is gone or going."""
    at, missing = now(), resolve.site_missing(namespace, site)
    for a in many(idx["assets_by_site"], (namespace, site)):
        await write_status(kube, "assets", a, compose(a.status, [missing], a.generation, at, {"site": None}))
        for b in many(idx["bindings_by_asset"], (namespace, a.name)):
            await write_status(
                kube, "sensorbindings", b, compose(b.status, [missing], b.generation, at, {"site": None})
            )


async def _write_assets(kube: Kube, idx: Indexes, ctx: SiteContext, assets: list[Obj], at: str) -> None:
    site_ok = Cond("SiteResolved", True, "SiteFound", f"placed at Site {ctx.name}")
    for a, view in zip(assets, ctx.assets, strict=True):
        parts = [site_ok, resolve.placement(view.spec, ctx.name, ctx.spec)]
        fields = {"site": ctx.name, "sensors": len(ctx.bindings_of(a.name))}
        await write_status(kube, "assets", a, compose(a.status, parts, a.generation, at, fields))


async def _write_bindings(kube: Kube, ctx: SiteContext, bindings: list[Obj], at: str) -> None:
    losers = routing.conflicts(ctx)
    for b, view in zip(bindings, ctx.bindings, strict=True):
        asset_ok = Cond("AssetResolved", True, "AssetFound", f"asset {view.spec.asset_ref} at Site {ctx.name}")
        if b.name in losers:
            routed = Cond(
                "Routed",
                False,
                "DuplicateSource",
                f"topic {view.spec.topic!r} field {view.spec.field or view.spec.metric!r} is already "
                f"bound by SensorBinding {losers[b.name]!r}; change spec.topic or spec.field.",
            )
        else:
            routed = Cond(
                "Routed",
                True,
                "Routed",
                f"routed by {names.bridge(ctx.name)} ({view.spec.payload_format} on {view.spec.topic})",
            )
        fields = {"site": ctx.name}
        await write_status(kube, "sensorbindings", b, compose(b.status, [asset_ok, routed], b.generation, at, fields))
