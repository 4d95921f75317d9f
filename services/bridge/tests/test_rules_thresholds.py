"""Threshold rule on scripted signals: exact event sequences for duration, hysteresis, levels and units."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin_bridge.model import Reading, Route, Thresholds
from dtwin_bridge.rules.events import AlertEscalated, AlertOpened, AlertResolved, Event
from dtwin_bridge.rules.thresholds import ThresholdRule, ThresholdState, step

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rule(unit: str = "degC", **th: Any) -> ThresholdRule:
    route = Route("s1", "ahu-1", "temp", "t/ahu-1", "json", "temp", unit, thresholds=Thresholds.from_dict(th))
    return ThresholdRule.from_route(route)


def run(r: ThresholdRule, signal: Iterable[tuple[float, float]]) -> list[tuple[float, str, str | None]]:
    """Feed (seconds, value) pairs; returns (seconds, event type, severity) of every event."""
    state, out = ThresholdState(), []
    for sec, value in signal:
        state, events = step(state, Reading("s1", T0 + timedelta(seconds=sec), value), r)
        out += [(sec, type(e).__name__, getattr(e, "severity", None)) for e in events]
    return out


def every(start: float, stop: float, value: float, dt: float = 10) -> list[tuple[float, float]]:
    """One reading every `dt` s from `start` to `stop` inclusive."""
    n = round((stop - start) / dt)
    return [(start + i * dt, value) for i in range(n + 1)]


WARN: dict[str, Any] = {"warningHigh": 30, "forSeconds": 60, "hysteresis": 2}


def test_fires_exactly_at_start_plus_for_seconds_not_before() -> None:
    events = run(rule(**WARN), [(0, 25), *every(10, 100, 31)])
    assert events == [(70, "AlertOpened", "warning")]
    # one reading short of the duration: nothing
    assert run(rule(**WARN), [(0, 25), *every(10, 60, 31), (69.999, 31)]) == []


def test_a_dip_inside_resets_the_timer() -> None:
    signal = [*every(0, 50, 31), (55, 29.9), *every(60, 130, 31)]
    assert run(rule(**WARN), signal) == [(120, "AlertOpened", "warning")]


def test_exactly_at_the_threshold_is_not_beyond_it() -> None:
    assert run(rule(**WARN), every(0, 300, 30)) == []


def test_hysteresis_band_holds_and_below_it_clears_after_the_duration() -> None:
    signal = [
        *every(0, 60, 31),  # opens at 60
        *every(70, 300, 29),  # inside the threshold, not by more than 2: held
        *every(310, 400, 28),  # exactly 30 - 2: still held
        *every(410, 460, 27.9),  # clearing run starts at 410
        (465, 28.5),  # back in the band: the clearing run resets
        *every(470, 540, 27.9),
    ]
    assert run(rule(**WARN), signal) == [(60, "AlertOpened", "warning"), (530, "AlertResolved", None)]


def test_escalation_and_de_escalation_follow_the_duration() -> None:
    r = rule(warningHigh=30, criticalHigh=40, forSeconds=60, hysteresis=2)
    signal = [
        *every(0, 60, 35),  # warning at 60
        *every(70, 130, 45),  # critical at 130
        *every(140, 190, 39),  # in critical's band (38..40): held
        *every(200, 260, 35),  # inside critical by 5: warning at 260
        *every(270, 330, 41),  # back up: critical at 330
        *every(340, 400, 20),  # clears at 400: critical -> normal directly
    ]
    assert run(r, signal) == [
        (60, "AlertOpened", "warning"),
        (130, "AlertEscalated", "critical"),
        (260, "AlertEscalated", "warning"),
        (330, "AlertEscalated", "critical"),
        (400, "AlertResolved", None),
    ]


def test_critical_held_in_warning_band_de_escalates_to_warning_not_normal() -> None:
    r = rule(warningHigh=30, criticalHigh=40, forSeconds=0, hysteresis=2)
    assert run(r, [(0, 45), (10, 29), (20, 27)]) == [
        (0, "AlertOpened", "critical"),
        (10, "AlertEscalated", "warning"),  # 29 is within warning's band (>= 28)
        (20, "AlertResolved", None),
    ]


def test_levels_run_independently_warning_then_critical() -> None:
    r = rule(warningHigh=30, criticalHigh=40, forSeconds=60)
    signal = [*every(0, 20, 35), *every(30, 120, 45)]
    assert run(r, signal) == [(60, "AlertOpened", "warning"), (90, "AlertEscalated", "critical")]


def test_straight_to_critical_when_both_levels_are_due() -> None:
    r = rule(warningHigh=30, criticalHigh=40, forSeconds=60)
    assert run(r, every(0, 100, 45)) == [(60, "AlertOpened", "critical")]


def test_low_thresholds() -> None:
    r = rule(warningLow=5, criticalLow=0, forSeconds=30, hysteresis=1)
    signal = [
        *every(0, 30, 4),  # warning at 30
        *every(40, 70, -1),  # critical at 70
        *every(80, 110, 0.5),  # inside critical by 0.5 < 1: held
        *every(120, 150, 5.5),  # inside warning by 0.5: held, but critical -> warning at 150
        *every(160, 190, 6.5),  # clears at 190
    ]
    assert run(r, signal) == [
        (30, "AlertOpened", "warning"),
        (70, "AlertEscalated", "critical"),
        (150, "AlertEscalated", "warning"),
        (190, "AlertResolved", None),
    ]


def test_degf_thresholds_against_canonical_degc_readings() -> None:
    # 86 degF = 30 degC; a 3.6 degF hysteresis is 2 degC (a difference: no offset).
    r = rule("degF", warningHigh=86, forSeconds=0, hysteresis=3.6)
    assert r.unit == "degC" and r.high[1] == pytest.approx(30) and r.hysteresis == pytest.approx(2)
    assert run(r, [(0, 29.9), (10, 30.1), (20, 28.1), (30, 27.9)]) == [
        (10, "AlertOpened", "warning"),
        (30, "AlertResolved", None),
    ]


def test_kelvin_hysteresis_is_scaled_without_offset() -> None:
    r = rule("K", criticalHigh=373.15, hysteresis=5)
    assert r.high[2] == pytest.approx(100) and r.hysteresis == pytest.approx(5)


def test_out_of_order_readings_are_ignored_for_state() -> None:
    r = rule(**WARN)
    signal = [*every(0, 40, 31), (15, 10), *every(50, 60, 31)]  # the stale dip at 15 would reset the run
    assert run(r, signal) == [(60, "AlertOpened", "warning")]


def test_no_thresholds_never_alerts() -> None:
    assert run(rule(), [(0, 1e9), (10, -1e9)]) == []


def test_pending_level_and_since() -> None:
    r = rule(warningHigh=30, criticalHigh=40, forSeconds=60)
    state = ThresholdState()
    assert state.pending_level is None and state.pending_since is None
    state, _ = step(state, Reading("s1", T0, 35), r)
    assert state.pending_level == "warning" and state.pending_since == T0
    state, _ = step(state, Reading("s1", T0 + timedelta(seconds=10), 45), r)
    assert state.pending_level == "critical" and state.pending_since == T0 + timedelta(seconds=10)
    assert state.runs[1] == T0  # warning's run is still counted from the first reading
    state, _ = step(state, Reading("s1", T0 + timedelta(seconds=20), 20), r)
    assert state.pending_level is None and state.level == "normal"


def test_event_fields() -> None:
    r = rule(warningHigh=30, forSeconds=0)
    state, events = step(ThresholdState(), Reading("s1", T0, 31.5), r)
    assert events == [
        AlertOpened(
            "s1",
            "ahu-1",
            "threshold",
            "warning",
            T0,
            31.5,
            "s1 at 31.5 degC, above its warning threshold 30 degC for 0 s",
            "s1:threshold",
        )
    ]
    _, events2 = step(state, Reading("s1", T0 + timedelta(seconds=1), 20), r)
    (resolved,) = events2
    assert isinstance(resolved, AlertResolved) and resolved.dedup_key == "s1:threshold" and resolved.value == 20
    only: list[Event] = [*events, *events2]
    assert not any(isinstance(e, AlertEscalated) for e in only)


@settings(max_examples=300, deadline=None)
@given(
    signal=st.lists(st.tuples(st.floats(0.5, 30), st.floats(10, 60)), max_size=80),
    for_s=st.integers(0, 90),
)
def test_an_open_or_escalation_is_backed_by_for_seconds_of_readings_beyond_its_threshold(
    signal: list[tuple[float, float]], for_s: int
) -> None:
    r = rule(warningHigh=30, criticalHigh=45, forSeconds=for_s, hysteresis=1)
    state, t, seen = ThresholdState(), 0.0, []
    for dt, value in signal:
        t += dt
        seen.append((t, value))
        state, events = step(state, Reading("s1", T0 + timedelta(seconds=t), value), r)
        for e in events:
            if isinstance(e, AlertOpened | AlertEscalated) and (e.severity == "critical" or isinstance(e, AlertOpened)):
                limit = 45 if e.severity == "critical" else 30
                window = [v for ts, v in seen if ts >= t - for_s]
                assert all(v > limit for v in window)
                assert seen[0][0] <= t - for_s  # the run began at least for_s ago
