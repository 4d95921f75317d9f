"""History from a site's database schema: the last `days` of `telemetry`, bucketed to 10 minutes in SQL.

The site schema (libs/dtwin_core schema_sql) keeps raw readings in `telemetry (sensor, ts, value)` and the registry
in `sensors (name, asset, metric, ...)`; the rollups are 1 min / 1 h / 1 d, none of them 10 min, so the buckets are
computed from raw rows with `date_bin` (PostgreSQL 14+), with mean, min, max and count as the simulator history
and the CSV source give them. The rows then go through `csvsource.grid_from_buckets`.

Several schemas (one per Site of a ModelDeployment's selection) are read over one connection and their assets
merged. Asset names are unique within a Kubernetes namespace, so a name found in two schemas is one Asset whose
history is split between sites (moved, or a stale leftover); rather than silently splicing two histories or
letting one schema win, every copy is kept apart as `<asset>@<schema>` (so its key is
`<namespace>/<asset>@<schema>`) and `collisions` names them for a warning.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pandas as pd

from dtwin_trainer.csvsource import grid_from_buckets


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def query(schema: str) -> str:
    s = _ident(schema)
    return f"""SELECT s.asset, s.metric,
       date_bin('10 minutes', t.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       avg(t.value) AS mean, min(t.value) AS min, max(t.value) AS max, count(*) AS count
FROM {s}."telemetry" t JOIN {s}."sensors" s ON s.name = t.sensor
WHERE t.ts >= $1 AND t.ts < $2
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3"""


async def fetch(dsn: str, schemas: Sequence[str], start: pd.Timestamp, end: pd.Timestamp) -> dict[str, list[Any]]:
    """schema -> its bucketed rows."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return {s: list(await conn.fetch(query(s), start.to_pydatetime(), end.to_pydatetime())) for s in schemas}
    finally:
        await conn.close()


def _schemas(schema: str | Sequence[str]) -> list[str]:
    out = [schema] if isinstance(schema, str) else list(dict.fromkeys(schema))
    if not out or not all(out):
        raise ValueError("no schema given")
    return out


def collisions(per_schema: dict[str, list[Any]]) -> set[str]:
    """Asset names present in more than one schema."""
    seen: dict[str, int] = {}
    for rows in per_schema.values():
        for a in {str(r["asset"]) for r in rows}:
            seen[a] = seen.get(a, 0) + 1
    return {a for a, n in seen.items() if n > 1}


def read_db(
    dsn: str, schema: str | Sequence[str], days: int, end: pd.Timestamp | None = None
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """asset -> (10-min grid, stats) of the `days` before `end` (default: now), over one or several schemas."""
    schemas = _schemas(schema)
    end = pd.Timestamp.now(tz="UTC") if end is None else pd.Timestamp(end)
    start = end - pd.Timedelta(days=days)
    per_schema = asyncio.run(fetch(dsn, schemas, start, end))
    twice = collisions(per_schema)
    records = []
    for s, rows in per_schema.items():
        for r in rows:
            rec = dict(r)
            if rec["asset"] in twice:
                rec["asset"] = f"{rec['asset']}@{s}"
            records.append(rec)
    if not records:
        raise ValueError(f"no telemetry in schema(s) {', '.join(schemas)} between {start} and {end}")
    frame = pd.DataFrame(records)
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    return grid_from_buckets(frame)
