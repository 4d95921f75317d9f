"""Signals are plausible: inside validRange, correlated as physics says, diurnal and weekly, in any unit."""

from __future__ import annotations

import itertools
import statistics as st
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dtwin_core import units
from dtwin_simulator import fleet, times
from dtwin_simulator.signals import roles

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(scope="module")
def winter(demo, sim):
    """One week of the whole demo campus from Monday 5 January 2026 (weekend included)."""
    return sim.collect(demo, days=7)


@pytest.fixture(scope="module")
def summer(demo, sim):
    start = times.parse_instant_ms("2026-07-06T00:00:00Z", 0)  # a Monday
    return type(sim)(start=start).collect(demo, days=2)


def _local(t_ms: int) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, PARIS)


def test_every_value_within_valid_range(demo, winter, summer) -> None:
    for s in demo.sensors:
        lo, hi = s.valid_range or (float("-inf"), float("inf"))
        values = [v for _, v in winter[s.name] + summer[s.name]]
        assert lo <= min(values) and max(values) <= hi, s.name
        assert len(set(values)) > 5, f"{s.name} is (nearly) constant"


def _pairs(series, a: str, b: str) -> tuple[list[float], list[float]]:
    other = dict(series[b])
    common = [(v, other[t]) for t, v in series[a] if t in other]
    return [x for x, _ in common], [y for _, y in common]


@pytest.mark.parametrize(
    ("season", "a", "b", "sign"),
    [
        ("winter", "ahu-1-supply-fan-speed", "ahu-1-power", +1),  # affinity laws: P ∝ n³
        ("winter", "ahu-1-supply-fan-speed", "ahu-1-filter-dp", +1),  # dp ∝ flow²
        ("winter", "chwp-1-flow", "chwp-1-motor-current", +1),
        ("winter", "chwp-1-flow", "chwp-1-discharge-pressure", +1),
        ("winter", "fan-roof-1-fan-speed", "fan-roof-1-motor-current", +1),
        ("winter", "vav-l2-north-airflow", "vav-l2-north-damper-position", +1),
        ("winter", "boiler-1-supply-water-temp", "boiler-1-gas-flow", +1),  # both follow the cold
        ("winter", "meter-hq-main-active-power", "meter-hq-main-voltage-ll", -1),  # voltage sags under load
        # In January the chillers idle at minimum load and noise hides the rest: look in July.
        ("summer", "chiller-1-chw-supply-temp", "chiller-1-chw-return-temp", +1),
        ("summer", "chiller-1-chw-return-temp", "chiller-1-compressor-power", +1),
        ("summer", "ct-1-fan-speed", "ct-1-basin-temp", +1),  # a warmer, busier day: faster fan, warmer basin
    ],
)
def test_correlated_pairs(winter, summer, season: str, a: str, b: str, sign: int) -> None:
    series = winter if season == "winter" else summer
    x, y = _pairs(series, a, b)
    assert len(x) > 1000
    assert sign * st.correlation(x, y) > 0.5


def test_weekly_and_diurnal_profile(winter) -> None:
    power = winter["meter-hq-main-active-power"]

    def mean(day: int, hours: tuple[int, int]) -> float:
        return st.fmean(v for t, v in power if _local(t).weekday() == day and hours[0] <= _local(t).hour < hours[1])

    assert mean(2, (10, 16)) > 1.4 * mean(6, (10, 16))  # Wednesday vs Sunday
    assert mean(2, (10, 16)) > 1.4 * mean(2, (1, 5))  # day vs night
    speed = winter["ahu-1-supply-fan-speed"]
    assert {v for t, v in speed if _local(t).hour in (1, 2, 3)} == {0.0}  # off at night
    assert {v for t, v in speed if _local(t).weekday() == 6} == {0.0}  # and on Sundays
    assert min(v for t, v in speed if _local(t).weekday() < 5 and 9 <= _local(t).hour < 17) > 40


def test_summer_works_the_chillers_harder(winter, summer) -> None:
    jan = st.fmean(v for _, v in winter["chiller-1-compressor-power"][: len(summer["chiller-1-compressor-power"])])
    jul = st.fmean(v for _, v in summer["chiller-1-compressor-power"])
    assert jul > 1.5 * jan
    assert st.fmean(v for _, v in summer["boiler-1-gas-flow"]) < 0.5 * st.fmean(
        v for _, v in winter["boiler-1-gas-flow"]
    )


