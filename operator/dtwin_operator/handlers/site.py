"""Site handlers: every trigger runs the one level-based Site reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from dtwin_operator import runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import gather
from dtwin_operator.settings import OperatorSettings

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
        """Deletion (or its start) re-runs the reconcile, which then marks the Site's Assets as orphaned."""
        if event.get("type") == "DELETED" or kw["meta"].get("deletionTimestamp"):
            await runtime.of(memo).site(gather(kw), namespace, name)
