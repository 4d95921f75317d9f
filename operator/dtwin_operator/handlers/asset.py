"""Asset handlers: an Asset with a Site is reconciled as part of that Site; without one it says so and waits."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from dtwin_operator import resolve, runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import Obj, gather, one
from dtwin_operator.reconcile.site import write_status
from dtwin_operator.settings import OperatorSettings
from dtwin_operator.status import compose, now

ASSETS = (GROUP, VERSION, "assets")


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.resume(*ASSETS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.create(*ASSETS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.update(*ASSETS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    async def reconcile(
        namespace: str, name: str, spec: kopf.Spec, memo: kopf.Memo, logger: logging.Logger, **kw: Any
    ) -> None:
        rt, idx = runtime.of(memo), gather(kw)
        site = spec["siteRef"]
        if one(idx["sites"], (namespace, site)) is not None:
            await rt.site(idx, namespace, site)
            return
        me = one(idx["assets"], (namespace, name))
        if me is not None:
            await write_status(rt.kube, "assets", me, _orphan(me, namespace, site))
        raise kopf.TemporaryError(f"waiting for Site {site!r}", delay=cfg.retry_delay)

    @kopf.on.event(*ASSETS, id="gone", registry=registry)
    async def gone(event: dict[str, Any], namespace: str, spec: kopf.Spec, memo: kopf.Memo, **kw: Any) -> None:
        """A deleted Asset leaves its Site's routing table and counts."""
        idx = gather(kw)
        if event.get("type") == "DELETED" and one(idx["sites"], (namespace, spec.get("siteRef"))) is not None:
            await runtime.of(memo).site(idx, namespace, spec["siteRef"])


def _orphan(me: Obj, namespace: str, site: str) -> dict[str, Any]:
    return compose(me.status, [resolve.site_missing(namespace, site)], me.generation, now(), {"site": None})
