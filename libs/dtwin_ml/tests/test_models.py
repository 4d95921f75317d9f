"""Each model on a small synthetic series whose right answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dtwin_ml import energy, features
from dtwin_ml.anomaly import AnomalyModel
from dtwin_ml.events import Window, episodes, score
from dtwin_ml.failure import FailureModel, health_inputs, labels

STEP = pd.Timedelta(minutes=10)


def _asset(n: int, seed: int, ramp_at: int | None = None, step_at: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-05", periods=n, freq="10min", tz="UTC")
    vib = 2 + rng.normal(0, 0.1, n)
    cur = 10 + np.sin(np.arange(n) * 2 * np.pi / 144) + rng.normal(0, 0.1, n)
    if ramp_at is not None:
        k = np.arange(n - ramp_at)
        vib[ramp_at:] += 4 * (k / (n - ramp_at)) ** 2
    if step_at is not None:
        cur[step_at:] += 3
    return pd.DataFrame({"vibration_rms": vib, "motor_current": cur}, index=index)


def test_a_step_change_is_detected_and_explained() -> None:
    frame = _asset(144 * 10, 1, step_at=144 * 8)
    profile = features.Profile.fit(frame.iloc[: 144 * 4])
    f = features.build(frame, profile=profile)
    model = AnomalyModel().fit(f.iloc[144 * 4 : 144 * 7])
    s = model.score(f)
    assert ((s >= 0) & (s < 1)).all()
    before, after = s[144 * 2 : 144 * 8], s[144 * 8 : 144 * 8 + 12]
    assert after.max() > 0.9 and np.quantile(before, 0.99) < after.max()
    flag = s >= 0.9
    fault = Window("a", frame.index[144 * 8], frame.index[-1], "step", "f1")
    t = score(pd.DatetimeIndex(frame.index), flag & (np.arange(len(s)) >= 144 * 7), [fault])
    assert t.detected == 1 and t.precision == 1.0
    top = model.explain(f.iloc[[144 * 8 + 3]])[0]
    assert top[0][0].startswith("motor_current:")


def test_events_count_episodes_and_ignore_alarms_already_ringing() -> None:
    index = pd.date_range("2026-01-05", periods=100, freq="10min", tz="UTC")
    flag = np.zeros(100, dtype=bool)
    flag[[10, 11, 12, 40, 41, 70]] = True
    assert len(episodes(index, flag, merge=6)) == 3
    early = Window("a", index[11], index[30], id="ringing")  # the alert began before the fault: not a detection
    inside = Window("a", index[35], index[50], id="hit")
    t = score(index, flag, [early, inside], merge=6, ignore=[Window("a", index[65], index[75])])
    assert (t.detected, t.events, t.true_episodes, t.episodes) == (1, 2, 1, 2)  # episode 1 ran on: false
    assert t.first_alert == {"hit": index[40]}


def _failure_set(seeds: range) -> tuple[pd.DataFrame, np.ndarray, list, list]:
    xs, ys, metas = [], [], []
    for seed in seeds:
        n = 144 * 12
        fail_at = 144 * 11
        frame = _asset(n, seed, ramp_at=144 * 6)
        frame.iloc[fail_at:, 0] = 2 + np.random.default_rng(seed).normal(0, 0.1, n - fail_at)  # repaired
        f = features.build(frame, profile=features.Profile.fit(frame.iloc[:720]))
        scaler = AnomalyModel(select="all").fit(f.iloc[144:720])
        x = health_inputs(scaler, f)
        failure = frame.index[fail_at]
        xs.append(x)
        ys.append(labels(pd.DatetimeIndex(frame.index), [failure], pd.Timedelta(hours=72)))
        metas.append((frame.index, failure, frame.index[144 * 6]))
    return pd.concat(xs), np.concatenate(ys), metas, xs


def test_a_ramp_to_failure_is_predicted_with_positive_lead() -> None:
    x, y, _, _ = _failure_set(range(4))
    model = FailureModel(n_estimators=60).fit(x, y)
    _, _, metas, xs = _failure_set(range(10, 12))
    for (index, failure, _), xi in zip(metas, xs, strict=True):
        p = model.predict_proba(xi)
        assert p[: 144 * 5].max() < 0.5  # healthy days
        alert = np.flatnonzero((p >= 0.5) & (index < failure))
        assert len(alert), "never predicted"
        lead_h = (failure - index[alert[0]]).total_seconds() / 3600
        assert 0 < lead_h <= 24 * 5


def test_a_periodic_load_is_forecast_better_than_persistence() -> None:
    rng = np.random.default_rng(3)
    index = pd.date_range("2026-01-05", periods=24 * 42, freq="1h", tz="UTC")
    hour, dow = index.hour.to_numpy(), index.dayofweek.to_numpy()
    base = 50 + 40 * ((hour >= 8) & (hour < 18) & (dow < 5))
    y = pd.Series(base + rng.normal(0, 5, len(index)), index=index)
    split = index[24 * 28]
    model = energy.EnergyForecaster(max_iter=150).fit([("m", y[y.index < split], "UTC")])
    test = y.index >= split
    pred = model.predict("m", y)[test]
    ours = energy.mape(y[test], pred)
    assert ours < 0.8 * min(
        energy.mape(y[test], energy.persistence(y, 24)[test]), energy.mape(y[test], energy.persistence(y, 168)[test])
    )
    assert ours < 10


def test_in_range_spikes_are_detected_from_the_bucket_extremes() -> None:
    rng = np.random.default_rng(5)
    n = 10 * 720  # ten days read every 2 min
    index = pd.date_range("2026-01-05", periods=n, freq="2min", tz="UTC")
    raw = pd.Series(50 + 20 * np.sin(2 * np.pi * np.arange(n) / 720) + rng.normal(0, 0.5, n), index, name="current")
    at = np.flatnonzero(rng.random(n) < 0.05)
    at = at[(at >= 9 * 720) & (at < 9 * 720 + 360)]  # day 10, 00:00-12:00: spikes of 12-20, inside the 30-70 swing
    raw.iloc[at] += rng.choice([-1.0, 1.0], len(at)) * rng.uniform(12, 20, len(at))
    means, stats = features.bucket_stats(raw, "10min")
    fault = Window("a", means.index[9 * 144], means.index[9 * 144 + 72], "spiking_sensor", "s1")
    scored = np.arange(len(means)) >= 7 * 144  # days 8-10: two clean days, then the fault
    detected = {}
    for name, extremes in (("with extremes", stats), ("means only", None)):
        profile = features.Profile.fit(means.iloc[144 : 4 * 144].to_frame(), stats=stats.iloc[144 : 4 * 144])
        f = features.build(means.to_frame(), profile=profile, stats=extremes)
        model = AnomalyModel(top=1).fit(f.iloc[4 * 144 : 7 * 144])
        flag = persist_flags(model.score(f) >= 0.8, 3) & scored
        t = score(pd.DatetimeIndex(means.index), flag, [fault])
        detected[name] = t
        if extremes is not None:
            assert t.detected == 1 and t.precision == 1.0, (t.detected, t.episodes)
            top = model.explain(f.loc[[t.first_alert["s1"]]])[0]
            assert top[0][0].startswith("current:spike")
    assert detected["means only"].detected == 0  # averaged away in the 10-minute means


def persist_flags(flag: np.ndarray, k: int) -> np.ndarray:
    s = pd.Series(flag.astype(float)).rolling(k, min_periods=k).min()
    return np.asarray(s.fillna(0).to_numpy() > 0)
