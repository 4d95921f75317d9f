"""Watches the objects the operator owns, so deleting or hand-editing one is repaired at once.

The drift timers would repair it too, within their interval; this makes it
immediate and also carries the bridge StatefulSet's and the model Deployments'
readiness into Site and ModelDeployment status.
"""

from __future__ import annotations

import contextlib
from typing import Any

import kopf

from dtwin_operator import labels, runtime
from dtwin_operator.indexes import gather, many, one
from dtwin_operator.settings import OperatorSettings

OWNED = (
    ("apps", "v1", "statefulsets"),
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
)
# What a ModelDeployment renders (render.model); labelled dtwin.io/model, never dtwin.io/site.
MODEL_OWNED = (
    ("apps", "v1", "deployments"),
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("batch", "v1", "cronjobs"),
)


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    for group, version, plural in OWNED:

        @kopf.on.event(
            group,
            version,
            plural,
            id=f"owned-{plural}",
            registry=registry,
            labels={labels.MANAGED_BY: labels.OPERATOR, labels.SITE: kopf.PRESENT},
        )
        async def owned(namespace: str, meta: kopf.Meta, memo: kopf.Memo, **kw: Any) -> None:
            idx, site = gather(kw), meta.labels[labels.SITE]
            if one(idx["sites"], (namespace, site)) is not None:
                await runtime.of(memo).site(idx, namespace, site)

    for group, version, plural in MODEL_OWNED:

        @kopf.on.event(
            group,
            version,
            plural,
            id=f"model-owned-{plural}",
            registry=registry,
            labels={labels.MANAGED_BY: labels.OPERATOR, labels.MODEL: kopf.PRESENT},
        )
        async def model_owned(namespace: str, meta: kopf.Meta, memo: kopf.Memo, **kw: Any) -> None:
            idx, model = gather(kw), meta.labels[labels.MODEL]
            if any(m.name == model for m in many(idx["models_by_namespace"], namespace)):
                # The condition already says what is missing; the ModelDeployment's own handler retries.
                with contextlib.suppress(kopf.TemporaryError):
                    await runtime.of(memo).model(idx, namespace, model)
