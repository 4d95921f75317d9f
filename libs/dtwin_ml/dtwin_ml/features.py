"""The one feature module: what the trainer, the bentos and the CLI compute from an asset's history.

Input is a frame of one asset's metrics on a regular grid (a tz-aware DatetimeIndex, one column per metric, NaN
where nothing was reported) and, when the history keeps them, each bucket's min/max/count; output is a frame on the
same index with, per metric, rolling mean/std/min/max over several windows, slopes, the residual against a learned
daily/weekly `Profile`, spectral energy for vibration-like signals, a robust outlier level (jumps away from the
recent median), the share of repeated values (a stuck sensor) and of missing buckets, and from the extremes the
spikes a mean averages away and readings frozen away from their resting values; then deltas between related
metrics (supply vs return, setpoint vs actual) and the local time of day and day of week. Every feature is causal:
the row at time t reads only rows at or before t (rolling windows look back, gaps are forward-filled, the profile
is fitted beforehand on training data), so a model scores a live stream exactly as it was evaluated. Any set of
metrics works; nothing here knows the simulator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

VIBRATION_WORDS = frozenset({"vibration", "vib", "accel", "acceleration"})
COUNTER_WORDS = frozenset({"energy", "kwh", "total", "counter", "count", "consumption", "runtime", "hours"})
_PAIR_SWAPS = (("supply", "return"), ("leaving", "entering"), ("discharge", "suction"))
_SETPOINT = re.compile(r"^(?P<base>.+?)_(setpoint|sp|set)$")
REST_DECIMALS = 6
MAX_REST = 8
# Bump when a feature's definition changes: a bundle records it, so a model is never fed features it did not learn.
FEATURE_VERSION = 2


@dataclass(frozen=True)
class FeatureConfig:
    """Windows are counted in grid steps (at 10 min: 1 h, 6 h and 24 h)."""

    windows: tuple[int, ...] = (6, 36, 144)
    slope_windows: tuple[int, ...] = (36, 144)
    spectral_window: int = 36
    fill_limit: int = 6  # a gap longer than this many steps stays NaN rather than repeating a stale value
    pairs: tuple[tuple[str, str], ...] = ()  # (a, b) -> a feature a - b, on top of the ones derived from names
    spectral: tuple[str, ...] = ()  # metrics to treat as vibration on top of those whose name says so
    counters: tuple[str, ...] | None = None  # cumulative metrics (used as per-step increments); None: by name
    timezone: str = "UTC"


def _words(metric: str) -> set[str]:
    return set(re.split(r"[_\-.\s]+", metric.lower()))


def related_pairs(metrics: Iterable[str], extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(a, b) pairs whose difference means something: supply/return twins, setpoint/actual, plus `extra`."""
    have = sorted(set(metrics))
    found: list[tuple[str, str]] = []
    for m in have:
        for a, b in _PAIR_SWAPS:
            twin = re.sub(rf"(^|_){a}(_|$)", rf"\g<1>{b}\g<2>", m)
            if twin != m and twin in have:
                found.append((m, twin))
        sp = _SETPOINT.match(m)
        if sp and sp.group("base") in have:
            found.append((sp.group("base"), m))
    found += [(a, b) for a, b in extra if a in have and b in have]
    return list(dict.fromkeys(found))


def is_vibration(metric: str, config: FeatureConfig) -> bool:
    return metric in config.spectral or bool(_words(metric) & VIBRATION_WORDS)


def is_counter(metric: str, config: FeatureConfig) -> bool:
    """A cumulative meter reading (energy in kWh, run hours): its level means nothing, its increments do."""
    if config.counters is not None:
        return metric in config.counters
    return bool(_words(metric) & COUNTER_WORDS)


