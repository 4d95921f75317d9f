"""Simulator history in-process: the demo fleet's stream, decoded exactly as the bridge does, as per-asset frames.

No broker and no database: `stream.messages` yields the bytes devices would publish, `dtwin_bridge.parse.parse`
with the routing table the operator renders (`dtwin_operator.render.routing.table`) turns them into readings in
canonical units (rejecting what the bridge rejects, e.g. a spike beyond the binding's validRange), and the
readings are reduced to fixed buckets per (asset, metric): mean, min, max and count. The result is what a query of
the site's history (a continuous aggregate) would return at that resolution, so the same frames could later come
from the database instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dtwin_bridge.model import Reading, Route, RoutingTable
from dtwin_bridge.parse import parse
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.render import routing
from dtwin_operator.render.context import AssetView, BindingView, SiteContext
from dtwin_simulator import fleet as simfleet
from dtwin_simulator import stream
from dtwin_simulator.faults import Fault

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@dataclass(frozen=True)
class Demo:
    """The fleet the simulator runs and the routing tables (one per site) the bridge would load for it."""

    fleet: simfleet.Fleet
    tables: Mapping[str, RoutingTable]  # site -> table

    @property
    def routes(self) -> dict[str, Route]:
        return {r.sensor: r for t in self.tables.values() for r in t.routes}


def _of(docs: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return sorted((d for d in docs if d.get("kind") == kind), key=lambda d: str(d["metadata"]["name"]))


def routing_tables(docs: list[dict[str, Any]]) -> dict[str, RoutingTable]:
    """routing.json of every Site in `docs`, rendered and serialized by the operator's own code, then loaded."""
    assets = [AssetView(d["metadata"]["name"], AssetSpec.model_validate(d["spec"])) for d in _of(docs, "Asset")]
    bindings = [
        BindingView(d["metadata"]["name"], SensorBindingSpec.model_validate(d["spec"]))
        for d in _of(docs, "SensorBinding")
    ]
    out = {}
    for site in _of(docs, "Site"):
        name = str(site["metadata"]["name"])
        mine = tuple(a for a in assets if a.spec.site_ref == name)
        names = {a.name for a in mine}
        bound = tuple(b for b in bindings if b.spec.asset_ref in names)
        ctx = SiteContext("dtwin-eval", name, "uid", SiteSpec.model_validate(site["spec"]), mine, bound)
        out[name] = RoutingTable.from_dict(json.loads(routing.serialize(routing.table(ctx))))
    return out


def load_demo(examples: Path = EXAMPLES, *, sample_s: int = 0) -> Demo:
    """The demo campus; `sample_s` > 0 makes every sensor report at most that often (same physics, less data)."""
    docs = simfleet.read_docs([examples])
    fleet = simfleet.build(docs)
    if sample_s > 0:
        slow = tuple(replace(s, interval_s=max(s.interval_s, sample_s)) for s in fleet.sensors)
        fleet = replace(fleet, sensors=slow)
    return Demo(fleet, routing_tables(docs))


@dataclass(frozen=True)
class History:
    """Per asset, the bucket means (`frames`) and each bucket's min, max and reading count (`stats`, columns
    `<metric>:min|max|count`): what a continuous aggregate of the site's telemetry would return. The means alone
    average an in-range spike away; the extremes keep it, and a zero min-max range over several readings is a
    stuck transmitter."""

    frames: dict[str, pd.DataFrame]
    stats: dict[str, pd.DataFrame]


def simulate(
    demo: Demo, faults: Iterable[Fault], *, seed: int, start_ms: int, end_ms: int, bucket_s: int = 600
) -> History:
    """Per asset, bucket means (index: bucket start, UTC; columns: metrics; NaN where nothing came) and extremes."""
    by_topic = {topic: t for t in demo.tables.values() for topic in t.topics}
    routes = demo.routes
    bucket_ms = bucket_s * 1000
    n = (end_ms - start_ms + bucket_ms - 1) // bucket_ms
    # Plain lists: indexing them per reading is several times faster than indexing numpy arrays.
    sums: dict[str, list[float]] = {s: [0.0] * n for s in routes}
    counts: dict[str, list[int]] = {s: [0] * n for s in routes}
    lows: dict[str, list[float]] = {s: [np.inf] * n for s in routes}
    highs: dict[str, list[float]] = {s: [-np.inf] * n for s in routes}
    for msg in stream.messages(demo.fleet, tuple(faults), seed=seed, start_ms=start_ms, end_ms=end_ms):
        table = by_topic.get(msg.topic)
        if table is None:
            continue
        # A device stamps its readings with the send time, so the message's time places them in their bucket.
        i = (msg.t_ms - start_ms) // bucket_ms
        for item in parse(msg.topic, msg.payload, table, datetime.fromtimestamp(msg.t_ms / 1000, UTC)):
            if isinstance(item, Reading):
                v = item.value
                sums[item.sensor][i] += v
                counts[item.sensor][i] += 1
                if v < lows[item.sensor][i]:
                    lows[item.sensor][i] = v
                if v > highs[item.sensor][i]:
                    highs[item.sensor][i] = v
    index = pd.date_range(pd.Timestamp(start_ms, unit="ms", tz="UTC"), periods=n, freq=f"{bucket_s}s")
    means: dict[str, dict[str, np.ndarray]] = {}
    extremes: dict[str, dict[str, np.ndarray]] = {}
    for sensor, route in routes.items():
        c = np.asarray(counts[sensor], dtype=float)
        if not c.any():
            continue
        seen = c > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            means.setdefault(route.asset, {})[route.metric] = np.where(seen, np.asarray(sums[sensor]) / c, np.nan)
        ext = extremes.setdefault(route.asset, {})
        ext[f"{route.metric}:min"] = np.where(seen, np.asarray(lows[sensor]), np.nan)
        ext[f"{route.metric}:max"] = np.where(seen, np.asarray(highs[sensor]), np.nan)
        ext[f"{route.metric}:count"] = c
    return History(
        {a: pd.DataFrame(cols, index=index).sort_index(axis=1) for a, cols in sorted(means.items())},
        {a: pd.DataFrame(cols, index=index).sort_index(axis=1) for a, cols in sorted(extremes.items())},
    )
