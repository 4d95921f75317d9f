"""Energy-saving detectors on synthetic week-long frames with a known waste, and on clean ones (no advice)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dtwin_ml import recommend as rec

INDEX = pd.date_range("2026-01-05", periods=7 * 144, freq="10min", tz="UTC")  # Monday 00:00 to Sunday 23:50
HOUR = INDEX.hour
WEEKDAY = INDEX.dayofweek < 5
WORK = WEEKDAY & (HOUR >= 7) & (HOUR < 19)
NOISE = np.random.default_rng(0).normal(0, 0.2, len(INDEX))


def _kinds(recs: list[rec.Recommendation]) -> list[str]:
    return [r.kind for r in recs]


def test_after_hours_load_is_found_with_its_energy_and_cost() -> None:
    evening = WEEKDAY & (HOUR >= 19) & (HOUR < 23)  # 4 h a weekday at the working load: 20 h in the week
    frame = pd.DataFrame({"power": np.where(WORK | evening, 20.0, 2.0) + NOISE}, index=INDEX)
    (r,) = rec.recommend("ahu-1", frame)
    assert r.kind == "after_hours" and r.asset == "ahu-1"
    assert r.kwh_saved == pytest.approx(20 * 18.0, rel=0.05)  # 20 h at 18 kW above the 2 kW night load
    assert r.cost_saved == pytest.approx(r.kwh_saved * 0.25, abs=0.01) and r.currency == "EUR"
    assert (r.period_start, r.period_end) == (INDEX[0], INDEX[-1] + pd.Timedelta(minutes=10))
    assert "kWh a year" in r.detail
    clean = pd.DataFrame({"power": np.where(WORK, 20.0, 2.0) + NOISE}, index=INDEX)
    assert rec.recommend("ahu-1", clean) == []


def test_occupied_hours_follow_the_site_time_zone() -> None:
    # Working 07-19 in New York is 12-24 UTC: a UTC schedule would call its afternoons after-hours, its own not.
    local = INDEX.tz_convert("America/New_York")
    work = (local.dayofweek < 5) & (local.hour >= 7) & (local.hour < 19)
    frame = pd.DataFrame({"power": np.where(work, 20.0, 2.0) + NOISE}, index=INDEX)
    assert _kinds(rec.recommend("a", frame)) == ["after_hours"]
    ny = rec.Settings(schedule=rec.Schedule("America/New_York"))
    assert rec.recommend("a", frame, ny) == []


def test_simultaneous_heating_and_cooling_from_powers_and_from_valves() -> None:
    overlap = (INDEX.dayofweek == 2) & (HOUR >= 10) & (HOUR < 14)  # Wednesday 10-14: 4 h
    heat = np.where(WORK, 5.0, 0.0)
    frame = pd.DataFrame({"heating_power": heat, "cooling_power": np.where(overlap, 3.0, 0.0)}, index=INDEX)
    (r,) = rec.recommend("fcu-1", frame)
    assert r.kind == "simultaneous_heat_cool" and r.kwh_saved == pytest.approx(4 * 3.0, rel=0.01)
    valves = pd.DataFrame(
        {
            "power": np.where(WORK, 10.0, 0.0),
            "heating_valve": np.where(WORK, 40.0, 0.0),
            "cooling_valve": np.where(overlap, 30.0, 0.0),
        },
        index=INDEX,
    )
    (r,) = [x for x in rec.recommend("fcu-2", valves) if x.kind == "simultaneous_heat_cool"]
    assert r.kwh_saved == pytest.approx(4 * 10.0 * 0.3, rel=0.01)
    apart = frame.assign(cooling_power=np.where(~WORK & (HOUR > 20), 3.0, 0.0))
    assert rec.recommend("fcu-1", apart) == []


def test_setpoint_drift_and_a_changed_setpoint() -> None:
    power = np.where(WORK, 10.0, 0.0)
    drift = pd.DataFrame(
        {"power": power, "zone_temp": np.where(WORK, 23.0, 19.0) + NOISE * 0.5, "zone_temp_setpoint": 21.0},
        index=INDEX,
    )
    (r,) = [x for x in rec.recommend("vav-1", drift) if x.kind == "setpoint_drift"]
    # 60 occupied hours at 10 kW, 2 K off, 6 %/K
    assert r.kwh_saved == pytest.approx(600 * 0.06 * 2, rel=0.05)
    sp = np.where(INDEX[-1] - pd.Timedelta(days=1) <= INDEX, 23.0, 21.0)
    changed = pd.DataFrame({"power": 5.0, "zone_temp": sp + NOISE * 0.3, "zone_temp_setpoint": sp}, index=INDEX)
    (r,) = rec.recommend("vav-2", changed)
    assert r.kind == "setpoint_changed" and "21.0 to 23.0" in r.detail
    assert r.kwh_saved == pytest.approx(145 / 6 * 5.0 * 0.06 * 2, rel=0.01)  # the last day's 145 steps at 5 kW
    clean = changed.assign(zone_temp=21.0 + NOISE * 0.3, zone_temp_setpoint=21.0)
    assert rec.recommend("vav-2", clean) == []


def test_rows_follow_the_table_columns() -> None:
    r = rec.Recommendation("a", "after_hours", "t", "d", 1.5, 0.38, "EUR", INDEX[0], INDEX[-1])
    (row,) = rec.rows([r], "m", "3")
    assert len(row) == len(rec.COLUMNS) and row[0] == "a" and row[-2:] == ("m", "3")
    assert row[7] == INDEX[0].to_pydatetime()