@dataclass
class Profile:
    """The median of each metric per (working day or weekend, hour) in local time, learned on a training window.

    48 slots rather than 168: a few weeks of history give every slot enough days to be a typical value rather than
    a copy of the one day it saw, which would make residuals on training data misleadingly small.
    """

    timezone: str = "UTC"
    table: dict[str, list[float]] = field(default_factory=dict)  # metric -> 48 values: weekdays 0-23, weekend 0-23
    rest: dict[str, list[float]] = field(default_factory=dict)  # metric -> values it sat still at (e.g. 0 when off)

    @staticmethod
    def _slots(index: pd.DatetimeIndex, timezone: str) -> np.ndarray:
        local = index.tz_convert(timezone)
        return np.asarray((local.dayofweek >= 5) * 24 + local.hour, dtype=int)

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        timezone: str = "UTC",
        config: FeatureConfig | None = None,
        stats: pd.DataFrame | None = None,
    ) -> Profile:
        """`stats` (the per-bucket extremes, see `build`) adds each metric's resting values (`rest`)."""
        config = config or FeatureConfig()
        slots = cls._slots(pd.DatetimeIndex(frame.index), timezone)
        table, rest = {}, {}
        for m in frame.columns:
            x = frame[m].astype(float)
            x = x.diff() if is_counter(str(m), config) else x
            table[str(m)] = cls._table(x, slots, "median")
            if stats is not None and not is_counter(str(m), config) and f"{m}:min" in stats:
                still = _still_steps(str(m), x.ffill(limit=config.fill_limit), stats.reindex(frame.index)) > 0
                values = x[still].round(REST_DECIMALS).value_counts()
                # The values it rests at often (0 when off, a clamp): a handful at most; a metric still most of the
                # time (a setpoint) cannot be told stuck from resting at all, so it gets none and is never "stuck".
                if still.mean() < 0.9:
                    rest[str(m)] = sorted(float(v) for v in values[values >= 3].index[:MAX_REST])
        return cls(timezone, table, rest)

    @staticmethod
    def _table(x: pd.Series, slots: np.ndarray, how: str) -> list[float]:
        by = x.groupby(slots).agg(how).reindex(range(48))
        # A slot never seen falls back to the same hour of the other day type, then to the metric's median.
        hourly = x.groupby(slots % 24).agg(how)
        filled = [by[s] if pd.notna(by[s]) else hourly.get(s % 24, np.nan) for s in range(48)]
        return [float(v) if pd.notna(v) else float(x.agg(how)) for v in filled]

    def expected(self, index: pd.DatetimeIndex, metric: str) -> np.ndarray:
        if metric not in self.table:
            return np.full(len(index), np.nan)
        return np.asarray(self.table[metric])[self._slots(index, self.timezone)]


