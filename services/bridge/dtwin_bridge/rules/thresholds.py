"""Threshold alerts of one sensor: a three-level state machine (normal, warning, critical) with duration and
hysteresis, driven by reading timestamps only.

`ThresholdRule.from_route` converts a binding's thresholds to the canonical unit once (readings arrive in it);
the hysteresis is a difference, so it is scaled without the unit's offset (2 degF is 10/9 degC, not -16.7).
Semantics of `step`: a level is *entered* when the value is strictly beyond its threshold (above a high one,
below a low one) and *held* while it is not back inside by more than the hysteresis (warningHigh 30,
hysteresis 2: held down to 28, clear below 28). Every change of level (opening, escalation warning ->
critical, de-escalation critical -> warning, clearing) happens only after the readings have supported the
new level continuously for `forSeconds`, measured on reading timestamps; one reading that does not support
it restarts the timer. Runs are tracked per level, so a value that goes warning at t0 and critical at t1
opens a warning at t0 + forSeconds and escalates at t1 + forSeconds. When several levels are due at once the
furthest wins (normal -> critical directly). A reading older than the last one processed is ignored for the
state (the database still stores it): the machine never runs backwards in time; one with the same
timestamp is processed (last wins, as in the writer's upsert).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dtwin_bridge.model import Reading, Route
from dtwin_bridge.rules.events import AlertEscalated, AlertOpened, AlertResolved, Event, Severity, dedup_key
from dtwin_core.units import canonical, to_canonical

Level = Literal["normal", "warning", "critical"]
LEVELS: tuple[Level, Level, Level] = ("normal", "warning", "critical")
_NORMAL, _WARNING, _CRITICAL = 0, 1, 2

Runs = tuple[datetime | None, datetime | None, datetime | None]
_NO_RUNS: Runs = (None, None, None)


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A binding's thresholds in the canonical unit, indexed by level (index 0, normal, is always None)."""

    sensor: str
    asset: str
    unit: str  # canonical unit, for messages
    high: tuple[float | None, float | None, float | None]
    low: tuple[float | None, float | None, float | None]
    duration: timedelta
    hysteresis: float

    @classmethod
    def from_route(cls, route: Route) -> ThresholdRule:
        t, unit = route.thresholds, route.unit

        def conv(x: float | None) -> float | None:
            return None if x is None else to_canonical(x, unit)

        return cls(
            sensor=route.sensor,
            asset=route.asset,
            unit=canonical(unit),
            high=(None, conv(t.warning_high), conv(t.critical_high)),
            low=(None, conv(t.warning_low), conv(t.critical_low)),
            duration=timedelta(seconds=t.for_seconds),
            hysteresis=to_canonical(t.hysteresis, unit) - to_canonical(0.0, unit),
        )

    @property
    def active(self) -> bool:
        """Whether any threshold is set: a rule without one never changes level, so it can be skipped."""
        return any(x is not None for x in self.high + self.low)

    def entered(self, level: int, v: float) -> bool:
        hi, lo = self.high[level], self.low[level]
        return (hi is not None and v > hi) or (lo is not None and v < lo)

    def held(self, level: int, v: float) -> bool:
        hi, lo, h = self.high[level], self.low[level], self.hysteresis
        return (hi is not None and v >= hi - h) or (lo is not None and v <= lo + h)

    def target(self, current: int, v: float) -> int:
        """The level `v` supports from `current`: levels above it must be entered, the rest only held."""
        for level in (_CRITICAL, _WARNING):
            if self.entered(level, v) or (level <= current and self.held(level, v)):
                return level
        return _NORMAL


@dataclass(frozen=True, slots=True)
class ThresholdState:
    """`level` now; `runs[l]`: since when the readings have continuously supported moving to level l."""

    level: Level = "normal"
    runs: Runs = _NO_RUNS
    last_ts: datetime | None = None

    @property
    def pending_level(self) -> Level | None:
        """The furthest level the readings are heading to, or None when they support the current one."""
        cur = LEVELS.index(self.level)
        waiting = [lv for lv, since in enumerate(self.runs) if since is not None]
        return LEVELS[max(waiting, key=lambda lv: abs(lv - cur))] if waiting else None

    @property
    def pending_since(self) -> datetime | None:
        pending = self.pending_level
        return None if pending is None else self.runs[LEVELS.index(pending)]


def _runs(rule: ThresholdRule, current: int, v: float, ts: datetime, prev: Runs) -> Runs:
    t = rule.target(current, v)

    def run(level: int) -> datetime | None:
        supports = level != current and (t >= level if level > current else t <= level)
        if not supports:
            return None
        since = prev[level]
        return ts if since is None else since

    return (run(0), run(1), run(2))


def step(state: ThresholdState, reading: Reading, rule: ThresholdRule) -> tuple[ThresholdState, list[Event]]:
    """Feed one reading of `rule.sensor`; returns the new state and the events of its level change, if any."""
    ts, v = reading.ts, reading.value
    if state.last_ts is not None and ts < state.last_ts:
        return state, []
    cur = LEVELS.index(state.level)
    runs = _runs(rule, cur, v, ts, state.runs)
    due = [lv for lv, since in enumerate(runs) if since is not None and ts - since >= rule.duration]
    if not due:
        return ThresholdState(state.level, runs, ts), []
    new = max(due, key=lambda lv: abs(lv - cur))
    after = ThresholdState(LEVELS[new], _runs(rule, new, v, ts, runs), ts)
    return after, [_event(rule, cur, new, reading)]


def _severity(level: int) -> Severity:
    return "critical" if level == _CRITICAL else "warning"


def _describe(rule: ThresholdRule, level: int, v: float) -> str:
    hi, lo = rule.high[level], rule.low[level]
    side, limit = ("above", hi) if hi is not None and (lo is None or v >= (hi + lo) / 2) else ("below", lo)
    return (
        f"{rule.sensor} at {v:g} {rule.unit}, {side} its {LEVELS[level]} threshold {limit:g} {rule.unit}"
        f" for {rule.duration.total_seconds():g} s"
    )


def _event(rule: ThresholdRule, old: int, new: int, reading: Reading) -> Event:
    key = dedup_key("threshold", rule.sensor, rule.asset)
    s, a, at, v = rule.sensor, rule.asset, reading.ts, reading.value
    if new == _NORMAL:
        return AlertResolved(s, a, "threshold", at, v, f"{s} back to normal at {v:g} {rule.unit}", key)
    msg = _describe(rule, new, v)
    if old == _NORMAL:
        return AlertOpened(s, a, "threshold", _severity(new), at, v, msg, key)
    return AlertEscalated(s, a, "threshold", _severity(new), _severity(old), at, v, msg, key)
