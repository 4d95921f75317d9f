"""`train()` and the CLI end to end into a real BentoML model store (a temporary BENTOML home), and back out.

Sources: the simulator (quick defaults), a long CSV written from a simulated run, and a real PostgreSQL site schema
(created by `dtwin_core.migrate`) holding raw readings.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import bentoml
import numpy as np
import pandas as pd
import pytest
import sklearn

from dtwin_core import migrate
from dtwin_core.schema import StorageSpec
from dtwin_ml import store
from dtwin_ml.bundle import AnomalyBundle
from dtwin_ml.features import FEATURE_VERSION
from dtwin_ml.window import tail
from dtwin_trainer import cli, csvsource, dataset, dbsource, train


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def run() -> dataset.Run:
    return train.runs_of("sim", train.SourceArgs(), _quiet)[0][0]


def test_train_saves_a_bundle_that_loads_and_predicts(run: dataset.Run, tmp_path: Path) -> None:
    result = train.train("anomaly", "sim", name="plant-anomaly", home=tmp_path, progress=_quiet)
    assert result.tag.startswith("plant-anomaly:")
    assert 0.0 <= result.metrics["f1"] <= 1.0 and "threshold" in result.metrics
    report = json.loads(result.report_path.read_text())
    assert report["tag"] == result.tag and report["metrics"] == result.metrics
    assert (result.report_path.parent / "holdout.png").stat().st_size > 1000
    meta = store.info("plant-anomaly", tmp_path)  # "name" alone is the latest version
    assert meta["tag"] == result.tag and meta["labels"] == {"task": "anomaly"}
    md = meta["metadata"]
    assert md["task"] == "anomaly" and md["sklearn_version"] == sklearn.__version__
    assert md["feature_version"] == FEATURE_VERSION and len(md["data_sha256"]) == 64
    assert md["train_start"] < md["train_end"] and md["metrics"]["f1"] == result.metrics["f1"]
    bundle = store.load(result.tag, tmp_path)
    assert isinstance(bundle, AnomalyBundle) and md["feature_names"] == bundle.feature_names
    key = sorted(bundle.assets)[0]
    asset = key.split("/", 1)[1]
    window = tail(key, run.frames[asset], run.stats[asset], len(run.frames[asset]) - 1, bundle.lookback_steps)
    (out,) = bundle.predict([window])
    assert out["known"] and 0.0 <= out["score"] < 1.0 and len(out["top"]) == 3


def test_a_model_from_another_scikit_learn_is_refused_with_what_to_do(tmp_path: Path) -> None:
    meta = {"task": "anomaly", "sklearn_version": "1.2.0", "feature_version": FEATURE_VERSION}
    with bentoml.models.create("old", labels={"task": "anomaly"}, metadata=meta, **store._kw(tmp_path)) as m:
        Path(m.path_of(store.FILE)).write_bytes(b"never unpickled")
    with pytest.raises(store.ModelVersionMismatch) as err:
        store.load("old:latest", tmp_path)
    text = str(err.value)
    assert "1.2.0" in text and sklearn.__version__ in text
    assert "retrain" in text and "scikit-learn==1.2.0" in text


def test_cli_trains_energy_and_prints_the_tag_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.run(["train", "--task", "energy", "--name", "plant-energy", "--bentoml-home", str(tmp_path)])
    assert code == 0
    captured = capsys.readouterr()
    tag = captured.out.strip().splitlines()[-1]
    assert tag.startswith("plant-energy:") and "saved" in captured.err
    assert store.info(tag, tmp_path)["metadata"]["metrics"]["mape"] > 0
    assert cli.run(["train", "--task", "energy", "--name", "x", "--source", "csv"]) == 2


def test_read_long_csv_buckets_mean_min_max_count(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(
        "timestamp,asset,metric,value\n"
        "2026-01-05T00:01:00Z,pump-1,temp,10\n"
        "2026-01-05T00:07:00Z,pump-1,temp,14\n"
        "2026-01-05T00:31:00+00:00,pump-1,temp,11\n"
        "2026-01-05T00:02:00Z,pump-1,flow,3\n"
    )
    frame, stats = csvsource.read_long_csv(path)["pump-1"]
    assert list(frame.index.strftime("%H:%M")) == ["00:00", "00:10", "00:20", "00:30"]
    assert frame["temp"].tolist()[0] == 12.0 and np.isnan(frame["temp"].iloc[1])
    assert stats.loc[frame.index[0], ["temp:min", "temp:max", "temp:count"]].tolist() == [10.0, 14.0, 2.0]
    assert stats["temp:count"].tolist() == [2.0, 0.0, 0.0, 1.0]


def _long(run: dataset.Run, assets: list[str]) -> pd.DataFrame:
    """Two readings per bucket (its min and its max), so the CSV or database history has real extremes."""
    parts = []
    for a in assets:
        st = run.stats[a]
        for m in run.frames[a].columns:
            for agg, offset in (("min", 60), ("max", 300)):
                v = st[f"{m}:{agg}"].dropna()
                ts = v.index + pd.Timedelta(seconds=offset)
                parts.append(pd.DataFrame({"timestamp": ts, "asset": a, "metric": m, "value": v.to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def _events(run: dataset.Run, assets: list[str]) -> pd.DataFrame:
    by_id = {r["id"]: r for r in run.truth}
    rows = []
    for r in run.truth:
        if r["asset"] not in assets:
            continue
        if r["kind"] == "failure":
            cause = by_id[r["id"].rsplit("/", 1)[0]]
            rows.append({"asset": r["asset"], "start": cause["start"], "end": r["start"], "kind": "failure"})
        elif not any(x["id"] == f"{r['id']}/failure" for x in run.truth):
            rows.append({"asset": r["asset"], "start": r["start"], "end": r["end"], "kind": r["kind"]})
    return pd.DataFrame(rows, columns=["asset", "start", "end", "kind"])


def test_train_from_a_long_csv_with_events(run: dataset.Run, tmp_path: Path) -> None:
    assets = sorted(run.frames)[:3]
    _long(run, assets).to_csv(tmp_path / "readings.csv", index=False)
    _events(run, assets).to_csv(tmp_path / "events.csv", index=False)
    args = train.SourceArgs(csv=tmp_path / "readings.csv", events=tmp_path / "events.csv", namespace="site-a")
    result = train.train("anomaly", "csv", name="csv-anomaly", args=args, home=tmp_path / "bh", progress=_quiet)
    assert result.metrics["train_f1"] > 0 and 0.0 <= result.metrics["f1"] <= 1.0  # the events file was read
    bundle = store.load(result.tag, tmp_path / "bh")
    assert sorted(bundle.assets) == [f"site-a/{a}" for a in assets]


def _insert(dsn: str, schema: str, long: pd.DataFrame) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate.apply(conn, StorageSpec(schema))
            sensors = long[["asset", "metric"]].drop_duplicates()
            await conn.executemany(
                f'INSERT INTO "{schema}"."sensors" (name, asset, metric, unit, canonical_unit, topic, format) '
                "VALUES ($1, $2, $3, '', '', 't', 'json')",
                [(f"{a}.{m}", a, m) for a, m in sensors.itertuples(index=False)],
            )
            records: list[tuple[Any, ...]] = [
                (f"{a}.{m}", t.to_pydatetime(), float(v)) for t, a, m, v in long.itertuples(index=False)
            ]
            await conn.copy_records_to_table(
                "telemetry", schema_name=schema, records=records, columns=["sensor", "ts", "value"]
            )
        finally:
            await conn.close()

    asyncio.run(main())


def test_train_from_a_site_schema_in_postgres(run: dataset.Run, pg_dsn: str, tmp_path: Path) -> None:
    assets = sorted(run.frames)[:2]
    end = run.frames[assets[0]].index[0] + pd.Timedelta(days=5)
    long = _long(run, assets)
    long = long[long["timestamp"] < end]
    _insert(pg_dsn, "site_plant", long)
    grids = dbsource.read_db(pg_dsn, "site_plant", 5, end)
    want = csvsource.grid_from_long(long)
    for a in assets:
        pd.testing.assert_frame_equal(grids[a][0], want[a][0], check_freq=False)
        pd.testing.assert_frame_equal(grids[a][1], want[a][1], check_freq=False)
    args = train.SourceArgs(dsn=pg_dsn, schema="site_plant", days=5, end=end, namespace="plant")
    result = train.train("anomaly", "db", name="db-anomaly", args=args, home=tmp_path, progress=_quiet)
    assert sorted(store.load(result.tag, tmp_path).assets) == [f"plant/{a}" for a in assets]
