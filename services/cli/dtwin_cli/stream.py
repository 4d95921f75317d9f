"""Live scoring of a reading stream on the 10-minute grid: what `dtwin edge mqtt` does with each message. Pure.

Readings arrive one by one (asset, time, metric, value). Each asset's readings are kept in 10-minute buckets; when
a reading opens a newer bucket, the previous one is complete and is scored: the last `lookback` buckets become a
grid exactly as the trainer builds it (`grid_from_long`: mean, min, max and count per bucket, NaN for a bucket
without data) and the model's `predict_frame` scores its last row. Features are causal and the window holds the
model's lookback, so each score equals the one `dtwin edge score` (or `dtwin model score`) gives that row of the
whole history. A reading for a bucket already scored is late: counted and dropped (a score is never revised).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

import pandas as pd

from dtwin_cli.rows import parse_time
from dtwin_trainer.csvsource import grid_from_long

STEP = pd.Timedelta(minutes=10)
RESERVED = ("asset", "ts", "timestamp", "time")


@dataclass(frozen=True)
class Score:
    asset: str
    timestamp: str
    value: float
    alert: bool


@dataclass
class Stream:
    model: Any  # a bundle or an `onnx_export.EdgeModel`: predict_frame(key, frame, stats), score_key, threshold
    keys: Mapping[str, str]  # the stream's asset name -> the model's key
    late: int = 0
    unknown: set[str] = field(default_factory=set)
    _buckets: dict[str, dict[pd.Timestamp, list[tuple[str, float]]]] = field(default_factory=dict)

    def add(self, asset: str, ts: datetime, readings: Mapping[str, float]) -> list[Score]:
        """Take one message's readings; the score of the bucket it closed, if any."""
        key = self.keys.get(asset)
        if key is None:
            self.unknown.add(asset)
            return []
        bucket = pd.Timestamp(ts).tz_convert("UTC").floor(STEP)
        mine = self._buckets.setdefault(asset, {})
        current = max(mine) if mine else None
        if current is not None and bucket < current:
            self.late += 1
            return []
        mine.setdefault(bucket, []).extend(readings.items())
        if current is None or bucket == current:
            return []
        out = [self._score(asset, key, current)]
        keep = bucket - STEP * self.model.lookback_steps
        for b in [b for b in mine if b <= keep]:
            del mine[b]
        return out

    def _score(self, asset: str, key: str, closed: pd.Timestamp) -> Score:
        rows = [(b, asset, m, v) for b, got in self._buckets[asset].items() if b <= closed for m, v in got]
        long = pd.DataFrame(rows, columns=["timestamp", "asset", "metric", "value"])
        frame, stats = grid_from_long(long)[asset]
        row = self.model.predict_frame(key, frame, stats).iloc[-1]
        stamp = closed.strftime("%Y-%m-%dT%H:%M:%SZ")
        return Score(asset, stamp, float(row[self.model.score_key]), bool(row["alert"]))


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{name}."))
        else:
            out[name] = v
    return out


def wildcard_asset(pattern: str, topic: str) -> str | None:
    """The topic level matched by the first `+` of the subscription pattern."""
    levels = pattern.split("/")
    if "+" not in levels:
        return None
    at = levels.index("+")
    parts = topic.split("/")
    return parts[at] if at < len(parts) else None


def parse_message(
    payload: bytes | bytearray,
    topic: str,
    pattern: str,
    maps: Mapping[str, str],
    zone: tzinfo,
    now: datetime | None = None,
) -> tuple[str, datetime, dict[str, float]]:
    """(asset, time, metric -> value) of a JSON message: `asset` from the payload or the topic's `+` level,
    `ts`/`timestamp` (ISO 8601 or epoch; default: now), every other numeric field (nested keys joined by dots,
    renamed by `maps`) a reading. ValueError when it is not such a message."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    asset = body.get("asset") or wildcard_asset(pattern, topic)
    if not isinstance(asset, str) or not asset:
        raise ValueError('no asset: send "asset" or subscribe with a + level for it')
    stamp = next((body[k] for k in ("ts", "timestamp", "time") if k in body), None)
    ts = (now or datetime.now(UTC)) if stamp is None else parse_time(str(stamp), zone)
    values = {}
    for name, v in flatten({k: v for k, v in body.items() if k not in RESERVED}).items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            values[maps.get(name, name)] = float(v)
    if not values:
        raise ValueError("no numeric reading in the message")
    return asset, ts, values
