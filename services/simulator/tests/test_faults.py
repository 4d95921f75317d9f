"""Each injected fault leaves its documented signature, and nothing outside its window and its sensors."""

from __future__ import annotations

import itertools
import statistics as st

import pytest

from dtwin_simulator import faults, times
from dtwin_simulator.faults import FaultSpec


def _slope_per_day(points: list[tuple[int, float]], day_ms: int) -> float:
    xs, ys = [t / day_ms for t, _ in points], [v for _, v in points]
    mx, my = st.fmean(xs), st.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def _one(demo, sim, spec: FaultSpec) -> tuple[faults.Fault, ...]:
    return faults.resolve([spec], demo.select(assets=[spec.asset]), sim.start)


def test_filter_clogging(demo, sim) -> None:
    ahu = demo.select(assets=["ahu-1"])
    fs = _one(demo, sim, FaultSpec(kind="filter_clogging", asset="ahu-1", start="+1d", duration="3d"))
    s = sim.collect(ahu, fs, days=5)
    speed = dict(s["ahu-1-supply-fan-speed"])
    # Filter resistance: dp normalised to full airflow (dp ∝ flow²), sampled while the fan runs.
    res = [(t, dp / (speed[t] / 100) ** 2) for t, dp in s["ahu-1-filter-dp"] if speed[t] > 20]
    day = sim.day

    def part(lo: float, hi: float) -> list[tuple[int, float]]:
        return [(t, r) for t, r in res if sim.start + lo * day <= t < sim.start + hi * day]

    assert abs(_slope_per_day(part(0, 1), day)) < 5  # Pa/day: flat before
    assert _slope_per_day(part(1, 4), day) > 80  # Pa/day: 2.5 x 140 Pa over 3 days = 117 Pa/day
    assert st.fmean(r for _, r in part(4, 5)) < 1.1 * st.fmean(r for _, r in part(0, 1))  # replaced at the end
    running = [(t, dp) for t, dp in s["ahu-1-filter-dp"] if speed[t] > 20]
    assert st.fmean(sim.on_day(running, 3)) > 2.0 * st.fmean(sim.on_day(running, 0))
    # Fan power at a given speed rises with the dirtier filter (+35 % at full severity).
    per_speed = [(t, p / (speed[t] / 100) ** 3) for t, p in s["ahu-1-power"] if speed[t] > 20]
    assert st.fmean(sim.on_day(per_speed, 3)) > 1.2 * st.fmean(sim.on_day(per_speed, 0))


def test_bearing_wear_and_failure_event(demo, sim) -> None:
    spec = FaultSpec(kind="bearing_wear", asset="chwp-1", start="+1d", duration="4d", failure=True)
    fs = _one(demo, sim, spec)
    vib = sim.collect(demo.select(assets=["chwp-1"]), fs, days=6)["chwp-1-vibration-rms"]
    medians = [st.median(sim.on_day(vib, d)) for d in range(6)]
    p99 = [st.quantiles(sim.on_day(vib, d), n=100)[98] for d in range(6)]
    assert medians[1:5] == sorted(medians[1:5])  # rises day after day
    assert medians[4] > 3 * medians[0]  # measured: 1.3 -> 6.9 mm/s
    assert p99[4] > 5 * p99[0]  # growing impacts: 1.6 -> 20 mm/s
    assert medians[5] < 1.2 * medians[0]  # bearing replaced
    records = faults.truth(fs)
    assert [r["kind"] for r in records] == ["bearing_wear", "failure"]
    assert records[1]["start"] == records[0]["end"] == times.iso(sim.start + 5 * sim.day)
    assert records[1]["parameters"] == {"cause": "bearing_wear"}


def test_refrigerant_leak(demo, sim) -> None:
    fs = _one(demo, sim, FaultSpec(kind="refrigerant_leak", asset="chiller-1", start="+1d", duration="2d"))
    s = sim.collect(demo.select(assets=["chiller-1"]), fs, days=3)
    sup, ret = s["chiller-1-chw-supply-temp"], s["chiller-1-chw-return-temp"]
    # The last 6 h of the leak against the same hours the day before it started.
    before, late = (sim.on_day(sup, d + 0.75, 0.25) for d in (0, 2))
    assert st.fmean(late) - st.fmean(before) > 2.5  # K; 4.5 K x progress (>= 0.875)
    dt_before = st.fmean(sim.on_day(ret, 0.75, 0.25)) - st.fmean(before)
    dt_late = st.fmean(sim.on_day(ret, 2.75, 0.25)) - st.fmean(late)
    assert dt_late < 0.8 * dt_before  # capacity (the ΔT it holds) falls


