"""Energy-saving recommendations: pure detectors over one asset's recent 10-min grid (a frame of metric columns).

Each detector returns `Recommendation`s with the kWh the fix would have saved over the period looked at (the
annualised figure goes in the detail text), priced at a flat tariff. Estimates are deliberately conservative and
say how they were made, so an engineer can check them:

- `after_hours`: the asset's power outside the site's occupied hours (local time; default Mon-Fri 07-19). Its
  baseline night load is the 10th percentile of its unoccupied power (standby, pumps that must run); a step counts
  as "running" when it is more than a quarter of the way from that baseline to the median occupied load, and the
  saving is its energy above the baseline. Noise around a standby load never gets that far.
- `simultaneous_heat_cool`: heating and cooling active in the same asset at the same step (valves above 5 %,
  modes on, or heating/cooling power above 5 % of its peak). Saving: the smaller of the two powers during the
  overlap (that much heat is added only to be removed); with valves or modes only, the asset's power times the
  smaller valve opening.
- `setpoint_drift`: an actual value persistently off its setpoint during occupied hours (median |offset| above
  the tolerance, over at least half of the occupied steps), and `setpoint_changed`: the last day's setpoint moved
  from its usual value (the median of the period before) by more than the tolerance. Saving: the asset's energy in
  the affected steps times `pct_per_kelvin` (6 %/K, a common rule of thumb for HVAC) times the offset.

Power metrics are in kW (`POWER_METRICS`, the simulator's and the energy task's names); `rows(recs, model,
version)` gives the insert tuples of `<schema>.energy_recommendations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

POWER_METRICS = ("power", "active_power", "compressor_power")
DAYS_PER_YEAR = 365.0
_SETPOINT = re.compile(r"^(?P<base>.*?)_?(setpoint|sp)$")


@dataclass(frozen=True)
class Schedule:
    """Occupied hours in the site's local time: `days` are Monday=0 .. Sunday=6, hours [start, end)."""

    timezone: str = "UTC"
    days: tuple[int, ...] = (0, 1, 2, 3, 4)
    start: int = 7
    end: int = 19

    def occupied(self, index: pd.DatetimeIndex) -> np.ndarray:
        local = pd.DatetimeIndex(index).tz_convert(self.timezone)
        return np.asarray(local.dayofweek.isin(self.days) & (local.hour >= self.start) & (local.hour < self.end))


@dataclass(frozen=True)
class Settings:
    schedule: Schedule = field(default_factory=Schedule)
    tariff: float = 0.25  # currency per kWh
    currency: str = "EUR"
    min_kwh: float = 1.0  # smaller savings are not worth an engineer's time
    tolerance_k: float = 1.0  # setpoint offset that counts as drift
    pct_per_kelvin: float = 0.06
    active: float = 5.0  # valve % above which heating/cooling is active


@dataclass(frozen=True)
class Recommendation:
    asset: str
    kind: str
    title: str
    detail: str
    kwh_saved: float
    cost_saved: float
    currency: str
    period_start: pd.Timestamp
    period_end: pd.Timestamp


def _step_h(index: pd.DatetimeIndex) -> float:
    return float(np.median(np.diff(index.asi8))) / 3.6e12 if len(index) > 1 else 1.0 / 6.0


