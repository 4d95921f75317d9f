"""Trained bundles: everything one task needs to score a window exactly as the evaluation scored that row.

A bundle holds the per-asset state learned on the training period (the daily/weekly `Profile`, the robust-z
statistics), the pooled model, and every setting chosen on training data (threshold, debounce, top-k). Two ways in:
`predict(windows)` scores the LAST timestamp of each JSON window (see `dtwin_ml.window`), `predict_frame(asset,
frame, stats)` scores every row of a whole history at once. Features are causal and a window carries
`lookback_steps` rows, enough for the longest rolling window, the gap fill and the debounce, so both paths give the
same numbers (tests/test_bundle.py checks it on a simulated asset).

An asset the bundle never saw gets `"known": false` and no score: the robust-z statistics are each asset's own
normal behaviour, and fitting them on the window being judged would call a fault "normal". The energy forecaster is
pooled and scale-free, so an unknown series is still forecast, scaled by its own window's mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dtwin_ml import energy, features, rul
from dtwin_ml.anomaly import AnomalyModel
from dtwin_ml.failure import FailureModel, health_inputs
from dtwin_ml.window import STEP, WindowError, to_frames

ENERGY_METRICS = ("power", "compressor_power", "active_power")


@dataclass
class AssetState:
    """What one asset learned on its training period: the profile, the feature settings, the robust-z model."""

    profile: features.Profile
    config: features.FeatureConfig
    model: AnomalyModel

    def features(self, frame: pd.DataFrame, stats: pd.DataFrame | None) -> pd.DataFrame:
        return features.build(frame, self.config, self.profile, stats)


def lookback(config: features.FeatureConfig, persist: int = 1) -> int:
    """Rows a window needs so its last `persist` rows see the same features as in a whole history: the longest
    window, the gap fill before it and the one-step difference of counters."""
    longest = max((*config.windows, *config.slope_windows, config.spectral_window))
    return longest + config.fill_limit + 1 + max(persist, 1) - 1


def debounce(flag: np.ndarray, k: int) -> np.ndarray:
    """True where the last `k` steps (this one included) were all True (as `dtwin_trainer.assets.persist`)."""
    if k <= 1:
        return np.asarray(flag, dtype=bool)
    s = pd.Series(np.asarray(flag, dtype=float)).rolling(k, min_periods=k).min()
    return np.asarray(s.fillna(0).to_numpy() > 0)


def _stamp(t: pd.Timestamp) -> str:
    return pd.Timestamp(t).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _top(pairs: list[tuple[str, float]]) -> list[dict[str, Any]]:
    return [{"feature": f, "contribution": c} for f, c in pairs]


@dataclass
class _Scored:
    """Shared by the anomaly and failure bundles: per-asset states, a threshold and a debounce."""

    assets: dict[str, AssetState]
    threshold: float
    persist: int
    feature_version: int = features.FEATURE_VERSION
    task: ClassVar[str] = ""
    score_key: ClassVar[str] = "score"

    @property
    def lookback_steps(self) -> int:
        return max(
            (lookback(s.config, self.persist) for s in self.assets.values()),
            default=lookback(features.FeatureConfig(), self.persist),
        )

    def _scores(self, state: AssetState, feats: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def _explain(self, state: AssetState, feats: pd.DataFrame) -> list[list[tuple[str, float]]]:
        return state.model.explain(feats, 3)

    def predict_frame(self, asset: str, frame: pd.DataFrame, stats: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every row's causal score, alert (after the debounce) and top features; KeyError for an unknown asset."""
        state = self.assets[asset]
        feats = state.features(frame, stats)
        score = self._scores(state, feats)
        return pd.DataFrame(
            {
                self.score_key: score,
                "alert": debounce(score >= self.threshold, self.persist),
                "top": [_top(t) for t in self._explain(state, feats)],
            },
            index=feats.index,
        )

    def _extra(self) -> dict[str, Any]:
        return {}

    def predict(self, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for w in windows:
            frame, stats = to_frames(w, STEP)
            base = {"asset": w.get("asset"), "timestamp": _stamp(frame.index[-1])}
            if w.get("asset") not in self.assets:
                out.append({**base, "known": False, self.score_key: None, **self._extra(), "alert": False, "top": []})
                continue
            if len(frame) < self.lookback_steps:
                raise WindowError(
                    f"window of {w.get('asset')!r} has {len(frame)} steps; this model needs {self.lookback_steps}"
                )
            row = self.predict_frame(str(w["asset"]), frame, stats).iloc[-1]
            score = round(float(row[self.score_key]), 6)
            out.append(
                {
                    **base,
                    "known": True,
                    self.score_key: score,
                    **self._extra(),
                    "alert": bool(row["alert"]),
                    "top": row["top"],
                }
            )
        return out


@dataclass
class AnomalyBundle(_Scored):
    """Robust-z anomaly score in [0, 1) per asset; alert when `persist` steps in a row reach `threshold`."""

    top: int = 3
    task: ClassVar[str] = "anomaly"

    @property
    def feature_names(self) -> list[str]:
        return sorted({c for s in self.assets.values() for c in s.model.columns})

    def _scores(self, state: AssetState, feats: pd.DataFrame) -> np.ndarray:
        return state.model.score(feats)


@dataclass
class FailureBundle(_Scored):
    """P(failure within `horizon_h`) from the pooled classifier over each asset's own robust-z health inputs."""

    classifier: FailureModel = field(default_factory=FailureModel)
    horizon_h: float = 72.0
    task: ClassVar[str] = "failure"
    score_key: ClassVar[str] = "probability"

    @property
    def feature_names(self) -> list[str]:
        return list(self.classifier.columns)

    def _scores(self, state: AssetState, feats: pd.DataFrame) -> np.ndarray:
        return self.classifier.predict_proba(health_inputs(state.model, feats))

    def _extra(self) -> dict[str, Any]:
        return {"horizon_h": self.horizon_h}


@dataclass
class EnergyBundle:
    """Day-ahead hourly kWh of every power metric of an asset, summed; see `predict` for which 24 hours."""

    forecaster: energy.EnergyForecaster
    timezones: dict[str, str] = field(default_factory=dict)  # asset -> its site's time zone
    metrics: tuple[str, ...] = ENERGY_METRICS
    feature_version: int = features.FEATURE_VERSION
    task: ClassVar[str] = "energy"
    # Inputs reach back to the same hour a week before and to last week's daily mean: eight days of 10-min steps.
    lookback_steps: ClassVar[int] = 8 * 144

    @property
    def feature_names(self) -> list[str]:
        return list(self.forecaster.columns)

    def known(self, asset: str) -> bool:
        return any(k.startswith(f"{asset}/") for k in self.forecaster.scales)

    def predict_frame(self, asset: str, frame: pd.DataFrame, timezone: str | None = None) -> pd.DataFrame:
        """The evaluation's forecast of every hour of the history (made at the start of its UTC day), per metric
        and summed as `kwh`."""
        tz = timezone or self.timezones.get(asset, "UTC")
        cols = {
            m: self.forecaster.predict(f"{asset}/{m}", energy.hourly_energy(frame[m]), tz)
            for m in self.metrics
            if m in frame
        }
        out = pd.DataFrame(cols)
        out["kwh"] = out.sum(axis=1, min_count=len(cols)) if cols else np.nan
        return out

    def predict(self, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The 24 whole hours after each window's last bucket. A window ending at 23:50 UTC gets exactly the
        evaluation's forecast of the next day; otherwise the hours of the next UTC day see today's partial mean."""
        out = []
        for w in windows:
            frame, _ = to_frames(w, STEP)
            asset = str(w.get("asset"))
            last = frame.index[-1]
            hours = pd.date_range((last + STEP).ceil("h"), periods=24, freq="h")
            ext = frame.reindex(frame.index.union(pd.date_range(frame.index[-1] + STEP, hours[-1], freq=STEP)))
            pred = self.predict_frame(asset, ext, w.get("timezone")).reindex(hours)
            forecast = [
                {"timestamp": _stamp(t), "kwh": None if pd.isna(v) else round(float(v), 4)}
                for t, v in pred["kwh"].items()
            ]
            out.append(
                {
                    "asset": asset,
                    "timestamp": _stamp(last),
                    "known": self.known(asset),
                    "forecast": forecast,
                    "metrics": [m for m in self.metrics if m in frame],
                }
            )
        return out


def _unit_frame(window: dict[str, Any]) -> pd.DataFrame:
    """A run-to-failure window (`{"asset", "time": [numbers], "values": {...}}`) as a frame indexed by time."""
    time = window.get("time")
    if not isinstance(time, list) or not time:
        raise WindowError(f'window of {window.get("asset")!r} needs "time": [cycles or hours, oldest first]')
    index = pd.Index(np.asarray(time, dtype=float), name=rul.AGE)
    if len(index) > 1 and not (np.diff(index.to_numpy()) > 0).all():
        raise WindowError(f"window of {window.get('asset')!r}: time must increase")
    values = window.get("values") or {}
    if not isinstance(values, dict) or not values:
        raise WindowError(f"window of {window.get('asset')!r} has no values")
    cols = {}
    for m, v in sorted(values.items()):
        if len(v) != len(index):
            raise WindowError(f"values[{m!r}] has {len(v)} values for {len(index)} times")
        cols[str(m)] = np.asarray([np.nan if x is None else float(x) for x in v], dtype=float)
    return pd.DataFrame(cols, index=index)


@dataclass
class RulBundle:
    """Remaining useful life, clipped at `model.cap`, in `time_unit`; alert when it is at or below `threshold`.

    Two modes, fixed at training (see `dtwin_ml.rul`). With `assets` (site histories with failure events): a
    window is the usual 10-min grid of one known asset, the inputs are its robust-z health inputs and the RUL is
    in hours (`rul_hours` too). Without (run-to-failure units): a window is `{"asset": unit, "time": [...],
    "values": {sensor: [...]}}` with `time` the unit's age in `time_unit` (cycles, or hours since new), the model is
    pooled over the raw `sensors`, so any unit that reports them is known; `timestamp` in the answer is then the
    last `time` and `rul_hours` is None unless the unit is hours.
    """

    model: rul.RulModel
    threshold: float
    time_unit: str = "hours"
    assets: dict[str, AssetState] = field(default_factory=dict)
    sensors: tuple[str, ...] = ()
    windows: tuple[int, ...] = rul.WINDOWS
    feature_version: int = features.FEATURE_VERSION
    task: ClassVar[str] = "rul"

    @property
    def feature_names(self) -> list[str]:
        return list(self.model.columns)

    @property
    def per_asset(self) -> bool:
        return bool(self.assets)

    @property
    def lookback_steps(self) -> int:
        if self.per_asset:
            return max(lookback(s.config) for s in self.assets.values())
        return max(self.windows)

    def inputs(self, asset: str, frame: pd.DataFrame, stats: pd.DataFrame | None = None) -> pd.DataFrame:
        """The regressor's input rows for a whole history (KeyError for an unknown asset in per-asset mode)."""
        if self.per_asset:
            state = self.assets[asset]
            return health_inputs(state.model, state.features(frame, stats))
        x = rul.unit_features(frame.reindex(columns=list(self.sensors)), self.windows)
        x[rul.AGE] = np.asarray(frame.index, dtype=float)
        return x

    def predict_frame(self, asset: str, frame: pd.DataFrame, stats: pd.DataFrame | None = None) -> pd.DataFrame:
        """Every row's RUL, alert and top features."""
        x = self.inputs(asset, frame, stats)
        pred = self.model.predict(x)
        out = pd.DataFrame(
            {"rul": pred, "alert": pred <= self.threshold, "top": [_top(t) for t in self.model.explain(x, 3)]},
            index=x.index,
        )
        if self.time_unit == "hours":
            out["rul_hours"] = pred
        return out

    def _known(self, asset: str, frame: pd.DataFrame) -> bool:
        return asset in self.assets if self.per_asset else all(s in frame for s in self.sensors)

    def predict(self, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for w in windows:
            asset = w.get("asset")
            if not isinstance(asset, str) or not asset:
                raise WindowError('a window needs "asset"')
            if self.per_asset:
                frame, stats = to_frames(w, STEP)
                stamp: Any = _stamp(frame.index[-1])
            else:
                frame, stats = _unit_frame(w), None
                stamp = float(frame.index[-1])
            base = {"asset": asset, "timestamp": stamp, "unit": self.time_unit}
            if not self._known(asset, frame):
                out.append({**base, "known": False, "rul": None, "rul_hours": None, "alert": False, "top": []})
                continue
            if len(frame) < self.lookback_steps:
                raise WindowError(f"window of {asset!r} has {len(frame)} steps; this model needs {self.lookback_steps}")
            row = self.predict_frame(asset, frame, stats).iloc[-1]
            value = round(float(row["rul"]), 4)
            out.append(
                {
                    **base,
                    "known": True,
                    "rul": value,
                    "rul_hours": value if self.time_unit == "hours" else None,
                    "alert": bool(row["alert"]),
                    "top": row["top"],
                }
            )
        return out


Bundle = AnomalyBundle | FailureBundle | EnergyBundle | RulBundle
