"""Remaining useful life: how long until an asset (a unit) fails, regressed from its recent history.

Two kinds of history feed it. Run-to-failure units (a CSV like NASA C-MAPSS: a unit id, a time index in cycles or
hours since the unit was new, sensor columns; each unit fails at its last row) give per-unit causal rolling
features of the raw sensors (`unit_features`) plus the unit's age. Site histories with failure events (the
simulator, a long CSV with events, a database) give the failure task's asset-agnostic health inputs instead, since
a pump and a chiller share no sensor.

Targets (`targets`) are the time until the next failure, clipped at a cap: early in life a unit is healthy and
looks the same whether it has 300 or 150 cycles left, so nothing in the sensors can tell those apart and an
unclipped target only teaches the model noise (the piecewise-linear target of the C-MAPSS literature, 125
cycles). The cap also handles censoring: a row with no failure after it has an unknown RUL, but if the history
still runs on for at least the cap, its clipped RUL is known to be the cap; otherwise the row is left out (NaN).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

CAP_CYCLES = 125.0
CAP_HOURS = 168.0  # the simulator's wear faults last 4-7 days: a week before a failure looks healthy
WINDOWS = (5, 15, 30)  # run-to-failure units: rolling windows in rows (cycles)
AGE = "age"


def targets(times: np.ndarray, failures: Sequence[float], end: float, cap: float) -> np.ndarray:
    """Clipped RUL per row: `min(next failure - t, cap)`; past the last failure `cap` if `end - t >= cap`
    (right-censored but known to reach the cap), else NaN. Times and failures in one unit (cycles, hours)."""
    t = np.asarray(times, dtype=float)
    fails = np.sort(np.asarray(failures, dtype=float))
    y = np.full(len(t), np.nan)
    nxt = np.searchsorted(fails, t, side="left")  # the first failure at or after t
    has = nxt < len(fails)
    y[has] = np.minimum(fails[nxt[has]] - t[has], cap)
    left = ~has & (end - t >= cap)
    y[left] = cap
    return y


def _slope(x: pd.Series, w: int) -> pd.Series:
    """Change per row between the mean of the last w/2 rows and the w/2 before them (as `features._slope`)."""
    half = max(1, w // 2)
    recent = x.rolling(half, min_periods=1).mean()
    return (recent - recent.shift(half)) / half


def unit_features(frame: pd.DataFrame, windows: Sequence[int] = WINDOWS) -> pd.DataFrame:
    """Causal rolling features of every sensor column of one unit (rows in time order): the row at t reads only
    rows at or before t, so the last row of any window of `max(windows)` rows matches the whole history's row."""
    cols: dict[str, pd.Series] = {}
    for c in frame.columns:
        x = frame[c].astype(float)
        cols[f"{c}:value"] = x
        for w in windows:
            cols[f"{c}:mean_{w}"] = x.rolling(w, min_periods=1).mean()
            cols[f"{c}:std_{w}"] = x.rolling(w, min_periods=2).std()
            cols[f"{c}:slope_{w}"] = _slope(x, w)
    return pd.DataFrame(cols, index=frame.index)


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    return float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else float("nan")


class AgeBaseline:
    """Mean clipped RUL of the training units at each age: what a maintenance plan based on age alone predicts."""

    def __init__(self, step: float = 1.0) -> None:
        self.step = step
        self.table = pd.Series(dtype=float)
        self.mean = 0.0

    def fit(self, age: np.ndarray, y: np.ndarray) -> AgeBaseline:
        key = np.round(np.asarray(age, dtype=float) / self.step)
        self.table = pd.Series(np.asarray(y, dtype=float)).groupby(key).mean().sort_index()
        self.mean = float(np.mean(y))
        return self

    def predict(self, age: np.ndarray) -> np.ndarray:
        key = np.round(np.asarray(age, dtype=float) / self.step)
        # Beyond the oldest training age the last known mean holds (ffill); before the first, the first.
        full = self.table.reindex(self.table.index.union(np.unique(key))).ffill().bfill()
        return np.asarray(full.reindex(key).fillna(self.mean).to_numpy())


class RulModel:
    """A random forest regressor on clipped RUL; predictions are clipped to [0, cap] like the targets.

    Random forest as in the failure task: NaN-tolerant (scikit-learn >= 1.4), robust without tuning, and its
    feature importances give each prediction's `top` features cheaply.
    """

    def __init__(self, cap: float, n_estimators: int = 80) -> None:
        self.cap = float(cap)
        self.columns: list[str] = []
        self.center = np.zeros(0)
        self.scale = np.ones(0)
        self.model = RandomForestRegressor(
            n_estimators=n_estimators, min_samples_leaf=5, max_features=0.5, n_jobs=1, random_state=0
        )

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> RulModel:
        self.columns = list(x.columns)
        values = x[self.columns].to_numpy(dtype=float)
        self.center = np.nanmedian(values, axis=0)
        spread = np.nanpercentile(values, 75, axis=0) - np.nanpercentile(values, 25, axis=0)
        self.scale = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        self.model.fit(values, np.asarray(y, dtype=float))
        return self

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        return np.clip(self.model.predict(x.reindex(columns=self.columns).to_numpy(dtype=float)), 0.0, self.cap)

    def explain(self, x: pd.DataFrame, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per row the `k` features with the largest importance x |robust z| (how far from the typical training
        row, weighted by how much the forest relies on the feature): the inputs behind a low RUL."""
        values = x.reindex(columns=self.columns).to_numpy(dtype=float)
        z = np.nan_to_num(np.abs(values - self.center) / self.scale)
        weight = z * np.asarray(self.model.feature_importances_)
        out = []
        for row in weight:
            idx = np.argsort(-row)[:k]
            out.append([(self.columns[j], round(float(row[j]), 4)) for j in idx])
        return out
