"""Bundles score a window's last row exactly as the evaluation scores that row of the whole history.

The history is a real simulated one (the trainer's quick `sim` source: the plant site, 15 days, faults injected),
fitted by the trainer's own code; every window is cut from it the way a live scorer would send it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dtwin_ml.bundle import AnomalyBundle, EnergyBundle, FailureBundle, lookback
from dtwin_ml.features import FeatureConfig
from dtwin_ml.window import WindowError, from_frames, tail, to_frames
from dtwin_trainer import train


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def assets() -> list[Any]:
    return train.assets_of("sim", train.SourceArgs(), _quiet)


def _sample(n: int, flags: np.ndarray, lo: int) -> list[int]:
    """Rows worth checking: a spread over the history plus the first rows of alert episodes and their ends."""
    rng = np.random.default_rng(0)
    edges = np.flatnonzero(np.diff(flags.astype(int)) != 0) + 1
    rows = set(rng.integers(lo, n, 12).tolist()) | {int(e) for e in edges[:12] if e >= lo} | {n - 1}
    return sorted(rows)


def _check_windows(bundle: AnomalyBundle | FailureBundle, a: Any, key: str) -> int:
    stats = a.run.stats.get(a.asset)
    whole = bundle.predict_frame(a.key, a.frame, stats)
    rows = _sample(len(a.frame), whole["alert"].to_numpy(), bundle.lookback_steps - 1)
    windows = [json.loads(json.dumps(tail(a.key, a.frame, stats, i, bundle.lookback_steps))) for i in rows]
    got = bundle.predict(windows)
    for i, g in zip(rows, got, strict=True):
        want = whole.iloc[i]
        assert g["timestamp"] == whole.index[i].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert g[key] == pytest.approx(float(want[key]), abs=1e-6)
        assert g["alert"] == bool(want["alert"]), (i, g)
        assert [t["feature"] for t in g["top"]] == [t["feature"] for t in want["top"]]
    return int(whole["alert"].sum())


def test_window_round_trip(assets: list[Any]) -> None:
    a = assets[0]
    stats = a.run.stats[a.asset]
    w = json.loads(json.dumps(from_frames(a.key, a.frame.iloc[:200], stats.iloc[:200])))
    frame, got = to_frames(w)
    pd.testing.assert_frame_equal(frame, a.frame.iloc[:200], check_freq=False, check_names=False)
    assert got is not None
    pd.testing.assert_frame_equal(got, stats.iloc[:200].sort_index(axis=1), check_freq=False, check_names=False)
    broken = {**w, "timestamps": w["timestamps"][:10] + w["timestamps"][11:]}
    with pytest.raises(WindowError, match="regular"):
        to_frames(broken)


def test_anomaly_windows_score_like_the_whole_history(assets: list[Any]) -> None:
    bundle, _ = train.fit("anomaly", assets, _quiet)
    assert isinstance(bundle, AnomalyBundle)
    assert bundle.lookback_steps == lookback(FeatureConfig(), bundle.persist) >= 144
    alerts = 0
    for a in assets[:4]:
        whole = bundle.predict_frame(a.key, a.frame, a.run.stats.get(a.asset))
        # The evaluation's own score of every row.
        np.testing.assert_allclose(whole["score"].to_numpy(), a.extra["anomaly"], rtol=0, atol=1e-12)
        alerts += _check_windows(bundle, a, "score")
    assert alerts > 0  # some of the sampled rows are alert edges
    unknown = tail("elsewhere/pump-9", assets[0].frame, None, 300, bundle.lookback_steps)
    assert bundle.predict([unknown])[0] == {
        "asset": "elsewhere/pump-9",
        "timestamp": unknown["timestamps"][-1],
        "known": False,
        "score": None,
        "alert": False,
        "top": [],
    }
    with pytest.raises(WindowError, match="needs"):
        bundle.predict([tail(assets[0].key, assets[0].frame, None, 300, 20)])


def test_failure_windows_score_like_the_whole_history(assets: list[Any]) -> None:
    bundle, _ = train.fit("failure", assets, _quiet)
    assert isinstance(bundle, FailureBundle)
    for a in assets[:3]:
        whole = bundle.predict_frame(a.key, a.frame, a.run.stats.get(a.asset))
        np.testing.assert_allclose(whole["probability"].to_numpy(), a.extra["failure"], rtol=0, atol=1e-12)
        _check_windows(bundle, a, "probability")
    out = bundle.predict([tail(assets[0].key, assets[0].frame, None, 400, bundle.lookback_steps)])[0]
    assert out["horizon_h"] == 72.0 and 0.0 <= out["probability"] <= 1.0 and len(out["top"]) == 3


def test_energy_window_at_midnight_is_the_evaluations_day_ahead(assets: list[Any]) -> None:
    bundle, _ = train.fit("energy", assets, _quiet)
    assert isinstance(bundle, EnergyBundle)
    a = next(a for a in assets if "active_power" in a.frame)
    whole = bundle.predict_frame(a.key, a.frame)
    end = int(np.flatnonzero(a.frame.index == a.split - pd.Timedelta(minutes=10))[0])
    w = tail(a.key, a.frame, None, end, bundle.lookback_steps)
    out = bundle.predict([w])[0]
    assert out["known"] and out["timestamp"] == w["timestamps"][-1] and len(out["forecast"]) == 24
    assert out["forecast"][0]["timestamp"] == a.split.strftime("%Y-%m-%dT%H:%M:%SZ")
    want = whole["kwh"].loc[a.split : a.split + pd.Timedelta(hours=23)].to_numpy()
    np.testing.assert_allclose([f["kwh"] for f in out["forecast"]], want, rtol=0, atol=1e-4)
    # Mid-day windows still get 24 whole hours, starting at the next full hour.
    mid = bundle.predict([tail(a.key, a.frame, None, end - 40, bundle.lookback_steps)])[0]
    assert len(mid["forecast"]) == 24 and all(f["kwh"] is not None for f in mid["forecast"])
