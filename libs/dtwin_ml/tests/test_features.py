"""Features on hand-made series: causal, correct, and independent of which metrics an asset has."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dtwin_ml import features
from dtwin_ml.anomaly import anomaly_columns


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


def _readings(days: int = 6, seed: int = 3) -> pd.Series:
    """A load-cycling signal read every 2 min: a daily swing much wider than its noise."""
    rng = np.random.default_rng(seed)
    n = days * 720
    index = pd.date_range("2026-01-05", periods=n, freq="2min", tz="UTC")
    hours = np.arange(n) / 30
    return pd.Series(50 + 20 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.5, n), index, name="motor_current")


def test_in_range_spikes_survive_bucketing_in_the_extremes() -> None:
    raw = _readings()
    spiky = raw.copy()
    rng = np.random.default_rng(7)
    at = np.flatnonzero(rng.random(len(raw)) < 0.05)
    at = at[at >= 5 * 720]  # spikes on day 5 only, 12-20 units: inside the signal's normal 30-70 range
    spiky.iloc[at] += rng.choice([-1.0, 1.0], len(at)) * rng.uniform(12, 20, len(at))
    means, stats = features.bucket_stats(spiky, "10min")
    assert len(means) == 6 * 144 and stats["motor_current:count"].eq(5).all()
    assert stats["motor_current:max"].max() < 100 and stats["motor_current:min"].min() > 0
    f = features.build(means.to_frame(), stats=stats)
    normal, spiking = f.iloc[144 : 5 * 144], f.iloc[5 * 144 + 36 :]
    # The spike feature jumps several-fold, the means-only outlier level far less.
    assert spiking["motor_current:spike_36"].median() > 4 * normal["motor_current:spike_36"].quantile(0.99)
    gain_spike = spiking["motor_current:spike"].mean() / normal["motor_current:spike"].mean()
    gain_jump = spiking["motor_current:jump"].mean() / normal["motor_current:jump"].mean()
    assert gain_spike > 2 * gain_jump
    # Without the extremes the features simply are not there (the means-only history of before).
    assert "motor_current:spike" not in features.build(means.to_frame())


def test_still_and_stuck_see_a_frozen_transmitter_but_not_one_resting_at_zero() -> None:
    raw = _readings(days=4)
    hours = (np.arange(len(raw)) / 30) % 24
    raw[(hours < 6) | (hours >= 20)] = 0.0  # the asset is off at night and its transmitter reads exactly 0
    raw.iloc[3 * 720 + 300 : 3 * 720 + 500] = raw.iloc[3 * 720 + 299]  # day 4, 10:00-16:40: frozen at ~70
    means, stats = features.bucket_stats(raw, "10min")
    profile = features.Profile.fit(means.iloc[:288].to_frame(), stats=stats.iloc[:288])
    assert profile.rest["motor_current"] == [0.0]
    f = features.build(means.to_frame(), profile=profile, stats=stats)
    still, stuck = f["motor_current:still"], f["motor_current:stuck"]
    night, day = slice(3 * 144 + 12, 3 * 144 + 30), slice(3 * 144 + 42, 3 * 144 + 60)  # day 4, 02:00-05:00, 07:00-10:00
    frozen = slice(3 * 144 + 66, 3 * 144 + 100)  # buckets 1 h or more into the frozen span
    assert still.iloc[night].eq(1.0).all() and stuck.iloc[night].eq(0.0).all()  # resting: still, not stuck
    assert still.iloc[day].eq(0.0).all() and stuck.iloc[day].eq(0.0).all()
    assert stuck.iloc[frozen].eq(1.0).all()
    # The anomaly columns take `stuck` (not `still`, which is 1 every night) and `spike`.
    cols = anomaly_columns(f.columns)
    assert "motor_current:stuck" in cols and "motor_current:spike" in cols and "motor_current:still" not in cols
    # Causal like every feature: a later freeze does not change earlier rows.
    later = raw.copy()
    later.iloc[-100:] = later.iloc[-101]
    m2, s2 = features.bucket_stats(later, "10min")
    pd.testing.assert_frame_equal(features.build(m2.to_frame(), profile=profile, stats=s2).iloc[:-25], f.iloc[:-25])
