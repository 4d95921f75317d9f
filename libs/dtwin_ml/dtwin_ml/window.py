"""The serving window: one asset's recent history as JSON, and its conversion to and from what `features` reads.

A window is what a scorer sends a bentoml service or what the CLI cuts from a CSV:

    {"asset": "<namespace>/<asset>", "timestamps": ["2026-01-05T00:00:00Z", ...],   # UTC, oldest first, 10 min
     "values": {metric: [float | null, ...]}, "min": {...}, "max": {...}, "count": {...}}

`min`, `max` and `count` are optional (the bucket extremes that give the spike and stuck features); `timezone` is
optional too (the asset's local zone for the energy calendar when the bundle never saw the asset). The timestamps
must form a regular grid of the bundle's step: a gap is a null value, not a missing timestamp, so every rolling
window counts steps exactly as the training history did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

STEP = pd.Timedelta(minutes=10)
STATS = ("min", "max", "count")


class WindowError(ValueError):
    """A window that cannot be scored as sent (bad timestamps, ragged lists, too short): the caller's mistake."""


def _floats(values: Sequence[Any], n: int, where: str) -> np.ndarray:
    if len(values) != n:
        raise WindowError(f"{where} has {len(values)} values for {n} timestamps")
    try:
        return np.asarray([np.nan if v is None else float(v) for v in values], dtype=float)
    except (TypeError, ValueError) as e:
        raise WindowError(f"{where} holds a value that is not a number ({e})") from e


def index_of(window: dict[str, Any], step: pd.Timedelta = STEP) -> pd.DatetimeIndex:
    try:
        index = pd.DatetimeIndex(pd.to_datetime(list(window["timestamps"]), utc=True))
    except (KeyError, ValueError, TypeError) as e:
        raise WindowError(f"window of {window.get('asset')!r}: timestamps must be ISO-8601 instants ({e})") from e
    if len(index) == 0:
        raise WindowError(f"window of {window.get('asset')!r} has no timestamps")
    if len(index) > 1 and not (np.diff(index.asi8) == step.value).all():
        raise WindowError(
            f"window of {window.get('asset')!r}: timestamps must be a regular {step} grid, oldest first "
            "(send null for a bucket without data rather than leaving it out)"
        )
    return index


def to_frames(window: dict[str, Any], step: pd.Timedelta = STEP) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(grid frame, stats or None): the `frame` and `stats` arguments of `dtwin_ml.features.build`."""
    asset = window.get("asset")
    if not isinstance(asset, str) or not asset:
        raise WindowError('a window needs "asset": "<namespace>/<asset>"')
    index = index_of(window, step)
    n = len(index)
    values = window.get("values") or {}
    if not isinstance(values, dict) or not values:
        raise WindowError(f"window of {asset!r} has no values")
    frame = pd.DataFrame({str(m): _floats(v, n, f"values[{m!r}]") for m, v in sorted(values.items())}, index=index)
    cols: dict[str, np.ndarray] = {}
    for part in STATS:
        for m, v in sorted((window.get(part) or {}).items()):
            cols[f"{m}:{part}"] = _floats(v, n, f"{part}[{m!r}]")
    stats = pd.DataFrame(cols, index=index).sort_index(axis=1) if cols else None
    return frame, stats


def _clean(x: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else float(v) for v in x.tolist()]


def from_frames(
    asset: str, frame: pd.DataFrame, stats: pd.DataFrame | None = None, timezone: str | None = None
) -> dict[str, Any]:
    """The window of a grid frame (and its stats): the inverse of `to_frames`; NaN becomes null."""
    index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
    out: dict[str, Any] = {
        "asset": asset,
        "timestamps": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in index],
        "values": {str(m): _clean(frame[m].to_numpy(dtype=float)) for m in frame.columns},
    }
    if stats is not None:
        for part in STATS:
            got = {
                str(c).rpartition(":")[0]: _clean(stats[c].to_numpy(dtype=float))
                for c in stats.columns
                if str(c).endswith(f":{part}")
            }
            if got:
                out[part] = got
    if timezone:
        out["timezone"] = timezone
    return out


def tail(
    asset: str, frame: pd.DataFrame, stats: pd.DataFrame | None, end: int, steps: int, timezone: str | None = None
) -> dict[str, Any]:
    """The window of `steps` rows ending at row `end` (inclusive) of a whole history: what a live scorer sends."""
    lo = max(0, end + 1 - steps)
    part = None if stats is None else stats.iloc[lo : end + 1]
    return from_frames(asset, frame.iloc[lo : end + 1], part, timezone)
