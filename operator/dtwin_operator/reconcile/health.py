"""The health refresh of one Site: its database's facts in, the health keys of its Assets' and bindings' status out.

Run by the Site's `health` timer. One read of the site schema (`db/telemetry_facts.py`), the pure judgement
(`dtwin_operator.health`), then a merge patch of the status subresource of each Asset and SensorBinding whose
summary changed, with only the health keys: the Site reconcile owns the conditions, `observedGeneration`,
`site` and `sensors`, and since a merge patch leaves other keys alone neither writer undoes the other. The
timer's interval is the rate bound: at most one health patch per object per interval, none when unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from dtwin_core.streamclock import StreamClock
from dtwin_operator import health, metrics, names
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.db import telemetry_facts
from dtwin_operator.db.storage import Storage
from dtwin_operator.indexes import Indexes, Obj, many, one
from dtwin_operator.k8s.client import Kube
from dtwin_operator.status import changed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refreshed:
    assets: int  # status patches written
    bindings: int


def _bindings(objs: Iterable[Obj]) -> list[health.Binding]:
    out = []
    for b in objs:
        spec = SensorBindingSpec.model_validate(b.spec)
        out.append(health.Binding(b.name, spec.asset_ref, spec.topic, spec.expected_interval_seconds))
    return out


async def _read(
    storage: Storage, database: str, schema: str, bindings: list[health.Binding], now: datetime
) -> telemetry_facts.SiteRows:
    # Storage keeps one pool per database for the Site reconcile; health shares it rather than opening more
    # connections. (Storage has no public accessor for it yet.)
    pool = await storage.pool(database)
    async with pool.acquire() as conn:
        return await telemetry_facts.read(
            conn, schema, [b.name for b in bindings], sorted({b.topic for b in bindings}), now
        )


async def _patch(kube: Kube, plural: str, objs: Iterable[Obj], desired: dict[str, dict[str, Any]]) -> int:
    patched = 0
    for o in objs:
        want = desired.get(o.name)
        if want is None or not changed(o.status, want):
            continue
        if await asyncio.to_thread(kube.patch_status, plural, o.namespace, o.name, want):
            patched += 1
            metrics.HEALTH_PATCHES.labels(kind=plural).inc()
    return patched


async def refresh_site_health(
    kube: Kube,
    storage: Storage | None,
    idx: Indexes,
    namespace: str,
    name: str,
    now: datetime,
    clock: StreamClock | None = None,
) -> Refreshed | None:
    """Refresh the health summary of the Site's Assets and SensorBindings; None when there is nothing to read
    (no database configured, the Site going away, or its schema not created yet). Silence is judged at the
    Site's stream time (`clock`, kept by the caller across refreshes; see `dtwin_core.streamclock`)."""
    site = one(idx["sites"], (namespace, name))
    if storage is None or site is None or site.deleting:
        metrics.HEALTH_REFRESHES.labels(result="skipped").inc()
        return None
    assets = many(idx["assets_by_site"], (namespace, name))
    objs = [b for a in assets for b in many(idx["bindings_by_asset"], (namespace, a.name))]
    bindings = _bindings(objs)
    database = SiteSpec.model_validate(site.spec).storage.database
    try:
        rows = await _read(storage, database, names.schema(name), bindings, now)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        log.info("health of Site %s/%s: schema %s not created yet", namespace, name, names.schema(name))
        metrics.HEALTH_REFRESHES.labels(result="skipped").inc()
        return None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        log.warning("health of Site %s/%s: database %r: %s", namespace, name, database, e)
        metrics.HEALTH_REFRESHES.labels(result="error").inc()
        return None
    facts, own = health.gather(bindings, rows.readings, rows.alerts, rows.rejects)
    clock = clock or StreamClock()
    newest = [f.last_ts for f in facts.values() if f.last_ts is not None]
    if newest:
        clock.observe(max(newest), now)
    for_bindings, for_assets = health.site_health(facts, own, [a.name for a in assets], clock.at(now))
    try:
        result = Refreshed(
            await _patch(kube, "assets", assets, for_assets),
            await _patch(kube, "sensorbindings", objs, for_bindings),
        )
    except Exception:
        metrics.HEALTH_REFRESHES.labels(result="error").inc()
        raise
    metrics.HEALTH_REFRESHES.labels(result="ok").inc()
    return result