def test_energy_register_integrates_power(winter) -> None:
    energy = [v for _, v in winter["meter-hq-main-energy"]]
    assert all(b >= a for a, b in itertools.pairwise(energy))
    power = winter["meter-hq-main-active-power"]
    hours = (power[-1][0] - power[0][0]) / 3_600_000
    assert energy[-1] - energy[0] == pytest.approx(st.fmean(v for _, v in power) * hours, rel=0.03)


def _one_ahu(unit_of: dict[str, str]) -> list[dict]:
    ranges = {"degC": (-10, 60), "degF": (0, 150), "psi": (0, 1), "inH2O": (0, 5), "Pa": (0, 1000), "W": (0, 45000)}
    ranges |= {"kW": (0, 45), "cfm": (0, 100000), "m3/h": (0, 100000)}
    docs: list[dict] = [
        {"kind": "Site", "metadata": {"name": "s"}, "spec": {"location": {"timezone": "Europe/Paris"}}},
        {
            "kind": "Asset",
            "metadata": {"name": "a"},
            "spec": {"siteRef": "s", "kind": "AHU", "ratedPowerKw": 30, "location": {"floor": "roof"}},
        },
    ]
    for metric, unit in unit_of.items():
        lo, hi = ranges[unit]
        spec = {"assetRef": "a", "metric": metric, "topic": "t", "unit": unit, "validRange": {"min": lo, "max": hi}}
        docs.append({"kind": "SensorBinding", "metadata": {"name": metric}, "spec": spec})
    return docs


def test_values_come_in_the_binding_unit(sim) -> None:
    pairs = {"supply_air_temp": "degC", "supply_temp_f": "degF", "filter_dp": "Pa", "filter_dp_in": "inH2O"}
    pairs |= {"fan_power": "kW", "fan_power_w": "W", "airflow": "m3/h", "airflow_cfm": "cfm"}
    s = sim.collect(fleet.build(_one_ahu(pairs)), days=2)
    for canonical, other in [
        ("supply_air_temp", "supply_temp_f"),
        ("filter_dp", "filter_dp_in"),
        ("fan_power", "fan_power_w"),
        ("airflow", "airflow_cfm"),
    ]:
        a = st.fmean(v for _, v in s[canonical])
        b = st.fmean(units.to_canonical(v, pairs[other]) for _, v in s[other])
        assert b == pytest.approx(a, rel=0.02), other
    running = [v for _, v in s["supply_temp_f"] if v > 0]
    assert 50 < st.fmean(running) < 70  # degF, a supply-air temperature


@pytest.mark.parametrize(
    ("metric", "unit", "role"),
    [
        ("supply_air_temp", "degC", "supply_temp"),
        ("chw_return_temp", "degF", "return_temp"),
        ("condenser_water_temp", "degC", "condenser_temp"),
        ("flue_gas_temp", "degC", "flue_temp"),
        ("supply_fan_speed", "percent", "speed"),
        ("fan_speed", "rpm", "speed"),
        ("filter_dp", "Pa", "filter_dp"),
        ("filter_differential_pressure", "inH2O", "filter_dp"),
        ("discharge_pressure", "kPa", "pressure"),
        ("gas_flow", "m3/h", "gas_flow"),
        ("airflow", "L/s", "flow"),
        ("motor_current", "A", "current"),
        ("energy", "kWh", "energy"),
        ("active_power", "kW", "power"),
        ("power_factor", "percent", "walk"),
        ("zone_co2", "ppm", "co2"),
        ("fan_vibration_rms", "mm/s", "vibration"),
        ("bearing_accel", "g", "vibration"),  # by unit
        ("winding", "degC", "temp"),  # by unit
        ("run_hours", "count", "count"),
        ("alarm", "bool", "state"),
        ("supply_fan_speed", "kPa", "pressure"),  # the unit wins over a name it contradicts
    ],
)
def test_roles(metric: str, unit: str, role: str) -> None:
    assert roles.classify(metric, unit) == role
