"""Stale and offline detection, hot reload, and the no-duplicate-open property of the whole engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin_bridge.model import Reading, Route, Thresholds
from dtwin_bridge.rules import AlertEscalated, AlertOpened, AlertResolved, Engine, Event

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(sec: float) -> datetime:
    return T0 + timedelta(seconds=sec)


def route(sensor: str, asset: str = "ahu-1", interval: int = 10, **th: Any) -> Route:
    return Route(
        sensor, asset, sensor, f"t/{sensor}", "json", sensor, "degC",
        thresholds=Thresholds.from_dict(th), expected_interval_s=interval,
    )  # fmt: skip


def brief(events: list[Event]) -> list[tuple[str, str, str | None]]:
    return [(type(e).__name__, e.dedup_key, getattr(e, "severity", None)) for e in events]


def test_stale_after_three_intervals_and_resolved_by_a_reading() -> None:
    eng = Engine([route("s1"), route("s2")])
    assert eng.on_readings([Reading("s1", at(0), 20), Reading("s2", at(0), 20)]) == []
    assert eng.on_readings([Reading("s2", at(25), 20)]) == []
    assert eng.tick(at(29.9)) == []
    assert brief(eng.tick(at(30))) == [("AlertOpened", "s1:stale", "warning")]
    assert eng.tick(at(40)) == []  # still stale: no second open
    assert brief(eng.on_readings([Reading("s1", at(45), 20)])) == [("AlertResolved", "s1:stale", None)]
    assert eng.tick(at(50)) == []


def test_offline_only_when_all_sensors_of_the_asset_are_stale() -> None:
    eng = Engine([route("a1"), route("a2", interval=20), route("b1", asset="boiler")])
    eng.on_readings([Reading(s, at(0), 1) for s in ("a1", "a2", "b1")])
    eng.on_readings([Reading("b1", at(t), 1) for t in range(10, 100, 10)])
    assert brief(eng.tick(at(30))) == [("AlertOpened", "a1:stale", "warning")]  # a2 (60 s window) still fresh
    assert eng.tick(at(59)) == []
    assert brief(eng.tick(at(60))) == [
        ("AlertOpened", "a2:stale", "warning"),
        ("AlertOpened", "ahu-1:offline", "critical"),
    ]
    assert eng.offline_assets == {"ahu-1"}
    assert eng.tick(at(90)) == []
    # any sensor reporting brings the asset back; the other stays stale
    assert brief(eng.on_readings([Reading("a2", at(95), 1)])) == [
        ("AlertResolved", "a2:stale", None),
        ("AlertResolved", "ahu-1:offline", None),
    ]
    assert eng.offline_assets == frozenset()
    assert eng.tick(at(100)) == []


def test_a_sensor_that_never_reports_goes_stale_from_the_first_tick() -> None:
    eng = Engine([route("s1")])
    assert eng.tick(at(0)) == []
    assert brief(eng.tick(at(30))) == [
        ("AlertOpened", "s1:stale", "warning"),
        ("AlertOpened", "ahu-1:offline", "critical"),
    ]


def test_a_backfilled_old_reading_does_not_resolve_stale() -> None:
    eng = Engine([route("s1"), route("s2")])
    eng.on_readings([Reading("s1", at(0), 1), Reading("s2", at(0), 1)])
    eng.on_readings([Reading("s2", at(t), 1) for t in range(10, 110, 10)])
    assert brief(eng.tick(at(100))) == [("AlertOpened", "s1:stale", "warning")]
    assert eng.on_readings([Reading("s1", at(50), 1)]) == []  # 50 s old at the last check: still stale
    assert eng.tick(at(105)) == []
    assert brief(eng.on_readings([Reading("s1", at(104), 1)])) == [("AlertResolved", "s1:stale", None)]


def test_threshold_and_staleness_together_through_the_engine() -> None:
    eng = Engine([route("s1", warningHigh=30, forSeconds=20)])
    events = eng.on_readings([Reading("s1", at(t), 35) for t in (0, 10, 20)])
    assert brief(events) == [("AlertOpened", "s1:threshold", "warning")]
    assert eng.on_readings([Reading("unknown", at(30), 99)]) == []


def test_hot_reload_keeps_state_of_remaining_sensors_and_resolves_removed_ones() -> None:
    eng = Engine([route("s1", warningHigh=30), route("s2", warningHigh=30), route("x", asset="pump")])
    eng.tick(at(0))
    eng.on_readings([Reading("s1", at(0), 35), Reading("s2", at(0), 35), Reading("x", at(0), 1)])
    eng.on_readings([Reading("s1", at(t), 35) for t in range(10, 50, 10)])
    eng.on_readings([Reading("s2", at(t), 35) for t in range(10, 50, 10)])
    assert brief(eng.tick(at(30))) == [
        ("AlertOpened", "x:stale", "warning"),
        ("AlertOpened", "pump:offline", "critical"),
    ]
    # s1 stays (with a new threshold), s2 and the pump go, s3 is new
    events = eng.replace_routes([route("s1", warningHigh=50), route("s3")], at(50))
    assert brief(events) == [
        ("AlertResolved", "s2:threshold", None),
        ("AlertResolved", "x:stale", None),
        ("AlertResolved", "pump:offline", None),
    ]
    assert eng.threshold_state("s1").level == "warning"  # kept; re-judged on the next reading
    assert brief(eng.on_readings([Reading("s1", at(55), 35)])) == [("AlertResolved", "s1:threshold", None)]
    assert eng.offline_assets == frozenset()
    assert eng.seen("s3") is None


def test_tick_never_runs_backwards() -> None:
    eng = Engine([route("s1")])
    eng.tick(at(100))
    assert eng.tick(at(0)) == []


# -- property: per dedup key, opens and resolves alternate, escalations only while open -------------------

_step = st.tuples(
    st.sampled_from(["s1", "s2", "s3", "tick"]),
    st.floats(0, 40),  # seconds since the previous step (0: same instant)
    st.floats(-20, 60, allow_nan=False),
    st.booleans(),  # out of order: go back in time for this reading
)


@settings(max_examples=300, deadline=None)
@given(
    script=st.lists(_step, max_size=120),
    for_s=st.integers(0, 60),
    hyst=st.floats(0, 5),
)
def test_no_duplicate_open_alerts(script: list[tuple[str, float, float, bool]], for_s: int, hyst: float) -> None:
    th = {"warningHigh": 30, "criticalHigh": 45, "warningLow": 0, "criticalLow": -10}
    routes = [
        route(s, asset="a" if s != "s3" else "b", **th, forSeconds=for_s, hysteresis=hyst) for s in ("s1", "s2", "s3")
    ]
    eng = Engine(routes)
    t, events = 0.0, []
    for what, dt, value, back in script:
        t += dt
        if what == "tick":
            events += eng.tick(at(t))
        else:
            events += eng.on_readings([Reading(what, at(t - 100 if back else t), value)])
    events += eng.replace_routes(routes[:2], at(t))  # dropping s3 resolves its alerts, in alternation too
    open_now: dict[str, bool] = {}
    for e in events:
        was_open = open_now.get(e.dedup_key, False)
        if isinstance(e, AlertOpened):
            assert not was_open, f"second open for {e.dedup_key}"
            open_now[e.dedup_key] = True
        elif isinstance(e, AlertResolved):
            assert was_open, f"resolve without open for {e.dedup_key}"
            open_now[e.dedup_key] = False
        else:
            assert isinstance(e, AlertEscalated) and was_open and e.severity != e.previous


WALL = T0 + timedelta(days=3)  # the wall clock while history from T0 is replayed


def test_replayed_history_is_judged_in_stream_time() -> None:
    """At 60x, readings stamped days ago arrive now: judged by the wall every sensor would be stale. In stream
    time only the sensor that really stops reporting goes stale, after three of its intervals."""
    eng = Engine([route("s1"), route("s2")])
    for k in range(0, 120):  # 10 simulated minutes, one 10 s round per 1/6 wall second
        wall = WALL + timedelta(seconds=k / 6)
        readings = [Reading("s2", at(10 * k), 20)] + ([Reading("s1", at(10 * k), 20)] if k < 60 else [])
        assert eng.on_readings(readings, arrived=wall) == []
        events = eng.tick(wall)
        if 10 * k < 620:  # s1's last reading is at 590 s: stale from 620 s of stream time
            assert events == [], k
        elif 10 * k == 620:
            assert brief(events) == [("AlertOpened", "s1:stale", "warning")]
    assert eng.judged_at(WALL + timedelta(seconds=20)) == at(1190) + timedelta(seconds=20 - 119 / 6)


def test_a_silent_stream_is_still_found_by_the_wall() -> None:
    eng = Engine([route("s1")])
    eng.on_readings([Reading("s1", at(0), 20)], arrived=WALL)
    assert eng.tick(WALL + timedelta(seconds=29)) == []
    assert brief(eng.tick(WALL + timedelta(seconds=30))) == [
        ("AlertOpened", "s1:stale", "warning"),
        ("AlertOpened", "ahu-1:offline", "critical"),
    ]


def test_a_device_clock_ahead_cannot_push_stream_time_past_the_wall() -> None:
    eng = Engine([route("s1"), route("s2")])
    eng.on_readings([Reading("s1", at(300), 20), Reading("s2", at(0), 20)], arrived=at(0))  # s1 runs 5 min ahead
    assert eng.judged_at(at(5)) == at(5)
    assert eng.tick(at(29)) == []


def test_restored_alerts_are_resolved_by_a_restarted_engine() -> None:
    """A replica restarts while alerts are open: it seeds its state from the alerts table, so the next fresh
    reading resolves them (and a silent sensor stays stale without a second open)."""
    eng = Engine([route("s1"), route("s2"), route("t1", asset="pump", warningHigh=30, forSeconds=20)])
    restored = eng.restore(
        [
            ("stale", "s1", "ahu-1", "warning"),
            ("stale", "s2", "ahu-1", "warning"),
            ("offline", None, "ahu-1", "critical"),
            ("threshold", "t1", "pump", "warning"),
            ("stale", "gone", "ahu-1", "warning"),
        ]
    )
    assert restored == 4  # "gone" is not routed any more
    assert eng.tick(at(0)) == []  # nothing reported yet: still stale, still offline, no duplicate opens
    assert brief(eng.on_readings([Reading("s1", at(1), 20)])) == [
        ("AlertResolved", "s1:stale", None),
        ("AlertResolved", "ahu-1:offline", None),
    ]
    assert eng.tick(at(2)) == []  # s2 stays stale
    assert eng.on_readings([Reading("t1", at(0), 25), Reading("t1", at(10), 25)]) == []
    assert brief(eng.on_readings([Reading("t1", at(20), 25)])) == [("AlertResolved", "t1:threshold", None)]


def test_ticks_before_a_replayed_stream_do_not_pin_the_clock_at_wall_time() -> None:
    """`make up` starts the bridge, ticks at wall time, then a backfill days behind the wall arrives: staleness must
    be judged in the stream's time from then on, or no sensor of the replay could ever go stale."""
    wall = at(10 * 86400)
    eng = Engine([route("s1"), route("s2")])
    assert eng.tick(wall) == []  # nothing seen yet: judged at wall time
    eng.on_readings([Reading("s1", at(0), 20), Reading("s2", at(0), 20)], arrived=wall)
    eng.on_readings([Reading("s2", at(25), 20)], arrived=wall)
    assert eng.tick(wall) == []  # stream time at(25) + no wall time since: s1 (last at 0) not yet stale
    assert brief(eng.tick(wall + timedelta(seconds=5))) == [("AlertOpened", "s1:stale", "warning")]
