"""Serving windows from the database's 10-minute buckets: the same grid the trainer learned on.

The rows are what `dtwin_trainer.dbsource.query` returns (asset, metric, bucket, mean, min, max, count), so
training and scoring bucket raw telemetry identically; `grid_from_buckets` turns them into per-asset frames as the
trainer does. A window ends at the last *complete* bucket: the bucket still filling would score a partial mean.
Its grid is fixed (`steps` buckets ending there), whatever the data: a bucket without readings is null, never
left out (see `dtwin_ml.window`). An asset without a reading in the window's last `fresh_steps` buckets (an
hour by default) gets no window: its model would score the gap fill of a silent asset, and an offline asset is
the bridge's staleness rules' business; it is scored again once readings come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from dtwin_ml.window import STEP, from_frames
from dtwin_trainer.csvsource import grid_from_buckets
from dtwin_trainer.dbsource import query as bucket_query


def window_end(now: datetime | pd.Timestamp) -> pd.Timestamp:
    """Start of the bucket still filling at `now` = exclusive end of the last complete one (naive `now` is UTC)."""
    t = pd.Timestamp(now)
    return (t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")).floor(STEP)


def span(end: pd.Timestamp, steps: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of `steps` whole buckets."""
    return end - steps * STEP, end


def query(schema: str) -> str:
    """The trainer's bucketing query, restricted to some assets ($3): the grouping column filter is pushed down."""
    return f"SELECT * FROM ({bucket_query(schema)}) b WHERE b.asset = ANY($3::text[])"


def build(
    rows: Iterable[Mapping[str, Any]], assets: Mapping[str, str], end: pd.Timestamp, steps: int, fresh_steps: int = 6
) -> list[Any]:
    """Windows (oldest bucket first) of the assets in `assets` (plain name -> `<namespace>/<asset>`), sorted."""
    frame = pd.DataFrame([dict(r) for r in rows])
    if frame.empty:
        return []
    frame["bucket"] = pd.to_datetime(frame["bucket"], utc=True)
    start, _ = span(end, steps)
    index = pd.date_range(start, periods=steps, freq=STEP)
    frame = frame[(frame["bucket"] >= start) & (frame["bucket"] < end)]
    out = []
    for asset, (grid, stats) in grid_from_buckets(frame).items():
        key = assets.get(asset)
        if key is None:
            continue
        grid, stats = grid.reindex(index), stats.reindex(index)
        if grid.iloc[-fresh_steps:].isna().all(axis=None):
            continue
        counts = [c for c in stats.columns if c.endswith(":count")]
        stats[counts] = stats[counts].fillna(0.0)
        out.append(from_frames(key, grid, stats))
    return out
