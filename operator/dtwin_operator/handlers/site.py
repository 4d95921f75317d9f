"""Site handlers: every trigger runs the one level-based Site reconcile."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from dtwin_operator import resolve, runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import gather, many
from dtwin_operator.reconcile.site import write_status
from dtwin_operator.settings import OperatorSettings
from dtwin_operator.status import compose, now

SITES = (GROUP, VERSION, "sites")


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.resume(*SITES, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.create(*SITES, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.update(*SITES, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    async def reconcile(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        await runtime.of(memo).site(gather(kw), namespace, name)

    @kopf.timer(*SITES, id="drift", registry=registry, interval=cfg.drift_interval, initial_delay=cfg.drift_interval)
    async def drift(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        await runtime.of(memo).site(gather(kw), namespace, name)

    @kopf.on.event(*SITES, id="gone", registry=registry)
    async def gone(event: dict[str, Any], namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        """When a Site goes, its Assets say so (its own children go by garbage collection)."""
        if event.get("type") != "DELETED":
            return
        rt, idx, at = runtime.of(memo), gather(kw), now()
        missing = resolve.site_missing(namespace, name)
        await asyncio.gather(
            *(
                write_status(rt.kube, "assets", a, compose(a.status, [missing], a.generation, at, {"site": None}))
                for a in many(idx["assets_by_site"], (namespace, name))
            )
        )