def _period(frame: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    index = pd.DatetimeIndex(frame.index)
    return index[0], index[-1] + pd.Timedelta(hours=_step_h(index))


def power(frame: pd.DataFrame) -> pd.Series | None:
    """The asset's total electrical power in kW (the sum of its power metrics), None without one."""
    cols = [m for m in POWER_METRICS if m in frame]
    return frame[cols].sum(axis=1, min_count=1) if cols else None


def _make(
    asset: str, kind: str, title: str, detail: str, kwh: float, frame: pd.DataFrame, s: Settings
) -> Recommendation:
    start, end = _period(frame)
    days = max((end - start).total_seconds() / 86400.0, 1e-9)
    yearly = kwh * DAYS_PER_YEAR / days
    if kwh > 0:
        text = (
            f"{detail} About {kwh:.1f} kWh over these {days:.1f} days, {yearly:.0f} kWh a year "
            f"({yearly * s.tariff:.0f} {s.currency})."
        )
    else:
        text = f"{detail} The saving could not be estimated: the asset reports no power."
    return Recommendation(asset, kind, title, text, round(kwh, 3), round(kwh * s.tariff, 2), s.currency, start, end)


def after_hours(asset: str, frame: pd.DataFrame, s: Settings = Settings()) -> list[Recommendation]:
    p = power(frame)
    if p is None:
        return []
    occ = s.schedule.occupied(pd.DatetimeIndex(frame.index))
    on, off = p[occ].dropna(), p[~occ].dropna()
    if len(on) == 0 or len(off) == 0:
        return []
    base, load = float(off.quantile(0.1)), float(on.median())
    if load <= base:
        return []
    running = off[off > base + 0.25 * (load - base)]
    kwh = float((running - base).sum() * _step_h(pd.DatetimeIndex(frame.index)))
    hours = len(running) * _step_h(pd.DatetimeIndex(frame.index))
    if kwh < s.min_kwh:
        return []
    detail = (
        f"Ran {hours:.1f} h outside occupied hours (Mon-Fri {s.schedule.start:02d}-{s.schedule.end:02d} "
        f"{s.schedule.timezone} unless configured) at {running.mean():.1f} kW against a night baseline of "
        f"{base:.1f} kW; check its schedule."
    )
    return [_make(asset, "after_hours", f"{asset} runs after hours", detail, kwh, frame, s)]


@dataclass(frozen=True)
class _Side:
    on: pd.Series  # heating (or cooling) active at the step
    kw: pd.Series | None  # its power when metered
    share: pd.Series  # how far open (0-1): a valve's opening, 1 while a mode or a metered side is on


def _activity(frame: pd.DataFrame, word: str, s: Settings) -> _Side | None:
    """Heating or cooling of one asset: from a `*heat*power` metric, else from valve / mode metrics."""
    cols = [c for c in frame.columns if word in str(c).lower()]
    kw = [c for c in cols if "power" in str(c).lower()]
    if kw:
        x = frame[kw].sum(axis=1, min_count=1)
        on = x > 0.05 * float(x.max())
        return _Side(on, x, on.astype(float))
    share = [c for c in cols if any(w in str(c).lower() for w in ("valve", "mode", "state", "output", "signal"))]
    if not share:
        return None
    x = frame[share].max(axis=1)
    if float(x.max()) <= 1.0:  # a mode or state is 0/1
        return _Side(x > 0.5, None, (x > 0.5).astype(float))
    return _Side(x > s.active, None, x.clip(0, 100) / 100.0)  # a valve or output is a percentage


def simultaneous_heat_cool(asset: str, frame: pd.DataFrame, s: Settings = Settings()) -> list[Recommendation]:
    heat, cool = _activity(frame, "heat", s), _activity(frame, "cool", s)
    if heat is None or cool is None:
        return []
    both = (heat.on & cool.on).to_numpy()
    if not both.any():
        return []
    step = _step_h(pd.DatetimeIndex(frame.index))
    p = power(frame)
    if heat.kw is not None and cool.kw is not None:
        waste = np.minimum(heat.kw, cool.kw)[both]
        how = "the smaller of heating and cooling power"
    else:
        opening = np.minimum(heat.share, cool.share)
        waste = (p * opening)[both] if p is not None else pd.Series(dtype=float)
        how = "the asset's power times the smaller opening"
    kwh = float(np.nansum(waste) * step)
    hours = float(both.sum() * step)
    if hours < 1.0:
        return []
    detail = (
        f"Heated and cooled at the same time for {hours:.1f} h (saving estimated as {how}); "
        "check the sequencing and the dead band."
    )
    if 0 < kwh < s.min_kwh:
        return []
    return [_make(asset, "simultaneous_heat_cool", f"{asset} heats and cools at once", detail, kwh, frame, s)]


def setpoint_pairs(columns: list[str]) -> list[tuple[str, str]]:
    """(actual, setpoint) pairs: `x_setpoint`/`x_sp` with `x`, and a lone `setpoint` with the only `*_temp`."""
    cols = set(map(str, columns))
    out = []
    for c in sorted(cols):
        m = _SETPOINT.match(c)
        if not m:
            continue
        base = m.group("base")
        if base in cols:
            out.append((base, c))
        elif not base:
            temps = sorted(x for x in cols if x.endswith("_temp") and "supply" not in x and "return" not in x)
            if len(temps) == 1:
                out.append((temps[0], c))
    return out


def setpoint_drift(asset: str, frame: pd.DataFrame, s: Settings = Settings()) -> list[Recommendation]:
    out: list[Recommendation] = []
    index = pd.DatetimeIndex(frame.index)
    step = _step_h(index)
    occ = s.schedule.occupied(index)
    p = power(frame)
    for actual, sp in setpoint_pairs(list(frame.columns)):
        offset = (frame[actual] - frame[sp])[occ].dropna()
        off = offset.abs() > s.tolerance_k
        if len(offset) and off.mean() >= 0.5 and abs(float(offset.median())) > s.tolerance_k:
            k = abs(float(offset.median()))
            kwh = 0.0
            if p is not None:
                hit = pd.Series(False, index=index)
                hit[off[off].index] = True
                kwh = float(p[hit.to_numpy()].sum() * step) * s.pct_per_kelvin * k
            detail = (
                f"{actual} sat {float(offset.median()):+.1f} K from {sp} in {off.mean():.0%} of occupied hours: "
                "the control does not reach its setpoint (check the valve, damper or sensor)."
            )
            if kwh >= s.min_kwh or p is None:
                title = f"{asset}: {actual} off its setpoint"
                out.append(_make(asset, "setpoint_drift", title, detail, kwh, frame, s))
        recent = index >= index[-1] - pd.Timedelta(days=1)
        usual, now = frame[sp][~recent].dropna(), frame[sp][recent].dropna()
        if len(usual) and len(now):
            change = float(now.median() - usual.median())
            if abs(change) > s.tolerance_k:
                kwh = float(p[recent].sum() * step) * s.pct_per_kelvin * abs(change) if p is not None else 0.0
                detail = (
                    f"{sp} moved from its usual {float(usual.median()):.1f} to {float(now.median()):.1f} in the "
                    "last day; if that was not intended, restore it."
                )
                if kwh >= s.min_kwh or p is None:
                    out.append(_make(asset, "setpoint_changed", f"{asset}: {sp} changed", detail, kwh, frame, s))
    return out


DETECTORS = (after_hours, simultaneous_heat_cool, setpoint_drift)


def recommend(asset: str, frame: pd.DataFrame, s: Settings = Settings()) -> list[Recommendation]:
    """Every detector's recommendations for one asset's grid frame."""
    if len(frame) < 2:
        return []
    return [r for detector in DETECTORS for r in detector(asset, frame, s)]


def rows(recs: list[Recommendation], model: str = "dtwin-recommend", version: str = "1") -> list[tuple]:
    """Insert tuples in the column order of `energy_recommendations(asset, kind, title, detail, kwh_saved,
    cost_saved, currency, period_start, period_end, model, version)`."""
    return [
        (
            r.asset,
            r.kind,
            r.title,
            r.detail,
            r.kwh_saved,
            r.cost_saved,
            r.currency,
            pd.Timestamp(r.period_start).to_pydatetime(),
            pd.Timestamp(r.period_end).to_pydatetime(),
            model,
            version,
        )
        for r in recs
    ]


COLUMNS = (
    "asset",
    "kind",
    "title",
    "detail",
    "kwh_saved",
    "cost_saved",
    "currency",
    "period_start",
    "period_end",
    "model",
    "version",
)
