"""Committed readings as live events: what the API's WebSocket relays to the portal.

After each commit the bridge publishes the batch's readings on `<prefix>/events/telemetry` (QoS 0: a live
view may miss a frame, the database has every reading), in chunks of at most `CHUNK` readings, each with
the asset, metric and canonical unit the API filters and labels by:

    {"site": "hq", "readings": [{"sensor": "...", "asset": "ahu-1", "metric": "supply_air_temp",
                                 "unit": "degC", "ts": "2026-12-03T10:00:00+00:00", "value": 12.9}, ...]}

Only stored readings are published, so a client never sees a value the database does not have.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence

from dtwin_bridge.model import Reading, Route
from dtwin_core.units import canonical

CHUNK = 1000


def topic(prefix: str) -> str:
    return f"{prefix}/events/telemetry"


def payloads(site: str, readings: Sequence[Reading], routes: Mapping[str, Route]) -> Iterator[bytes]:
    """The JSON event payloads for `readings` (of routed sensors), CHUNK readings each."""
    rows = []
    for r in readings:
        route = routes.get(r.sensor)
        if route is not None:
            rows.append({"sensor": r.sensor, "asset": route.asset, "metric": route.metric,
                         "unit": canonical(route.unit), "ts": r.ts.isoformat(), "value": r.value})  # fmt: skip
    for i in range(0, len(rows), CHUNK):
        yield json.dumps({"site": site, "readings": rows[i : i + CHUNK]}, separators=(",", ":")).encode()
