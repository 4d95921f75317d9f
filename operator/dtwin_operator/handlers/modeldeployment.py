"""ModelDeployment handlers: create, update, resume, the drift timer and the calls timer run one reconcile."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import kopf

from dtwin_operator import runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import gather
from dtwin_operator.settings import OperatorSettings

MODELS = (GROUP, VERSION, "modeldeployments")


def judging(spec: Mapping[str, Any], status: Mapping[str, Any], **_: Any) -> bool:
    """A canary is on and not rolled back: its callers' reports may roll it back at any moment."""
    canary = spec.get("canary") or {}
    return bool(canary) and status.get("rolledBackVersion") != canary.get("version")


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.resume(*MODELS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.create(*MODELS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    @kopf.on.update(*MODELS, id="reconcile", registry=registry, backoff=cfg.error_backoff)
    async def reconcile(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        await runtime.of(memo).model(gather(kw), namespace, name)

    # Asset selection changes when Assets come and go, and drifted children are repaired: the timer keeps both
    # level-based, and reads the callers' call statistics like every reconcile.
    @kopf.timer(*MODELS, id="drift", registry=registry, interval=cfg.drift_interval, initial_delay=cfg.drift_interval)
    async def drift(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        # A TemporaryError here only repeats what the condition already says; the next tick checks again.
        with contextlib.suppress(kopf.TemporaryError):
            await runtime.of(memo).model(gather(kw), namespace, name)

    # Callers report in Leases, which the operator does not watch (Kopf's Lease watch is narrowed to bridge
    # heartbeats at the API server, see handlers.lease): a canary under judgement is re-read this often.
    @kopf.timer(
        *MODELS,
        id="canary-calls",
        registry=registry,
        interval=cfg.calls_interval,
        initial_delay=cfg.calls_interval,
        when=judging,
    )
    async def calls(namespace: str, name: str, memo: kopf.Memo, **kw: Any) -> None:
        with contextlib.suppress(kopf.TemporaryError):
            await runtime.of(memo).model(gather(kw), namespace, name)
