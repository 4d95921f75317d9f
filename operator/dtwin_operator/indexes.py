"""Kopf indexes: the operator's in-memory view of every dtwin object, keyed for cross-references.

References (Asset → Site, SensorBinding → Asset, ModelDeployment → assets) are
resolved through these instead of API calls, so a reconcile reads a consistent
snapshot and a missing reference costs nothing to re-check. Kopf fills every
index before the first handler runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from dtwin_core import leases
from dtwin_operator.api.common import GROUP, VERSION


@dataclass(frozen=True)
class Obj:
    """What the operator keeps of one object."""

    namespace: str
    name: str
    uid: str
    generation: int
    spec: Mapping[str, Any]
    status: Mapping[str, Any] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    deleting: bool = False  # metadata.deletionTimestamp is set


def _obj(body: kopf.Body) -> Obj:
    meta = body.metadata
    return Obj(
        namespace=meta.namespace or "",
        name=meta.name or "",
        uid=meta.uid or "",
        generation=int(meta.get("generation") or 0),
        spec=copy.deepcopy(dict(body.spec)),
        status=copy.deepcopy(dict(body.status)),
        labels=dict(meta.labels),
        deleting=meta.deletion_timestamp is not None,
    )


# Index id -> (plural it watches, key of an object in it).
KEYS: dict[str, tuple[str, Callable[[Obj], Hashable]]] = {
    "sites": ("sites", lambda o: (o.namespace, o.name)),
    "assets": ("assets", lambda o: (o.namespace, o.name)),
    "assets_by_site": ("assets", lambda o: (o.namespace, o.spec.get("siteRef"))),
    "assets_by_namespace": ("assets", lambda o: o.namespace),
    "bindings_by_asset": ("sensorbindings", lambda o: (o.namespace, o.spec.get("assetRef"))),
    "models_by_namespace": ("modeldeployments", lambda o: o.namespace),
}


# Bridge heartbeat Leases (dtwin_core.leases.Heartbeat) by (namespace, site), for the Site's BridgeReady.
LEASES = "bridge_leases"

Indexes = Mapping[str, Mapping[Any, Iterable[Obj]]]


def gather(kwargs: Mapping[str, Any]) -> Indexes:
    """Kopf passes each index to handlers as a keyword argument named after its id; collect them."""
    return {k: kwargs[k] for k in (*KEYS, LEASES)}


def one(index: Mapping[Any, Iterable[Obj]], key: Any) -> Obj | None:
    """The single object under `key`, or None."""
    return next(iter(index.get(key, ())), None)


def many(index: Mapping[Any, Iterable[Obj]], key: Any) -> list[Obj]:
    """All objects under `key`, sorted by name for deterministic rendering."""
    return sorted(index.get(key, ()), key=lambda o: o.name)


def register(registry: kopf.OperatorRegistry) -> None:
    """Declare one Kopf index per entry of KEYS."""
    for index_id, (plural, key) in KEYS.items():

        def index(body: kopf.Body, key: Callable[[Obj], Hashable] = key, **_: Any) -> dict[Hashable, Obj]:
            o = _obj(body)
            return {key(o): o}

        kopf.index(GROUP, VERSION, plural, id=index_id, registry=registry)(index)

    def heartbeat(body: kopf.Body, **_: Any) -> dict[Hashable, leases.Heartbeat]:
        hb = leases.heartbeat_of(body)
        return {(hb.namespace, hb.site): hb} if hb else {}

    kopf.index(
        "coordination.k8s.io",
        "v1",
        "leases",
        id=LEASES,
        registry=registry,
        labels={leases.NAME_LABEL: leases.BRIDGE, leases.SITE_LABEL: kopf.PRESENT},
    )(heartbeat)
