"""The bridge's routing and validation table for one site, built from its SensorBindings.

The table is what a bridge replica loads (and hot-reloads) from its ConfigMap:
which topics to subscribe to, and for each (topic, field) which sensor it is,
how to parse and validate it, and which thresholds apply. Its hash goes on the
bridge's pod template, so a change rolls the StatefulSet.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dtwin_operator import names
from dtwin_operator.render.context import BindingView, SiteContext

SCHEMA_VERSION = 1


def route(binding: BindingView) -> dict[str, Any]:
    """One binding as the bridge sees it."""
    s = binding.spec
    entry: dict[str, Any] = {
        "sensor": binding.name,
        "asset": s.asset_ref,
        "metric": s.metric,
        "topic": s.topic,
        "format": s.payload_format,
        "field": s.field or s.metric,
        "unit": s.unit,
        "expectedIntervalSeconds": s.expected_interval_seconds,
        "thresholds": s.thresholds.wire(),
    }
    if s.valid_range is not None:
        entry["validRange"] = s.valid_range.wire()
    return entry


def subscriptions(ctx: SiteContext) -> list[str]:
    """Topic filters: the site prefix, plus any binding topic that lives outside it."""
    prefix = names.topic_prefix(ctx.name, ctx.spec.mqtt.topic_prefix)
    outside = sorted({b.spec.topic for b in ctx.bindings if not b.spec.topic.startswith(prefix + "/")})
    return [f"{prefix}/#", *outside]


def subscription_mode(ctx: SiteContext) -> str:
    """`shared` ($share group, replicas split the load) unless the Site runs at most one replica: `exclusive`.

    Why not always shared: Mosquitto 2.0 does not restore `$share` subscriptions from its persistence file, so
    after a broker restart it answers publishers "no matching subscribers" and drops their messages until a
    bridge has subscribed again. A plain subscription of a persistent session is restored and queued for, so a
    one-replica Site loses nothing across a broker restart.
    """
    return "exclusive" if ctx.spec.bridge.max_replicas == 1 else "shared"


def conflicts(ctx: SiteContext) -> dict[str, str]:
    """Bindings that claim a (topic, field) another binding of the site already has: name -> winner.

    The first binding by name keeps the source; the others are left out of the table and told why.
    """
    owner: dict[tuple[str, str], str] = {}
    losers: dict[str, str] = {}
    for b in ctx.bindings:
        key = (b.spec.topic, b.spec.field or b.spec.metric)
        if key in owner:
            losers[b.name] = owner[key]
        else:
            owner[key] = b.name
    return losers


def table(ctx: SiteContext) -> dict[str, Any]:
    """The whole routing table, deterministic for a given context."""
    skipped = conflicts(ctx)
    return {
        "version": SCHEMA_VERSION,
        "site": ctx.name,
        "namespace": ctx.namespace,
        "schema": names.schema(ctx.name),
        "database": ctx.spec.storage.database,
        "broker": ctx.spec.mqtt.wire(),
        "sharedGroup": names.shared_group(ctx.namespace, ctx.name),
        "subscriptionMode": subscription_mode(ctx),
        "subscriptions": subscriptions(ctx),
        "batch": {"size": ctx.spec.bridge.batch_size, "flushIntervalMs": ctx.spec.bridge.flush_interval_ms},
        "routes": [route(b) for b in ctx.bindings if b.name not in skipped],
    }


def serialize(tbl: dict[str, Any]) -> str:
    return json.dumps(tbl, sort_keys=True, indent=1)


def config_hash(serialized: str) -> str:
    return hashlib.sha256(serialized.encode()).hexdigest()[:16]
