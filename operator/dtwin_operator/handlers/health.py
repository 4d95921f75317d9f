"""The health timer: every DTWIN_OPERATOR_HEALTH_INTERVAL seconds per Site, refresh its objects' health status."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from dtwin_core.streamclock import StreamClock
from dtwin_operator import runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import gather
from dtwin_operator.reconcile.health import refresh_site_health
from dtwin_operator.settings import OperatorSettings

SITES = (GROUP, VERSION, "sites")


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    # Not sharp: the next run starts an interval after this one ends, so a slow database or API server
    # stretches the period instead of piling runs up; that interval bounds the patch rate per object.
    @kopf.timer(*SITES, id="health", registry=registry, interval=cfg.health_interval, backoff=cfg.error_backoff)
    async def refresh(namespace: str, name: str, memo: kopf.Memo, logger: logging.Logger, **kw: Any) -> None:
        rt = runtime.of(memo)
        clock = memo.setdefault("stream_clock", StreamClock())  # this Site's memo: kept across refreshes
        done = await refresh_site_health(rt.kube, rt.storage, gather(kw), namespace, name, datetime.now(UTC), clock)
        if done is not None and (done.assets or done.bindings):
            logger.debug("health: patched %d assets, %d bindings", done.assets, done.bindings)
