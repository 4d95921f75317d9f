"""Features on hand-made series: causal, correct, and independent of which metrics an asset has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dtwin_ml import features


def _frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-05", periods=n, freq="10min", tz="UTC")
    hours = np.arange(n) / 6
    return pd.DataFrame(
        {
            "supply_air_temp": 14 + np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.1, n),
            "return_air_temp": 22 + rng.normal(0, 0.1, n),
            "vibration_rms": 2 + rng.normal(0, 0.2, n),
            "energy": np.cumsum(rng.uniform(1, 2, n)),
        },
        index=index,
    )


def test_changing_the_future_never_changes_the_past() -> None:
    frame = _frame()
    profile = features.Profile.fit(frame.iloc[:300])
    before = features.build(frame, profile=profile)
    changed = frame.copy()
    changed.iloc[400:] = changed.iloc[400:] * 3 + 50  # every metric, from step 400 on
    changed.iloc[450:460, 0] = np.nan
    after = features.build(changed, profile=profile)
    pd.testing.assert_frame_equal(before.iloc[:400], after.iloc[:400])
    assert not np.allclose(before.iloc[400:].fillna(0), after.iloc[400:].fillna(0))


def test_rolling_statistics_and_slope_on_a_ramp() -> None:
    index = pd.date_range("2026-01-05", periods=200, freq="10min", tz="UTC")
    frame = pd.DataFrame({"flow": np.arange(200, dtype=float)}, index=index)  # +1 per step = +6 per hour
    f = features.build(frame, features.FeatureConfig(windows=(6,), slope_windows=(12,)))
    assert f["flow:mean_6"].iloc[10] == pytest.approx(np.mean(np.arange(5, 11)))
    assert f["flow:max_6"].iloc[10] == 10 and f["flow:min_6"].iloc[10] == 5
    assert f["flow:std_6"].iloc[10] == pytest.approx(np.std(np.arange(5, 11), ddof=1))
    assert f["flow:slope_12"].iloc[50] == pytest.approx(6.0)


def test_pairs_from_names_and_config() -> None:
    metrics = ["chw_supply_temp", "chw_return_temp", "zone_temp", "zone_temp_setpoint", "power", "flow"]
    pairs = features.related_pairs(metrics, extra=[("power", "flow"), ("power", "missing")])
    assert ("chw_supply_temp", "chw_return_temp") in pairs
    assert ("zone_temp", "zone_temp_setpoint") in pairs
    assert ("power", "flow") in pairs and ("power", "missing") not in pairs
    frame = _frame()
    f = features.build(frame)
    delta = frame["supply_air_temp"] - frame["return_air_temp"]
    assert np.allclose(f["supply_air_temp-return_air_temp:delta"], delta)


def test_residual_against_the_learned_profile_and_counters() -> None:
    frame = _frame(24 * 6 * 14)
    profile = features.Profile.fit(frame)
    f = features.build(frame, profile=profile)
    # The daily sine is in the profile, so the residual is the noise plus the hour's spread around its median.
    assert f["supply_air_temp:resid"].abs().mean() < 0.3 < frame["supply_air_temp"].std()
    # A cumulative meter is used as increments: its value feature is the per-step consumption.
    assert f["energy:value"].iloc[1:].between(1, 2).all()


def test_spectral_energy_sees_a_new_oscillation_and_flat_sees_a_stuck_sensor() -> None:
    frame = _frame()
    frame.iloc[300:, 2] += 3 * np.sin(np.arange(300) * 2.5)  # a fast oscillation on the vibration signal
    frame.iloc[200:250, 1] = frame.iloc[199, 1]  # return air temperature stuck
    f = features.build(frame)
    assert f["vibration_rms:spec_energy"].iloc[400] > 20 * f["vibration_rms:spec_energy"].iloc[250]
    assert f["vibration_rms:spec_high"].iloc[400] > 0.5
    assert f["return_air_temp:flat"].iloc[240] == 1.0 and f["return_air_temp:flat"].iloc[150] == 0.0
    assert "supply_air_temp:spec_energy" not in f


def test_any_metric_set_and_calendar() -> None:
    index = pd.date_range("2026-01-10", periods=50, freq="1h", tz="UTC")  # a Saturday
    f = features.build(pd.DataFrame({"whatever": np.ones(50)}, index=index), features.FeatureConfig(timezone="UTC"))
    assert f["cal:weekend"].iloc[0] == 1.0 and f["cal:weekend"].iloc[48] == 0.0
    assert f["cal:hour_sin"].iloc[6] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        features.build(pd.DataFrame({"x": [1.0]}, index=pd.DatetimeIndex(["2026-01-01"])))
