"""Day-ahead energy: hourly consumption per asset, a gradient-boosted forecaster and the seasonal baselines.

At the start of day D (UTC midnight) the forecaster predicts the 24 hourly kWh of D from what is known then: the
same hour one, two and seven days before and its mean and median over the last week, yesterday's and last week's
daily mean, yesterday's last hour, and the local calendar. Targets and lags are divided by the asset's mean load on
its training window, so one model serves assets of any size. The baselines it must beat are seasonal persistence:
the same hour yesterday, and last week.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from dtwin_ml.features import calendar

LAGS_H = (24, 48, 168)


def hourly_energy(power_kw: pd.Series) -> pd.Series:
    """kWh per hour from a power series in kW (the mean power over each hour; hours with no data stay NaN)."""
    return power_kw.astype(float).resample("1h").mean()


def day_ahead_inputs(y: pd.Series, scale: float, timezone: str = "UTC") -> pd.DataFrame:
    """Inputs for each hour of `y` as known at the start of its (UTC) day; `y` is an hourly series."""
    s = y / scale
    out = {f"lag_{h}": s.shift(h) for h in LAGS_H}
    same_hour = pd.concat([s.shift(24 * d) for d in range(1, 8)], axis=1)
    out["same_hour_mean_7d"] = same_hour.mean(axis=1)
    out["same_hour_median_7d"] = same_hour.median(axis=1)
    days = s.index.floor("D")
    daily = s.groupby(days).mean()
    last = s.groupby(days).last()
    out["prev_day_mean"] = pd.Series(daily.shift(1).reindex(days).to_numpy(), index=s.index)
    out["week_ago_day_mean"] = pd.Series(daily.shift(7).reindex(days).to_numpy(), index=s.index)
    out["prev_day_last"] = pd.Series(last.shift(1).reindex(days).to_numpy(), index=s.index)
    frame = pd.DataFrame(out, index=s.index)
    return pd.concat([frame, calendar(pd.DatetimeIndex(s.index), timezone)], axis=1)


@dataclass
class EnergyForecaster:
    max_iter: int = 300
    scales: dict[str, float] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    model: HistGradientBoostingRegressor | None = None

    def fit(self, series: Sequence[tuple[str, pd.Series, str]]) -> EnergyForecaster:
        """`series`: (key, hourly kWh on the training window, timezone); one model pooled over all of them."""
        xs, ys = [], []
        for key, y, tz in series:
            self.scales[key] = float(max(y.mean(), 1e-6))
            x = day_ahead_inputs(y, self.scales[key], tz)
            ok = (y / self.scales[key]).notna() & x["lag_168"].notna()
            if not ok.any():  # less than a week of history: learn from what there is, without last week's lag
                ok = (y / self.scales[key]).notna() & x["lag_24"].notna()
            xs.append(x[ok])
            ys.append((y / self.scales[key])[ok])
        x_all = pd.concat(xs)
        # An input never seen in training (last week's lag on a history shorter than a week) cannot be learned.
        self.columns = [str(c) for c in x_all.columns if x_all[c].notna().any()]
        self.model = HistGradientBoostingRegressor(max_iter=self.max_iter, learning_rate=0.05, random_state=0)
        self.model.fit(x_all[self.columns], pd.concat(ys))
        return self

    def predict(self, key: str, y: pd.Series, timezone: str = "UTC") -> pd.Series:
        """Day-ahead forecast for every hour of `y` (history up to the day before each hour is used)."""
        if self.model is None:
            raise RuntimeError("fit the forecaster first")
        scale = self.scales.get(key) or float(max(y.mean(), 1e-6))
        x = day_ahead_inputs(y, scale, timezone)
        pred = pd.Series(self.model.predict(x[self.columns]) * scale, index=y.index)
        return pred.where(x["lag_24"].notna())


def persistence(y: pd.Series, lag_h: int) -> pd.Series:
    """Seasonal persistence: the same hour `lag_h` hours before (24: yesterday, 168: last week)."""
    return y.shift(lag_h)


def mape(actual: pd.Series, pred: pd.Series, floor: float = 0.0) -> float:
    """Mean absolute percentage error in %, over hours where both exist and the actual exceeds `floor`."""
    ok = actual.notna() & pred.notna() & (actual.abs() > floor)
    if not ok.any():
        return float("nan")
    return float(100.0 * np.mean(np.abs((actual[ok] - pred[ok]) / actual[ok])))
