"""Watches the objects the operator owns, so deleting or hand-editing one is repaired at once.

The drift timer would repair it too, within its interval; this makes it
immediate and also carries the bridge StatefulSet's readiness into Site status.
"""

from __future__ import annotations

from typing import Any

import kopf

from dtwin_operator import labels, runtime
from dtwin_operator.indexes import gather, one
from dtwin_operator.settings import OperatorSettings

OWNED = (
    ("apps", "v1", "statefulsets"),
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
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
