"""ONNX edge packages agree with scikit-learn on the same inputs; the anomaly path runs from exported floats.

The estimators are fitted here on small synthetic inputs shaped like the real ones (health inputs with the NaN of a
feature kind an asset lacks; hourly load with a daily and weekly pattern), exported with `onnx_export.export` and
run by `onnx_export.EdgeModel` in onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dtwin_ml import energy, features, onnx_export
from dtwin_ml.anomaly import AnomalyModel
from dtwin_ml.bundle import AnomalyBundle, AssetState, EnergyBundle, FailureBundle
from dtwin_ml.failure import FailureModel


def _health(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    cols = ["zmax:resid", "zmin:resid", "zmax:std_36", "zmin:std_36", "zmax:spike", "zmin:spike", "anomaly_score"]
    x = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols)
    x.loc[rng.random(n) < 0.3, ["zmax:spike", "zmin:spike"]] = np.nan  # assets without min/max stats
    y = ((x["zmax:resid"] + x["zmax:spike"].fillna(1.0) * 0.8) > 1.0).to_numpy(dtype=int)
    return x, y


def test_failure_probabilities_match_sklearn(tmp_path: Path) -> None:
    x, y = _health(3000, 1)
    clf = FailureModel(n_estimators=40).fit(x, y)
    bundle = FailureBundle({}, 0.5, 2, classifier=clf)
    written = onnx_export.export(bundle, tmp_path, tag="f:1")
    assert [p.name for p in written] == ["model.onnx", "model.json"]
    edge = onnx_export.load(tmp_path)
    test, _ = _health(2000, 2)
    onnx_p = edge.run(test[clf.columns].to_numpy())
    skl_p = clf.predict_proba(test)
    diff = float(np.abs(onnx_p - skl_p).max())
    print(f"failure: max |onnx - sklearn| = {diff:.2e} over {len(test)} rows ({int(test.isna().any(axis=1).sum())} "
          "with NaN)")  # fmt: skip
    assert diff <= 1e-4
    assert test.isna().any(axis=1).sum() > 300  # the NaN routing was exercised
    side = json.loads((tmp_path / "model.json").read_text())
    assert side["inputs"] == clf.columns and side["task"] == "failure" and side["threshold"] == 0.5


def _load(hours: int, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2026-01-05", periods=hours, freq="h", tz="UTC")
    day = np.where((index.hour >= 7) & (index.hour < 19), 1.0, 0.0) * np.where(index.dayofweek < 5, 70, 30)
    return pd.Series(40 + day + rng.normal(0, 3, hours), index=index)


def test_energy_forecasts_match_sklearn(tmp_path: Path) -> None:
    series = [
        ("site/meter-1/power", _load(24 * 28, 3), "Europe/Berlin"),
        ("site/meter-2/power", _load(24 * 28, 4) * 2, "UTC"),
    ]
    fc = energy.EnergyForecaster(max_iter=40).fit(series)
    onnx_export.export(EnergyBundle(fc, {"site/meter-1": "Europe/Berlin"}), tmp_path)
    edge = onnx_export.load(tmp_path)
    y = _load(24 * 21, 5)
    x = energy.day_ahead_inputs(y, fc.scales["site/meter-1/power"], "Europe/Berlin")[fc.columns]
    assert fc.model is not None
    raw = float(np.abs(edge.run(x.to_numpy()) - fc.model.predict(x)).max())
    kwh = (
        edge.forecast("site/meter-1/power", y, "Europe/Berlin") - fc.predict("site/meter-1/power", y, "Europe/Berlin")
    ).abs()
    print(f"energy: max |onnx - sklearn| = {raw:.2e} (scaled), {float(kwh.max()):.2e} kWh")
    assert raw <= 1e-4
    assert float(kwh.max()) <= 1e-4 * float(y.mean())
    assert kwh.notna().sum() > 400


def test_anomaly_runs_from_exported_parameters(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    index = pd.date_range("2026-01-05", periods=6 * 24 * 6, freq="10min", tz="UTC")
    frame = pd.DataFrame({"temp": 40 + rng.normal(0, 0.5, len(index)), "vibration": 2 + rng.normal(0, 0.1, len(index))},
                         index=index)  # fmt: skip
    frame.iloc[-100:, 0] += np.linspace(0, 15, 100)
    profile = features.Profile.fit(frame.iloc[:400], "Europe/Berlin")
    config = features.FeatureConfig(timezone="Europe/Berlin")
    feats = features.build(frame, config, profile)
    model = AnomalyModel(top=2).fit(feats.iloc[200:500])
    bundle = AnomalyBundle({"ns/pump": AssetState(profile, config, model)}, 0.9, 2, top=2)
    written = onnx_export.export(bundle, tmp_path)
    assert [p.name for p in written] == ["model.json"]  # no estimator: no model.onnx
    edge = onnx_export.load(tmp_path)
    got = edge.predict_frame("ns/pump", frame)
    want = bundle.predict_frame("ns/pump", frame)
    assert np.array_equal(got["score"].to_numpy(), want["score"].to_numpy())
    assert np.array_equal(got["alert"].to_numpy(), want["alert"].to_numpy())
    assert want["alert"].iloc[-1]


def test_refuses_a_foreign_package(tmp_path: Path) -> None:
    with pytest.raises(onnx_export.ExportError, match=r"no model\.json"):
        onnx_export.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(onnx_export.ExportError, match="format 99"):
        onnx_export.load(tmp_path)
