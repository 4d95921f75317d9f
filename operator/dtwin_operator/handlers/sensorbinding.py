"""SensorBinding handlers: a binding is routed by its Asset's Site; until both exist it says which is missing."""

from __future__ import annotations

from typing import Any

import kopf

from dtwin_operator import resolve, runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import Indexes, Obj, gather, many, one
from dtwin_operator.reconcile.site import write_status
from dtwin_operator.settings import OperatorSettings
from dtwin_operator.status import Cond, compose, now

BINDINGS = (GROUP, VERSION, "sensorbindings")


def site_of(idx: Indexes, namespace: str, asset: str) -> tuple[str | None, Cond | None]:
    """The Site that routes a binding on `asset`, or the condition saying what is missing."""
    a = one(idx["assets"], (namespace, asset))
    if a is None:
        return None, resolve.asset_missing(namespace, asset)
    site = str(a.spec["siteRef"])
    if one(idx["sites"], (namespace, site)) is None:
        return None, resolve.site_missing(namespace, site)
    return site, None


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.resume(*BINDINGS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.create(*BINDINGS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.update(*BINDINGS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    async def reconcile(namespace: str, name: str, spec: kopf.Spec, memo: kopf.Memo, **kw: Any) -> None:
        rt, idx = runtime.of(memo), gather(kw)
        site, missing = site_of(idx, namespace, spec["assetRef"])
        if site is not None:
            await rt.site(idx, namespace, site)
            return
        me = _me(idx, namespace, spec["assetRef"], name)
        if me is not None and missing is not None:
            fields = {"site": None}
            await write_status(
                rt.kube, "sensorbindings", me, compose(me.status, [missing], me.generation, now(), fields)
            )
        raise kopf.TemporaryError(missing.message if missing else "waiting", delay=cfg.retry_delay)

    @kopf.on.event(*BINDINGS, id="gone", registry=registry)
    async def gone(event: dict[str, Any], namespace: str, spec: kopf.Spec, memo: kopf.Memo, **kw: Any) -> None:
        """A deleted binding leaves its Site's routing table."""
        if event.get("type") != "DELETED":
            return
        idx = gather(kw)
        site, _ = site_of(idx, namespace, spec.get("assetRef", ""))
        if site is not None:
            await runtime.of(memo).site(idx, namespace, site)


def _me(idx: Indexes, namespace: str, asset: str, name: str) -> Obj | None:
    return next((b for b in many(idx["bindings_by_asset"], (namespace, asset)) if b.name == name), None)
