"""ModelDeployment handlers: create, update, resume and the drift timer run one reconcile."""

from __future__ import annotations

import contextlib
from typing import Any

import kopf

from dtwin_operator import runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import gather
from dtwin_operator.reconcile.modeldeployment import reconcile_model
from dtwin_operator.settings import OperatorSettings

MODELS = (GROUP, VERSION, "modeldeployments")


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.resume(*MODELS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.create(*MODELS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.update(*MODELS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    async def reconcile(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        await reconcile_model(runtime.of(memo).kube, gather(kw), namespace, name, cfg.retry_delay)

    # Asset selection changes when Assets come and go; the timer keeps the count level-based.
    @kopf.timer(*MODELS, id="drift", registry=registry, interval=cfg.drift_interval, initial_delay=cfg.drift_interval)
    async def drift(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        # A TemporaryError here only repeats what the condition already says; the next tick checks again.
        with contextlib.suppress(kopf.TemporaryError):
            await reconcile_model(runtime.of(memo).kube, gather(kw), namespace, name, cfg.retry_delay)
