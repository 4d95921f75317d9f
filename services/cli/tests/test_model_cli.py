"""`dtwin model train|score` on the hand-written test site (data/, written by make_csv.py, not by the simulator).

The round trip is the acceptance one: import the CSV into a real PostgreSQL site schema, train from that database,
score the CSV, and find the two labelled bearing failures in the scores. Training from the CSV with the events
file, the label-column path, the score file's columns, `model score` = online scoring (the last row equals
`bundle.predict` on a window cut from the same CSV) and the one-line errors are checked too. Each train takes a
few seconds (10 days, two assets).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dtwin_cli import readings, scoring
from dtwin_cli.main import app
from dtwin_cli.sitecfg import from_yaml
from dtwin_core import migrate
from dtwin_ml import store
from dtwin_ml.bundle import AnomalyBundle
from dtwin_ml.window import from_frames

DATA = Path(__file__).parent / "data"
HISTORY = DATA / "pump_history.csv"
EVENTS = DATA / "events.csv"
runner = CliRunner()


def dtwin(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def site_db(pg_dsn: str) -> str:
    """A database holding the schema of site acme/works and its asset/sensor registry, as the operator creates and
    syncs them for a Ready Site (the trainer's database source joins telemetry to the registry)."""
    target = from_yaml(DATA, "acme", "works")
    routes = target.table.routes
    assets = [
        {"name": a, "kind": "Pump" if a.startswith("pump") else "Meter"} for a in sorted({r.asset for r in routes})
    ]
    sensors = [
        {
            "name": r.sensor,
            "asset": r.asset,
            "metric": r.metric,
            "unit": r.unit,
            "canonical_unit": r.unit,
            "topic": r.topic,
            "format": r.format,
        }
        for r in routes
    ]

    async def go() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await migrate.apply(conn, target.storage)
            await migrate.sync_registry(conn, target.storage.schema, assets, sensors)
        finally:
            await conn.close()

    asyncio.run(go())
    return pg_dsn


def count(dsn: str, sql: str) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def tag_of(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return str(result.stdout.strip().splitlines()[-1])


def event_mask(index: pd.DatetimeIndex, hours_before: float = 0.0) -> np.ndarray:
    inside = np.zeros(len(index), dtype=bool)
    for e in pd.read_csv(EVENTS).itertuples():
        inside |= (index >= pd.Timestamp(e.start) - pd.Timedelta(hours=hours_before)) & (index < pd.Timestamp(e.end))
    return inside


@pytest.fixture(scope="module")
def csv_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An anomaly model trained from the CSV with the events file, in its own model store."""
    home = tmp_path_factory.mktemp("bentoml")
    result = dtwin("model", "train", "--task", "anomaly", "--name", "pump-anomaly", "--csv", str(HISTORY),
                   "--events", str(EVENTS), "--namespace", "acme", "--bentoml-home", str(home))  # fmt: skip
    return home, tag_of(result)


def test_train_from_csv_prints_the_tag_last_and_stores_the_model(csv_model: tuple[Path, str]) -> None:
    home, tag = csv_model
    assert tag.startswith("pump-anomaly:")
    info = store.info(tag, home)
    assert info["labels"]["task"] == "anomaly"
    assert info["metadata"]["metrics"]["events"] >= 1  # a labelled failure fell in the holdout
    report = json.loads((Path(info["path"]) / "report.json").read_text())
    assert report["assets"] == ["acme/meter-1", "acme/pump-1"]


def test_score_is_high_in_the_failures_and_low_elsewhere(csv_model: tuple[Path, str], tmp_path: Path) -> None:
    home, tag = csv_model
    out = tmp_path / "scores.csv"
    result = dtwin("model", "score", "--model", tag, "--csv", str(HISTORY), "--out", str(out), "--asset", "pump-1",
                   "--bentoml-home", str(home))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[0] == "timestamp,anomaly_score"  # one asset: no asset column
    scores = pd.read_csv(out, parse_dates=["timestamp"]).set_index("timestamp")["anomaly_score"]
    assert len(scores) == 1440 and scores.between(0, 1).all()
    inside = event_mask(pd.DatetimeIndex(scores.index))
    near = event_mask(pd.DatetimeIndex(scores.index), 24)  # the last day of wear, too
    print(
        f"anomaly score: mean in events {scores[inside].mean():.3f}, outside (24 h margin) {scores[~near].mean():.3f}"
    )
    assert scores[inside].mean() > 0.9
    assert scores[~near].mean() < 0.35
    assert scores[inside].mean() > 2.5 * scores[~near].mean()

    both = tmp_path / "both.csv"
    assert dtwin("model", "score", "--model", tag, "--csv", str(HISTORY), "--out", str(both),
                 "--bentoml-home", str(home)).exit_code == 0  # fmt: skip
    frame = pd.read_csv(both)
    assert list(frame.columns) == ["timestamp", "asset", "anomaly_score"]
    assert frame.groupby("asset").size().to_dict() == {"meter-1": 1440, "pump-1": 1440}


def test_score_equals_online_scoring_of_the_last_window(csv_model: tuple[Path, str], tmp_path: Path) -> None:
    home, tag = csv_model
    out = tmp_path / "scores.csv"
    assert dtwin("model", "score", "--model", tag, "--csv", str(HISTORY), "--out", str(out), "--asset", "pump-1",
                 "--bentoml-home", str(home)).exit_code == 0  # fmt: skip
    bundle = store.load(tag, home)
    # What a live scorer sends: the last `lookback_steps` rows of the same CSV, as a JSON window.
    lines = HISTORY.read_text().splitlines()
    cut = tmp_path / "cut.csv"
    cut.write_text("\n".join([lines[0], *lines[-bundle.lookback_steps :]]) + "\n")
    long, _ = readings.read(cut, readings.Options())
    frame, stats = scoring.grids(long)["pump-1"]
    assert len(frame) == bundle.lookback_steps
    online = bundle.predict([from_frames("acme/pump-1", frame, stats)])[0]
    last = pd.read_csv(out).iloc[-1]
    assert last["timestamp"] == online["timestamp"] == "2026-03-11T23:50:00Z"
    assert round(float(last["anomaly_score"]), 6) == online["score"]


def test_a_long_file_scores_as_the_wide_one(csv_model: tuple[Path, str], tmp_path: Path) -> None:
    home, tag = csv_model
    wide = pd.read_csv(HISTORY).iloc[:300]
    long = wide.melt(id_vars="timestamp", var_name="sensor", value_name="value")  # sensor = <asset>.<metric>
    wide_csv, long_csv = tmp_path / "wide.csv", tmp_path / "long.csv"
    wide.to_csv(wide_csv, index=False)
    long.sample(frac=1.0, random_state=1).to_csv(long_csv, index=False)  # any row order
    outs = []
    for name, path, fmt in (("w", wide_csv, "wide"), ("l", long_csv, "long")):
        out = tmp_path / f"{name}.csv"
        result = dtwin("model", "score", "--model", tag, "--csv", str(path), "--format", fmt, "--out", str(out),
                       "--bentoml-home", str(home))  # fmt: skip
        assert result.exit_code == 0, result.output
        outs.append(pd.read_csv(out))
    assert outs[0].equals(outs[1]) and len(outs[0]) == 600


def test_train_from_a_label_column(tmp_path: Path) -> None:
    wide = pd.read_csv(HISTORY)
    stamps = pd.DatetimeIndex(pd.to_datetime(wide["timestamp"], utc=True))
    wide["state"] = np.where(event_mask(stamps), "fault", "")
    labelled = tmp_path / "labelled.csv"
    wide.to_csv(labelled, index=False)
    result = dtwin("model", "train", "--task", "anomaly", "--name", "labelled", "--csv", str(labelled),
                   "--label-column", "state", "--label-asset", "pump-1",
                   "--bentoml-home", str(tmp_path / "home"))  # fmt: skip
    tag = tag_of(result)
    assert "2 labelled event(s) from column state" in result.stderr
    assert store.info(tag, tmp_path / "home")["metadata"]["metrics"]["events"] >= 1


def test_round_trip_import_train_from_the_database_score(site_db: str, tmp_path: Path) -> None:
    site = ["--site", "acme/works", "--from-yaml", str(DATA)]
    imported = dtwin("history", "import", str(HISTORY), *site, "--dsn", site_db)
    assert imported.exit_code == 0, imported.output
    assert count(site_db, "SELECT count(*) FROM site_works.telemetry") == 4320
    home = str(tmp_path / "home")
    trained = dtwin("model", "train", "--task", "anomaly", "--name", "works", *site, "--dsn", site_db,
                    "--end", "2026-03-12T00:00:00Z", "--days", "10", "--bentoml-home", home)  # fmt: skip
    tag = tag_of(trained)
    assert "read 2 assets, 2880 buckets" in trained.stderr
    bundle = store.load(tag, home)
    assert isinstance(bundle, AnomalyBundle) and sorted(bundle.assets) == ["acme/meter-1", "acme/pump-1"]
    out = tmp_path / "scores.csv"
    scored = dtwin("model", "score", "--model", tag, "--csv", str(HISTORY), "--out", str(out),
                   "--asset", "pump-1", "--bentoml-home", home)  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert out.read_text().splitlines()[0] == "timestamp,anomaly_score"
    scores = pd.read_csv(out, parse_dates=["timestamp"]).set_index("timestamp")["anomaly_score"]
    inside = event_mask(pd.DatetimeIndex(scores.index))
    near = event_mask(pd.DatetimeIndex(scores.index), 24)
    print(f"db-trained: mean in events {scores[inside].mean():.3f}, outside {scores[~near].mean():.3f}")
    assert scores[inside].mean() > 2 * scores[~near].mean()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--task", "forecast", "--name", "x", "--csv", str(HISTORY)], "--task must be one of"),
        (["train", "--task", "anomaly", "--name", "x"], "pass the history as --csv FILE or --site"),
        (["train", "--task", "anomaly", "--name", "x", "--csv", "nope.csv"], "nope.csv: no such file"),
        (["train", "--task", "anomaly", "--name", "x", "--csv", str(HISTORY), "--unit-column", "u"], "--task rul"),
        (
            ["train", "--task", "anomaly", "--name", "x", "--csv", str(HISTORY), "--map", "pump-1.vibration=vib"],
            "is not <asset>.<metric>",
        ),
        (
            ["train", "--task", "failure", "--name", "x", "--csv", str(HISTORY), "--events", str(EVENTS)],
            "failure training needs at least two assets and one failure",
        ),
        (["score", "--model", "missing:v1", "--csv", str(HISTORY), "--out", "x.csv"], "model 'missing:v1'"),
    ],
)
def test_errors_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = dtwin("model", *args, "--bentoml-home", str(tmp_path))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()  # progress lines may come first (stderr), the error last
    assert lines[-1].startswith("error: ") and message in lines[-1], result.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1 and not result.stdout