def _slope(x: pd.Series, w: int, hours_per_step: float) -> pd.Series:
    """Change per hour between the mean of the last w/2 steps and the mean of the w/2 steps before them."""
    half = max(1, w // 2)
    recent = x.rolling(half, min_periods=1).mean()
    return (recent - recent.shift(half)) / (half * hours_per_step)


def _spectral(x: pd.Series, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Energy (variance) of the detrended last `w` steps, and the share of it above a quarter of the band."""
    values = x.to_numpy(dtype=float)
    energy, high = np.full(len(values), np.nan), np.full(len(values), np.nan)
    if len(values) < w:
        return energy, high
    win = sliding_window_view(values, w)
    win = win - np.nanmean(win, axis=1, keepdims=True)
    win = np.nan_to_num(win)
    power = np.abs(np.fft.rfft(win, axis=1)) ** 2
    total = power[:, 1:].sum(axis=1)
    energy[w - 1 :] = total / (w * w)
    with np.errstate(invalid="ignore", divide="ignore"):
        high[w - 1 :] = np.where(total > 0, power[:, max(2, power.shape[1] // 4) :].sum(axis=1) / total, 0.0)
    return energy, high


def _still_steps(name: str, v: pd.Series, stats: pd.DataFrame) -> pd.Series:
    """1.0 for a bucket whose several readings were all equal (a single reading: its mean repeats the previous
    bucket's), 0.0 otherwise or without readings. Noisy transmitters practically never repeat a value exactly."""
    lo = stats[f"{name}:min"].astype(float)
    hi = stats[f"{name}:max"].astype(float)
    n = stats[f"{name}:count"].astype(float).fillna(0.0) if f"{name}:count" in stats else (~hi.isna()) * 2.0
    zero = (hi - lo).abs() <= 1e-9 * (1.0 + hi.abs())
    same = v.diff().abs() <= 1e-9 * (1.0 + v.abs())
    return pd.Series(np.where(n >= 2, zero, same & (n == 1)), index=v.index, dtype=float)


def _extremes(
    name: str, v: pd.Series, stats: pd.DataFrame, config: FeatureConfig, profile: Profile | None
) -> dict[str, pd.Series]:
    """Features of the per-bucket min/max/count (`stats`) that the bucket means average away.

    `spike`: how far the bucket's farthest reading sits from the bucket's own mean, averaged over 1 h and 6 h; one
    in-range outlier among a bucket's readings barely moves its mean but sets its min or max, while a load swing
    within ten minutes moves both ends about equally (measured from the bucket's own mean rather than from
    earlier buckets, a steady ramp is not mistaken for an outlier).
    `still`: the share of still buckets (see `_still_steps`) over 1 h; `stuck`: the share of buckets still at a
    value other than the metric's resting values learned by the profile (a transmitter frozen while its asset
    runs, not one that reads 0 every night). Without a profile, or for a metric still most of the time (a
    setpoint), there is no `stuck`.
    """
    lo = stats[f"{name}:min"].astype(float)
    hi = stats[f"{name}:max"].astype(float)
    excursion = np.maximum(hi - v, v - lo).fillna(0.0)  # NaN (no readings in the bucket) counts as none
    still = _still_steps(name, v, stats)
    short, mid = config.windows[0], config.windows[1]
    out = {
        f"{name}:spike": excursion.rolling(short, min_periods=1).mean(),
        f"{name}:spike_{mid}": excursion.rolling(mid, min_periods=1).mean(),
        f"{name}:still": still.rolling(short, min_periods=1).mean(),
    }
    rest = profile.rest.get(name) if profile is not None else None
    if rest is not None:
        resting = v.round(REST_DECIMALS).isin(rest)
        stuck = still.where(~resting, 0.0) if rest else still
        out[f"{name}:stuck"] = stuck.rolling(short, min_periods=1).mean()
    return out


def _metric(
    x: pd.Series,
    name: str,
    config: FeatureConfig,
    profile: Profile | None,
    step_h: float,
    stats: pd.DataFrame | None = None,
) -> dict:
    raw = x.astype(float)
    v = raw.ffill(limit=config.fill_limit)
    counter = is_counter(name, config)
    if counter:
        v = v.diff()
    out: dict[str, pd.Series | np.ndarray] = {f"{name}:value": v}
    for w in config.windows:
        roll = v.rolling(w, min_periods=1)
        out[f"{name}:mean_{w}"] = roll.mean()
        out[f"{name}:std_{w}"] = v.rolling(w, min_periods=2).std()
        out[f"{name}:min_{w}"] = roll.min()
        out[f"{name}:max_{w}"] = roll.max()
    for w in config.slope_windows:
        out[f"{name}:slope_{w}"] = _slope(v, w, step_h)
    if profile is not None and name in profile.table:
        resid = v - profile.expected(pd.DatetimeIndex(v.index), name)
        out[f"{name}:resid"] = resid
        out[f"{name}:resid_mean_{config.windows[0]}"] = resid.rolling(config.windows[0], min_periods=1).mean()
    if is_vibration(name, config):
        energy, high = _spectral(v, config.spectral_window)
        out[f"{name}:spec_energy"], out[f"{name}:spec_high"] = energy, high
    # Outliers: how far each step sits from the median of the last five, averaged over the short window; robust
    # to the slow swings of load and weather that widen the plain rolling std.
    jump = (v - v.rolling(5, min_periods=1).median()).abs()
    out[f"{name}:jump"] = jump.rolling(config.windows[0], min_periods=1).mean()
    # A stuck transmitter repeats one value exactly; real readings averaged over a step practically never do.
    same = (v.diff().abs() <= 1e-9 * (1.0 + v.abs())).astype(float)
    out[f"{name}:flat"] = same.rolling(config.windows[0], min_periods=1).mean()
    out[f"{name}:missing"] = raw.isna().astype(float).rolling(config.windows[0], min_periods=1).mean()
    if stats is not None and not counter and f"{name}:min" in stats and f"{name}:max" in stats:
        out.update(_extremes(name, v, stats, config, profile))
    return out


def bucket_stats(readings: pd.Series, freq: str) -> tuple[pd.Series, pd.DataFrame]:
    """Raw readings of one metric (tz-aware index) -> bucket means and the `stats` columns `build` reads."""
    name = str(readings.name or "value")
    g = readings.astype(float).resample(freq, label="left", closed="left")
    stats = pd.DataFrame({f"{name}:min": g.min(), f"{name}:max": g.max(), f"{name}:count": g.count().astype(float)})
    return g.mean().rename(name), stats


def calendar(index: pd.DatetimeIndex, timezone: str = "UTC") -> pd.DataFrame:
    local = index.tz_convert(timezone)
    hour = local.hour + local.minute / 60.0
    dow = local.dayofweek
    return pd.DataFrame(
        {
            "cal:hour_sin": np.sin(2 * np.pi * hour / 24),
            "cal:hour_cos": np.cos(2 * np.pi * hour / 24),
            "cal:dow_sin": np.sin(2 * np.pi * dow / 7),
            "cal:dow_cos": np.cos(2 * np.pi * dow / 7),
            "cal:weekend": (dow >= 5).astype(float),
        },
        index=index,
    )


def build(
    frame: pd.DataFrame,
    config: FeatureConfig | None = None,
    profile: Profile | None = None,
    stats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every feature of one asset's grid `frame` (sorted tz-aware DatetimeIndex, one column per metric).

    `stats`, when the history has them, holds each bucket's `<metric>:min`, `<metric>:max` and `<metric>:count`
    on the same index (see `bucket_stats`); they add the spike and stillness features of every metric they cover.
    """
    config = config or FeatureConfig()
    index = pd.DatetimeIndex(frame.index)
    if index.tz is None:
        raise ValueError("the history's index must be timezone-aware (UTC is fine)")
    if not index.is_monotonic_increasing:
        raise ValueError("the history's index must be sorted in time")
    step_h = float(np.median(np.diff(index.asi8))) / 3.6e12 if len(index) > 1 else 1.0
    cols: dict[str, pd.Series | np.ndarray] = {}
    for m in frame.columns:
        cols.update(_metric(frame[m], str(m), config, profile, step_h, stats))
    for a, b in related_pairs(map(str, frame.columns), config.pairs):
        delta = frame[a].ffill(limit=config.fill_limit) - frame[b].ffill(limit=config.fill_limit)
        cols[f"{a}-{b}:delta"] = delta
        cols[f"{a}-{b}:delta_mean_{config.windows[1]}"] = delta.rolling(config.windows[1], min_periods=1).mean()
    out = pd.DataFrame(cols, index=index)
    return pd.concat([out, calendar(index, config.timezone)], axis=1)