@pytest.mark.parametrize(
    ("kind", "asset", "sensor"),
    [
        ("stuck_sensor", "ahu-2", "ahu-2-supply-air-temp"),
        ("spiking_sensor", "hwp-1", "hwp-1-flow"),
        ("dropped_sensor", "vav-l2-north", "vav-l2-north-zone-co2"),
    ],
)
def test_sensor_faults_touch_only_their_window(demo, sim, kind: str, asset: str, sensor: str) -> None:
    part = demo.select(assets=[asset])
    spec = FaultSpec(kind=kind, asset=asset, sensor=sensor, start="+8h", duration="6h")  # type: ignore[arg-type]
    fs = faults.resolve([spec], part, sim.start)
    clean, faulty = sim.collect(part, days=1), sim.collect(part, fs, days=1)
    lo, hi = sim.start + 8 * 3_600_000, sim.start + 14 * 3_600_000
    for name in clean:
        outside = [p for p in clean[name] if not lo <= p[0] < hi]
        assert [p for p in faulty[name] if not lo <= p[0] < hi] == outside
        if name != sensor:
            assert faulty[name] == clean[name]
    window = [v for t, v in faulty[sensor] if lo <= t < hi]
    clean_window = [v for t, v in clean[sensor] if lo <= t < hi]
    if kind == "stuck_sensor":
        last_before = next(v for t, v in reversed(clean[sensor]) if t < lo)
        assert len(window) == len(clean_window) and set(window) == {last_before}
        assert st.pvariance(window) == 0 < st.pvariance(clean_window)
    elif kind == "spiking_sensor":
        span = 120.0  # validRange of hwp-1-flow
        big = sum(abs(a - b) > 0.2 * span for a, b in zip(window, clean_window, strict=True))
        assert 0.02 < big / len(window) < 0.09  # probability 0.05
    else:
        assert window == []
        gap = max(b - a for (a, _), (b, _) in itertools.pairwise(faulty[sensor]))
        assert gap >= hi - lo


def test_offline_device_publishes_nothing(demo, sim) -> None:
    part = demo.select(assets=["meter-hq-main"])
    fs = faults.resolve(
        [FaultSpec(kind="offline_device", asset="meter-hq-main", start="+1h", duration="30m")], part, sim.start
    )
    lo, hi = sim.start + 3_600_000, sim.start + 5_400_000
    from dtwin_simulator import stream

    stamps = [m.t_ms for m in stream.messages(part, fs, seed=7, start_ms=sim.start, end_ms=sim.start + 3 * 3_600_000)]
    assert not [t for t in stamps if lo <= t < hi]
    assert any(t < lo for t in stamps) and any(t >= hi for t in stamps)
    assert max(b - a for a, b in itertools.pairwise(stamps)) >= hi - lo


def test_truth_records(demo, sim) -> None:
    specs = faults.read_specs(
        """
faults:
  - {kind: filter_clogging, asset: ahu-1, start: +1d, duration: 3d, ramp: 2d, severity: 0.8}
  - {kind: spiking_sensor, asset: hwp-1, sensor: flow, start: 2026-01-05T10:00:00Z, duration: 3600, probability: 0.1}
  - {kind: offline_device, asset: ct-1, start: +2h, duration: 30m, id: ct-outage}
"""
    )
    records = faults.truth(faults.resolve(specs, demo, sim.start))
    assert [(r["id"], r["kind"], r["asset"]) for r in records] == [
        ("f1", "filter_clogging", "ahu-1"),
        ("f2", "spiking_sensor", "hwp-1"),
        ("ct-outage", "offline_device", "ct-1"),
    ]
    assert records[0]["sensors"] == ["ahu-1-filter-dp", "ahu-1-power"]
    assert records[0]["parameters"] == {"severity": 0.8, "ramp_s": 172800.0}
    assert (records[1]["start"], records[1]["end"]) == ("2026-01-05T10:00:00.000Z", "2026-01-05T11:00:00.000Z")
    assert records[1]["sensors"] == ["hwp-1-flow"] and records[1]["parameters"]["probability"] == 0.1
    assert len(records[2]["sensors"]) == 3


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("kind=filter_clogging,asset=hwp-1,start=+1h,duration=1d", "applies to AHU, Fan; hwp-1 is a Pump"),
        ("kind=refrigerant_leak,asset=hwp-1,start=+1h,duration=1d", "applies to AHU, Chiller, HeatPump"),
        ("kind=stuck_sensor,asset=ahu-1,sensor=nope,start=+1h,duration=1h", "ahu-1 has no sensor 'nope'"),
        ("kind=offline_device,asset=ghost,start=+1h,duration=1h", "no asset 'ghost'"),
        ("kind=bearing_wear,asset=boiler-1,start=+1h,duration=1h", "boiler-1 is a Boiler"),
        ("kind=stuck_sensor,asset=ahu-1,start=soon,duration=1h", "'soon' is not an instant"),
    ],
)
def test_bad_faults_say_what_to_fix(demo, sim, flag: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        faults.resolve([faults.parse_flag(flag)], demo, sim.start)
