"""Remaining useful life on a small run-to-failure set (tests/data/run_to_failure.csv): targets, the model against
its baselines on held-out units, and the serving bundle's two paths agreeing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dtwin_ml import rul
from dtwin_ml.bundle import RulBundle
from dtwin_ml.window import WindowError

DATA = Path(__file__).parent / "data" / "run_to_failure.csv"


def test_targets_clip_at_the_cap_and_censor_what_cannot_reach_it() -> None:
    t = np.arange(0.0, 10.0)
    y = rul.targets(t, [4.0], end=9.0, cap=3.0)
    # before the failure: min(4 - t, 3); after it, the history still runs 3 steps at t <= 6, else unknown
    assert y[:5].tolist() == [3.0, 3.0, 2.0, 1.0, 0.0]
    assert y[5:7].tolist() == [3.0, 3.0] and np.isnan(y[7:]).all()


def _units() -> dict[str, pd.DataFrame]:
    df = pd.read_csv(DATA)
    return {
        str(u): part.set_index(part["cycle"].astype(float).rename(rul.AGE))[["temp", "pressure", "vibration"]]
        for u, part in df.groupby("unit")
    }


def _xy(bundle: RulBundle, units: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, np.ndarray]:
    xs, ys = [], []
    for name, frame in units.items():
        age = np.asarray(frame.index, dtype=float)
        xs.append(bundle.inputs(name, frame))
        ys.append(rul.targets(age, [age[-1]], age[-1], rul.CAP_CYCLES))
    return pd.concat(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def fitted() -> tuple[RulBundle, dict[str, pd.DataFrame], list[str]]:
    units = _units()
    test = ["3", "7", "11"]
    bundle = RulBundle(
        rul.RulModel(rul.CAP_CYCLES, n_estimators=60), 30.0, "cycles", sensors=("pressure", "temp", "vibration")
    )
    x, y = _xy(bundle, {k: v for k, v in units.items() if k not in test})
    bundle.model.fit(x, y)
    return bundle, units, test


def test_the_model_beats_age_and_constant_baselines_on_held_out_units(fitted) -> None:
    bundle, units, test = fitted
    train = {k: v for k, v in units.items() if k not in test}
    x_tr, y_tr = _xy(bundle, train)
    x_te, y_te = _xy(bundle, {k: units[k] for k in test})
    model = rul.rmse(y_te, bundle.model.predict(x_te))
    by_age = rul.rmse(y_te, rul.AgeBaseline().fit(x_tr[rul.AGE].to_numpy(), y_tr).predict(x_te[rul.AGE].to_numpy()))
    constant = rul.rmse(y_te, np.full(len(y_te), y_tr.mean()))
    assert model < 0.7 * by_age and model < 0.7 * constant, (model, by_age, constant)


def test_predict_on_a_window_equals_the_last_row_of_predict_frame(fitted) -> None:
    bundle, units, test = fitted
    frame = units[test[0]]
    whole = bundle.predict_frame(test[0], frame)
    part = frame.iloc[-bundle.lookback_steps :]
    window = {
        "asset": test[0],
        "time": part.index.tolist(),
        "values": {c: part[c].tolist() for c in part.columns},
    }
    (out,) = bundle.predict([window])
    assert out["known"] and out["unit"] == "cycles" and out["timestamp"] == float(frame.index[-1])
    assert out["rul"] == pytest.approx(float(whole["rul"].iloc[-1]), abs=1e-4)
    assert out["alert"] == bool(whole["alert"].iloc[-1]) and out["alert"]  # the last cycle: the unit fails
    assert out["top"] == whole["top"].iloc[-1] and len(out["top"]) == 3 and out["rul_hours"] is None
    (unknown,) = bundle.predict([{**window, "values": {"temp": window["values"]["temp"]}}])
    assert unknown["known"] is False and unknown["rul"] is None
    with pytest.raises(WindowError):
        bundle.predict(
            [{**window, "time": window["time"][:5], "values": {c: v[:5] for c, v in window["values"].items()}}]
        )
