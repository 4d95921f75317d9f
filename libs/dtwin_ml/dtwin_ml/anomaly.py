"""Anomaly scoring: robust z-scores of an asset's features against its own normal history, squashed to [0, 1].

`AnomalyModel.fit` learns, per feature, the median and the scaled MAD over a window known (or assumed) to be
normal. `score` compares each row with that profile: the mean of the `top` largest |z| is the raw score, mapped to
[0, 1] so that 0.5 is the `calibration` quantile of raw scores on the normal window; `explain` names the features
that drove a row. Each row uses only its own (causal) features, so scoring a stream step by step gives the same
numbers as scoring it whole. Only features that describe behaviour rather than weather-driven level are used:
residuals against the learned profile, short-window spread, slopes, spectral energy, missing data, deltas and,
when the history has per-bucket extremes, in-range spikes and readings stuck away from their resting values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

ANOMALY_SUFFIXES = (
    "resid",
    "resid_mean_6",
    "std_6",
    "std_36",
    "slope_36",
    "slope_144",
    "spec_energy",
    "jump",
    "flat",
    "missing",
    "spike",
    "spike_36",
    "stuck",
)


def anomaly_columns(columns: pd.Index) -> list[str]:
    return [str(c) for c in columns if str(c).split(":")[-1] in ANOMALY_SUFFIXES or ":delta" in str(c)]


@dataclass
class AnomalyModel:
    top: int = 3
    select: str = "anomaly"  # "anomaly": behaviour features only; "all": every non-calendar feature
    calibration: float = 0.99
    clip: float = 50.0
    columns: list[str] = field(default_factory=list)
    center: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    raw_ref: float = 1.0

    def fit(self, normal: pd.DataFrame) -> AnomalyModel:
        if self.select == "anomaly":
            cols = anomaly_columns(normal.columns)
        else:
            cols = [str(c) for c in normal.columns if not str(c).startswith("cal:")]
        x = normal[cols].to_numpy(dtype=float)
        self.columns = cols
        self.center = np.nanmedian(x, axis=0)
        mad = 1.4826 * np.nanmedian(np.abs(x - self.center), axis=0)
        # Heavy tails (a fan starting a few minutes off schedule) are normal too: the central 98 % range, in
        # units of a normal sigma, widens the scale of such features so their usual outliers stay unremarkable.
        q01, q99 = np.nanquantile(x, [0.01, 0.99], axis=0) if len(x) else (np.zeros(len(cols)), np.ones(len(cols)))
        tails = (q99 - q01) / 4.653
        self.scale = np.maximum(np.maximum(np.nan_to_num(mad), np.nan_to_num(tails)), self._floor(normal, cols))
        self.center = np.nan_to_num(self.center)
        raw = self._raw(self.z(normal))
        self.raw_ref = float(max(np.nanquantile(raw, self.calibration), 1e-6)) if len(raw) else 1.0
        return self

    @staticmethod
    def _floor(normal: pd.DataFrame, cols: list[str]) -> np.ndarray:
        """A feature constant on normal data (a residual of a perfectly regular signal) still needs a finite
        scale: 2 % of its metric's normal spread (squared for spectral energy), so one exact repeat or a tiny
        drift does not become an infinite z."""
        spread: dict[str, float] = {}
        out = np.empty(len(cols))
        for j, col in enumerate(cols):
            metric, _, kind = col.rpartition(":")
            base = f"{metric}:value" if f"{metric}:value" in normal else col
            if base not in spread:
                v = normal[base].to_numpy(dtype=float)
                lo, hi = np.nanquantile(v, [0.05, 0.95]) if np.isfinite(v).any() else (0.0, 0.0)
                spread[base] = float(hi - lo) or 1e-3 * (1 + float(np.nanmax(np.abs(v), initial=0.0)))
            s = 0.02 * spread[base]
            out[j] = 0.05 if kind in ("missing", "flat", "still", "stuck") else s * s if kind == "spec_energy" else s
        return np.maximum(out, 1e-9)

    def z(self, features: pd.DataFrame) -> np.ndarray:
        x = features.reindex(columns=self.columns).to_numpy(dtype=float)
        z = (x - self.center) / self.scale
        return np.clip(np.nan_to_num(z, nan=0.0), -self.clip, self.clip)

    def _raw(self, z: np.ndarray) -> np.ndarray:
        if z.shape[1] == 0:
            return np.zeros(len(z))
        k = min(self.top, z.shape[1])
        return np.sort(np.abs(z), axis=1)[:, -k:].mean(axis=1)

    def score(self, features: pd.DataFrame) -> np.ndarray:
        """Per row, in [0, 1): 0.5 at the normal window's calibration quantile, towards 1 as it gets worse."""
        return 1.0 - np.power(2.0, -self._raw(self.z(features)) / self.raw_ref)

    def explain(self, features: pd.DataFrame, n: int = 3) -> list[list[tuple[str, float]]]:
        """The `n` features with the largest |z| of each row, with their signed z."""
        z = self.z(features)
        order = np.argsort(-np.abs(z), axis=1)[:, :n]
        return [[(self.columns[j], round(float(z[i, j]), 2)) for j in row] for i, row in enumerate(order)]
