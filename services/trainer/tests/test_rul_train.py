"""The rul task end to end: from a run-to-failure CSV (held-out units, baselines) and from simulated failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from dtwin_ml import store
from dtwin_ml.bundle import RulBundle
from dtwin_ml.window import tail
from dtwin_trainer import cli, train

DATA = Path(__file__).resolve().parents[3] / "libs" / "dtwin_ml" / "tests" / "data" / "run_to_failure.csv"


def _quiet(_: str) -> None:
    pass


def test_rul_from_run_to_failure_units_beats_its_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--task", "rul", "--name", "engines", "--source", "csv", "--csv", str(DATA)]
    argv += ["--unit-column", "unit", "--time-column", "cycle", "--bentoml-home", str(tmp_path)]
    assert cli.run(argv) == 0
    tag = capsys.readouterr().out.strip().splitlines()[-1]
    meta = store.info(tag, tmp_path)["metadata"]
    m = meta["metrics"]
    assert meta["task"] == "rul" and m["unit"] == "cycles" and m["cap"] == 125.0
    assert m["rmse"] < m["baseline_age_rmse"] and m["rmse"] < m["baseline_constant_rmse"]
    assert m["rmse_near_failure"] < m["baseline_age_rmse_near_failure"]
    bundle = store.load(tag, tmp_path)
    assert isinstance(bundle, RulBundle) and meta["lookback_steps"] == bundle.lookback_steps == 30
    report = Path(store.info(tag, tmp_path)["path"]) / "report.json"
    assert '"folds"' in report.read_text() and m["folds"] == 5
    assert cli.run(["train", "--task", "rul", "--name", "x", "--source", "csv", "--csv", str(DATA),
                    "--unit-column", "unit"]) == 2  # fmt: skip


def test_rul_from_simulated_failures_holds_out_assets(tmp_path: Path) -> None:
    args = train.SourceArgs(days=15)
    result = train.train("rul", "sim", name="plant-rul", args=args, home=tmp_path, progress=_quiet)
    m = result.metrics
    assert m["unit"] == "hours" and m["rows"] > 0
    assert m["rmse"] < m["baseline_constant_rmse"], m
    bundle = store.load(result.tag, tmp_path)
    assert isinstance(bundle, RulBundle) and bundle.per_asset
    run = train.runs_of("sim", args, _quiet)[0][0]
    key = sorted(bundle.assets)[0]
    asset = key.split("/", 1)[1]
    frame, stats = run.frames[asset], run.stats[asset]
    whole = bundle.predict_frame(key, frame, stats)
    (out,) = bundle.predict([tail(key, frame, stats, len(frame) - 1, bundle.lookback_steps)])
    assert out["known"] and out["rul_hours"] == pytest.approx(float(whole["rul"].iloc[-1]), abs=1e-4)
