"""`dtwin model train|score|export` for the failure and rul tasks, on the two-pump hand-written CSV.

data/pumps_history.csv (make_pumps_csv.py) holds two pumps and five bearing failures, so the pooled failure
classifier has failures to learn from and one left for the holdout. The failure model is exported to ONNX and
`dtwin edge score` must give the scikit-learn probabilities within 1e-4. The rul task is trained both from the
site history with its events (hours) and from run-to-failure units (cycles, a small CSV written by the test), and
exported too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dtwin_cli.main import app
from dtwin_ml import store

DATA = Path(__file__).parent / "data"
PUMPS = DATA / "pumps_history.csv"
EVENTS = DATA / "pumps_events.csv"
runner = CliRunner()


def dtwin(*args: str) -> Any:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def wear_mask(frame: pd.DataFrame) -> np.ndarray:
    """Rows of `frame` (timestamp, asset) inside a labelled wear window (onset to failure)."""
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    inside = np.zeros(len(frame), dtype=bool)
    for e in pd.read_csv(EVENTS).itertuples():
        inside |= (
            (frame["asset"] == e.asset) & (stamps >= pd.Timestamp(e.start)) & (stamps < pd.Timestamp(e.end))
        ).to_numpy()
    return inside


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bentoml")


@pytest.fixture(scope="module")
def failure_tag(home: Path) -> str:
    result = dtwin("model", "train", "--task", "failure", "--name", "pumps-failure", "--csv", str(PUMPS),
                   "--events", str(EVENTS), "--namespace", "acme", "--bentoml-home", str(home))  # fmt: skip
    return str(result.stdout.strip().splitlines()[-1])


def test_failure_probability_is_high_before_each_failure(failure_tag: str, home: Path, tmp_path: Path) -> None:
    metrics = store.info(failure_tag, home)["metadata"]["metrics"]
    assert metrics["events"] == 1 and metrics["detected"] == 1  # the holdout's failure was announced
    out = tmp_path / "p.csv"
    dtwin("model", "score", "--model", failure_tag, "--csv", str(PUMPS), "--out", str(out), "--bentoml-home", str(home))
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["timestamp", "asset", "failure_probability"]
    assert frame.groupby("asset").size().to_dict() == {"pump-a": 3024, "pump-b": 3024}
    wear = wear_mask(frame)
    p = frame["failure_probability"]
    print(f"failure probability: mean in wear windows {p[wear].mean():.3f}, elsewhere {p[~wear].mean():.3f}")
    assert p[wear].mean() > 0.7 and p[~wear].mean() < 0.3


def test_failure_onnx_export_scores_like_scikit_learn(failure_tag: str, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "edge"
    written = dtwin("model", "export", "--model", failure_tag, "--out", str(folder), "--bentoml-home", str(home))
    assert [Path(p).name for p in written.stdout.split()] == ["model.onnx", "model.json"]
    side = json.loads((folder / "model.json").read_text())
    assert side["task"] == "failure" and side["inputs"][-1] == "anomaly_score" and side["horizon_h"] == 72.0
    online, edge = tmp_path / "online.csv", tmp_path / "edge.csv"
    dtwin("model", "score", "--model", failure_tag, "--csv", str(PUMPS), "--out", str(online),
          "--bentoml-home", str(home))  # fmt: skip
    dtwin("edge", "score", "--dir", str(folder), "--csv", str(PUMPS), "--out", str(edge))
    want, got = pd.read_csv(online), pd.read_csv(edge)
    assert got[["timestamp", "asset"]].equals(want[["timestamp", "asset"]])
    diff = float((got["failure_probability"] - want["failure_probability"]).abs().max())
    print(f"failure: max |onnx edge - scikit-learn| = {diff:.2e} over {len(got)} rows")
    assert diff <= 1e-4


def test_rul_from_the_site_history_with_events(home: Path, tmp_path: Path) -> None:
    result = dtwin("model", "train", "--task", "rul", "--name", "pumps-rul", "--csv", str(PUMPS), "--events",
                   str(EVENTS), "--namespace", "acme", "--bentoml-home", str(home))  # fmt: skip
    tag = result.stdout.strip().splitlines()[-1]
    out = tmp_path / "rul.csv"
    dtwin("model", "score", "--model", tag, "--csv", str(PUMPS), "--out", str(out), "--bentoml-home", str(home))
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["timestamp", "asset", "rul_hours"]
    wear = wear_mask(frame)
    rul = frame["rul_hours"]
    print(f"rul: mean in wear windows {rul[wear].mean():.1f} h, elsewhere {rul[~wear].mean():.1f} h")
    assert rul[wear].mean() < 0.7 * rul[~wear].mean()
    diff = edge_matches(tag, home, PUMPS, tmp_path)
    print(f"rul: max |onnx edge - scikit-learn| = {diff:.2e} h")
    assert diff <= 1e-4


def edge_matches(tag: str, home: Path | str, csv: Path, tmp_path: Path, *extra: str) -> float:
    """Export `tag`, score `csv` with `dtwin edge score` and with `dtwin model score`: the max difference."""
    folder = tmp_path / "edge"
    dtwin("model", "export", "--model", tag, "--out", str(folder), "--bentoml-home", str(home))
    online, edge = tmp_path / "online.csv", tmp_path / "edge.csv"
    dtwin(
        "model", "score", "--model", tag, "--csv", str(csv), "--out", str(online), "--bentoml-home", str(home), *extra
    )
    dtwin("edge", "score", "--dir", str(folder), "--csv", str(csv), "--out", str(edge), *extra)
    want, got = pd.read_csv(online), pd.read_csv(edge)
    assert list(got.columns) == list(want.columns) and got.iloc[:, :2].equals(want.iloc[:, :2])
    return float((got.iloc[:, -1] - want.iloc[:, -1]).abs().max())


def _units(path: Path) -> None:
    """Six run-to-failure units (cycles 1..N, each fails at its last row): two sensors drift as the end nears."""
    rng = np.random.default_rng(7)
    rows = []
    for u, n in enumerate((120, 150, 135, 160, 110, 140), start=1):
        for c in range(1, n + 1):
            life = c / n
            temp = 640 + 12 * life**3 + rng.normal(0, 0.5)
            pressure = 550 - 8 * life**3 + rng.normal(0, 0.4)
            rows.append({"unit": f"u{u}", "cycle": c, "temp": temp, "pressure": pressure, "speed": 2388.0})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_rul_from_run_to_failure_units(tmp_path: Path) -> None:
    units = tmp_path / "units.csv"
    _units(units)
    home = str(tmp_path / "home")
    result = dtwin("model", "train", "--task", "rul", "--name", "units", "--csv", str(units), "--unit-column", "unit",
                   "--time-column", "cycle", "--bentoml-home", home)  # fmt: skip
    tag = result.stdout.strip().splitlines()[-1]
    out = tmp_path / "rul.csv"
    dtwin("model", "score", "--model", tag, "--csv", str(units), "--out", str(out), "--unit-column", "unit",
          "--time-column", "cycle", "--bentoml-home", home)  # fmt: skip
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["age", "asset", "rul_cycles"]
    assert len(frame) == 815
    last = frame.groupby("asset").tail(10)["rul_cycles"].mean()
    first = frame.groupby("asset").head(10)["rul_cycles"].mean()
    print(f"rul (units): mean of the first 10 cycles {first:.1f}, of the last 10 {last:.1f}")
    assert last < 0.5 * first
    diff = edge_matches(tag, home, units, tmp_path, "--unit-column", "unit", "--time-column", "cycle")
    print(f"rul (units): max |onnx edge - scikit-learn| = {diff:.2e} cycles")
    assert diff <= 1e-4
