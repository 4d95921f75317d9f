"""History from files: a long CSV of readings to per-asset 10-minute grids, and an events CSV to ground truth.

Readings: `timestamp,asset,metric,value`, one reading per line, any order (ISO-8601 timestamps; without an offset
they are read as UTC). Each (asset, metric) is reduced to 10-minute buckets with mean, min, max and count, exactly
the frames and stats the simulator history gives (`history.History`), on one regular grid per asset from its first
to its last bucket; a bucket without readings is NaN. Events: `asset,start,end,kind`; a row of kind `failure` is a
degradation window ending in a failure at `end` (an empty `start` means "the 72 h before"), every other row a fault
window. Both become the simulator's truth records so the trainer treats them alike. `grid_from_long` is shared
with the database source, which returns the same long shape already bucketed.

A wide CSV (`timestamp,asset,<metric>,<metric>,...`: no `metric`/`value` columns) is melted to the long shape first.
Labels may also come as a column of the readings file (`label_column`): per row, 1/0, true/false, an event kind or
empty. Per asset, the labelled timestamps (a timestamp is labelled when any of its rows is) that follow each other
with the same kind form one event `[first labelled, first unlabelled after it)` (the asset's last timestamp plus its
median step when the run reaches the end), of kind `fault` for 1/true, otherwise the string itself; `failure` runs
are degradation windows ending in a failure at the run's end. These rows then go through the events file's own
reader (`events_truth`), so both give identical truth records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

STEP = "10min"
HORIZON = pd.Timedelta(hours=72)
REQUIRED = ("timestamp", "asset", "metric", "value")


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601")


def grid_from_buckets(rows: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Bucketed rows (`bucket, asset, metric, mean, min, max, count`) -> asset -> (grid frame, stats)."""
    out: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    for asset, part in rows.groupby("asset", sort=True):
        index = pd.date_range(part["bucket"].min(), part["bucket"].max(), freq=STEP)
        means, stats = {}, {}
        for metric, m in part.groupby("metric", sort=True):
            m = m.set_index("bucket").sort_index()
            means[str(metric)] = m["mean"].astype(float).reindex(index)
            for agg in ("min", "max", "count"):
                stats[f"{metric}:{agg}"] = m[agg].astype(float).reindex(index)
        stat_frame = pd.DataFrame(stats, index=index).sort_index(axis=1)
        for c in stat_frame.columns:
            if c.endswith(":count"):
                stat_frame[c] = stat_frame[c].fillna(0.0)
        out[str(asset)] = (pd.DataFrame(means, index=index).sort_index(axis=1), stat_frame)
    return out


def grid_from_long(long: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Readings (`timestamp, asset, metric, value`; tz-aware timestamps) -> asset -> (grid frame, stats)."""
    df = long.dropna(subset=["value"]).assign(bucket=lambda d: d["timestamp"].dt.floor(STEP))
    agg = df.groupby(["asset", "metric", "bucket"])["value"].agg(["mean", "min", "max", "count"]).reset_index()
    return grid_from_buckets(agg)


def _read(path: str | Path, label_column: str | None) -> pd.DataFrame:
    """The readings in the long shape (`timestamp, asset, metric, value` [+ the label column])."""
    df = pd.read_csv(path, dtype={"asset": str, "metric": str, **({label_column: str} if label_column else {})})
    if label_column and label_column not in df.columns:
        raise ValueError(f"{path}: no label column {label_column!r}")
    if "metric" not in df.columns and "value" not in df.columns and {"timestamp", "asset"} <= set(df.columns):
        keep = ["timestamp", "asset", *([label_column] if label_column else [])]
        df = df.melt(id_vars=keep, var_name="metric", value_name="value")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected {','.join(REQUIRED)}")
    df["timestamp"] = _utc(df["timestamp"])
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df


def read_long_csv(path: str | Path) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """asset -> (10-min grid of bucket means, stats `<metric>:min|max|count`) from a long (or wide) readings CSV."""
    return grid_from_long(_read(path, None))


def read_labelled_csv(path: str | Path, label_column: str) -> tuple[dict[str, tuple[pd.DataFrame, pd.DataFrame]], list]:
    """(grids as `read_long_csv`, truth records from `label_column`)."""
    df = _read(path, label_column)
    return grid_from_long(df), events_truth(label_events(df, label_column))


def _kind(value: object) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    if text.lower() in ("", "0", "0.0", "false", "nan", "none"):
        return ""
    return "fault" if text.lower() in ("1", "1.0", "true") else text


def label_events(rows: pd.DataFrame, label_column: str) -> pd.DataFrame:
    """`asset,start,end,kind` rows (as an events file) from the labelled runs of each asset's timestamps."""
    out = []
    for asset, part in rows.groupby("asset", sort=True):
        kinds = part.assign(k=part[label_column].map(_kind)).groupby("timestamp")["k"].max().sort_index()
        times = pd.DatetimeIndex(kinds.index)
        step = pd.Series(times).diff().median() if len(times) > 1 else pd.Timedelta(STEP)
        values = kinds.to_numpy()
        i = 0
        while i < len(values):
            if not values[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(values) and values[j + 1] == values[i]:
                j += 1
            end = times[j + 1] if j + 1 < len(times) else times[j] + step
            out.append({"asset": str(asset), "start": times[i].isoformat(), "end": end.isoformat(), "kind": values[i]})
            i = j + 1
    return pd.DataFrame(out, columns=["asset", "start", "end", "kind"])


def read_events_csv(path: str | Path) -> list[dict[str, Any]]:
    """Truth records (as `scenario.plan(...).truth`) from `asset,start,end,kind` rows."""
    return events_truth(pd.read_csv(path, dtype=str))


def events_truth(events: pd.DataFrame) -> list[dict[str, Any]]:
    """Truth records from an events table (`asset,start,end,kind`, strings; empty start: the 72 h before end)."""
    ev = events.astype(object).fillna("").astype(str)
    truth: list[dict[str, Any]] = []
    for i, r in enumerate(ev.itertuples(index=False)):
        end = pd.Timestamp(str(r.end)) if r.end else pd.Timestamp(str(r.start))
        end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
        if r.start:
            start = pd.Timestamp(str(r.start))
            start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
        else:
            start = end - HORIZON
        rid = f"csv-{i}"
        if str(r.kind) == "failure":
            if start >= end:
                start = end - HORIZON
            truth.append({"id": rid, "asset": r.asset, "kind": "degradation", "start": start, "end": end})
            truth.append({"id": f"{rid}/failure", "asset": r.asset, "kind": "failure", "start": end, "end": end})
        else:
            truth.append({"id": rid, "asset": r.asset, "kind": str(r.kind), "start": start, "end": end})
    return truth


def time_split(grids: dict[str, tuple[pd.DataFrame, pd.DataFrame]], holdout: float) -> pd.Timestamp:
    """The instant before which (1 - holdout) of the whole history lies, on the 10-min grid."""
    starts = [f.index[0] for f, _ in grids.values()]
    ends = [f.index[-1] for f, _ in grids.values()]
    if not starts:
        raise ValueError("the history is empty")
    lo, hi = min(starts), max(ends)
    return pd.Timestamp(lo + (hi - lo) * (1.0 - holdout)).floor(STEP)


def bucket_count(grids: dict[str, tuple[pd.DataFrame, pd.DataFrame]]) -> int:
    return int(np.sum([len(f) for f, _ in grids.values()]))
