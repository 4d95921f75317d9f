"""One asset of one run, ready for the tasks: its grid, features, ground-truth windows and the train/test split.

The profile behind the residual features is fitted on the first half of the asset's normal training rows (after
a day of warm-up, outside every fault window and the day after it) and the models' normal statistics on the second
half, so residuals are judged out of sample; the test period never shapes a feature or a statistic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dtwin_core import units
from dtwin_ml import features
from dtwin_ml.events import Window
from dtwin_trainer.dataset import Run

WARMUP = pd.Timedelta(days=1)
AFTER = pd.Timedelta(days=1)  # rolling windows still remember a fault this long after it ends
GRACE = pd.Timedelta(hours=12)  # alerts starting this soon after a repair count neither way (see README)


@dataclass
class AssetData:
    run: Run
    asset: str
    frame: pd.DataFrame
    feats: pd.DataFrame
    faults: list[Window]  # every injected fault (the anomaly task's events)
    failures: list[tuple[Window, pd.Timestamp]]  # degradation window of each failing fault, and the failure time
    normal: np.ndarray  # training rows known to be normal, not used by the profile: where models learn "normal"
    extra: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # the asset's key in a trained bundle ("<namespace>/<asset>"); empty: "<seed>/<asset>"

    @property
    def key(self) -> str:
        return self.name or f"{self.run.config.seed}/{self.asset}"

    @property
    def index(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.frame.index)

    @property
    def split(self) -> pd.Timestamp:
        return self.run.config.split

    def train_rows(self) -> np.ndarray:
        return np.asarray((self.index >= self.index[0] + WARMUP) & (self.index < self.split))

    def test_rows(self) -> np.ndarray:
        return np.asarray(self.index >= self.split)

    def grace(self) -> list[Window]:
        return [Window(w.asset, w.end, w.end + GRACE, "grace", f"{w.id}/grace") for w in self.faults]

    def period(self, windows: list[Window], test: bool) -> list[Window]:
        return [w for w in windows if (w.start >= self.split) == test]


def _windows(truth: list[dict[str, Any]], asset: str) -> tuple[list[Window], list[tuple[Window, pd.Timestamp]]]:
    faults, failures = [], []
    by_id = {r["id"]: r for r in truth}
    for r in truth:
        if r["asset"] != asset:
            continue
        if r["kind"] == "failure":
            cause = by_id[r["id"].rsplit("/", 1)[0]]
            w = Window(asset, pd.Timestamp(cause["start"]), pd.Timestamp(r["start"]), cause["kind"], r["id"])
            failures.append((w, pd.Timestamp(r["start"])))
        else:
            faults.append(Window(asset, pd.Timestamp(r["start"]), pd.Timestamp(r["end"]), r["kind"], r["id"]))
    return faults, failures


def prepare(run: Run, asset: str, name: str = "") -> AssetData:
    frame = run.frames[asset]
    index = pd.DatetimeIndex(frame.index)
    faults, failures = _windows(run.truth, asset)
    normal = (index >= index[0] + WARMUP) & (index < run.config.split)
    for w in faults:
        normal &= ~((index >= w.start) & (index < w.end + AFTER))
    tz = run.timezones.get(asset, "UTC")
    rows = np.flatnonzero(normal)
    half = rows[: len(rows) // 2]
    stats = run.stats.get(asset)
    profile = features.Profile.fit(frame.iloc[half], tz, stats=None if stats is None else stats.iloc[half])
    feats = features.build(frame, features.FeatureConfig(timezone=tz), profile, stats)
    rest = np.zeros(len(index), dtype=bool)
    rest[rows[len(rows) // 2 :]] = True
    data = AssetData(run, asset, frame, feats, faults, failures, rest, name=name)
    data.extra["profile"] = profile  # kept for the serving bundle (dtwin_ml.bundle)
    return data


def static_flags(data: AssetData, level: str) -> np.ndarray:
    """The rules engine's view: a metric beyond its binding's `warning` or `critical` threshold for forSeconds."""
    flag = np.zeros(len(data.frame), dtype=bool)
    step_s = data.run.config.bucket_s
    for metric, (unit, th) in data.run.thresholds.get(data.asset, {}).items():
        if metric not in data.frame:
            continue
        hi, lo = (th.warning_high, th.warning_low) if level == "warning" else (th.critical_high, th.critical_low)
        x = data.frame[metric].to_numpy(dtype=float)
        over = np.zeros(len(x), dtype=bool)
        if hi is not None:
            over |= x > units.to_canonical(hi, unit)
        if lo is not None:
            over |= x < units.to_canonical(lo, unit)
        flag |= persist(over, max(1, -(-th.for_seconds // step_s)))
    return flag


def persist(flag: np.ndarray, k: int) -> np.ndarray:
    """True where the last `k` steps (this one included) were all True: a causal debounce."""
    if k <= 1:
        return np.asarray(flag, dtype=bool)
    s = pd.Series(np.asarray(flag, dtype=float)).rolling(k, min_periods=k).min()
    return np.asarray(s.fillna(0).to_numpy() > 0)
