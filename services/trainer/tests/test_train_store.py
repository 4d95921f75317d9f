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
    args = train.SourceArgs(dsn=pg_dsn, schemas=("site_plant",), days=5, end=end, namespace="plant")
    result = train.train("anomaly", "db", name="db-anomaly", args=args, home=tmp_path, progress=_quiet)
    assert sorted(store.load(result.tag, tmp_path).assets) == [f"plant/{a}" for a in assets]


def test_the_db_source_reads_several_schemas_and_keeps_a_shared_asset_name_apart(
    run: dataset.Run, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c, d = sorted(run.frames)[:4]
    end = run.frames[a].index[0] + pd.Timedelta(days=4)
    long = _long(run, [a, b, c, d])
    long = long[long["timestamp"] < end]
    site_a = long[long["asset"].isin([a, c])]
    site_b = long[long["asset"].isin([b, d])].replace({"asset": {d: c}})  # another history under the name `c`
    _insert(pg_dsn, "site_a", site_a)
    _insert(pg_dsn, "site_b", site_b)
    grids = dbsource.read_db(pg_dsn, ["site_a", "site_b"], 4, end)
    assert sorted(grids) == sorted([a, b, f"{c}@site_a", f"{c}@site_b"])
    pd.testing.assert_frame_equal(grids[b][0], csvsource.grid_from_long(site_b)[b][0], check_freq=False)
    pd.testing.assert_frame_equal(grids[f"{c}@site_b"][0], csvsource.grid_from_long(long)[d][0], check_freq=False)
    pd.testing.assert_frame_equal(grids[f"{c}@site_a"][0], csvsource.grid_from_long(long)[c][0], check_freq=False)

    # The operator's CronJob: the DSN from the environment, one --schema per site.
    monkeypatch.setenv(train.DSN_ENV, pg_dsn)
    monkeypatch.setattr(train.pd.Timestamp, "now", classmethod(lambda cls, tz=None: end))
    argv = ["train", "--task", "anomaly", "--name", "multi", "--source", "db", "--namespace", "ns"]
    argv += ["--schema", "site_a", "--schema", "site_b", "--days", "4", "--bentoml-home", str(tmp_path)]
    assert cli.run(argv) == 0
    captured = capsys.readouterr()
    tag = captured.out.strip().splitlines()[-1]
    assert "kept apart as <asset>@<schema>" in captured.err
    assert sorted(store.load(tag, tmp_path).assets) == sorted(f"ns/{k}" for k in grids)
    monkeypatch.delenv(train.DSN_ENV)
    assert cli.run(argv) == 2
    assert train.DSN_ENV in capsys.readouterr().err


LABELLED = """timestamp,asset,metric,value,label
2026-01-05T00:00:00Z,p1,temp,1,0
2026-01-05T00:00:00Z,p1,flow,2,
2026-01-05T00:10:00Z,p1,temp,1,1
2026-01-05T00:20:00Z,p1,temp,1,1
2026-01-05T00:20:00Z,p1,flow,2,0
2026-01-05T00:30:00Z,p1,temp,1,0
2026-01-05T00:40:00Z,p1,temp,1,stuck_sensor
2026-01-05T00:50:00Z,p1,temp,1,failure
2026-01-05T01:00:00Z,p1,temp,1,failure
2026-01-05T00:00:00Z,p2,temp,1,
2026-01-05T00:10:00Z,p2,temp,1,spike
"""

EVENTS = """asset,start,end,kind
p1,2026-01-05T00:10:00+00:00,2026-01-05T00:30:00+00:00,fault
p1,2026-01-05T00:40:00+00:00,2026-01-05T00:50:00+00:00,stuck_sensor
p1,2026-01-05T00:50:00+00:00,2026-01-05T01:10:00+00:00,failure
p2,2026-01-05T00:10:00+00:00,2026-01-05T00:20:00+00:00,spike
"""


def test_a_label_column_gives_the_events_of_the_equivalent_events_file(tmp_path: Path) -> None:
    (tmp_path / "long.csv").write_text(LABELLED)
    (tmp_path / "events.csv").write_text(EVENTS)
    grids, truth = csvsource.read_labelled_csv(tmp_path / "long.csv", "label")
    assert truth == csvsource.read_events_csv(tmp_path / "events.csv")
    assert [r["kind"] for r in truth] == ["fault", "stuck_sensor", "degradation", "failure", "spike"]
    pd.testing.assert_frame_equal(grids["p1"][0], csvsource.read_long_csv(tmp_path / "long.csv")["p1"][0])
    # The same readings wide (one column per metric) give the same grid and the same events.
    long = pd.read_csv(tmp_path / "long.csv", dtype=str)
    wide = long.pivot_table(index=["timestamp", "asset"], columns="metric", values="value", aggfunc="first")
    labels = long.assign(k=long["label"].fillna("")).groupby(["timestamp", "asset"])["k"].max()
    wide.assign(label=labels).reset_index().to_csv(tmp_path / "wide.csv", index=False)
    wide_grids, wide_truth = csvsource.read_labelled_csv(tmp_path / "wide.csv", "label")
    assert wide_truth == truth
    pd.testing.assert_frame_equal(wide_grids["p1"][0], grids["p1"][0])


def test_train_from_a_csv_with_a_label_column(run: dataset.Run, tmp_path: Path) -> None:
    assets = sorted(run.frames)[:3]
    long = _long(run, assets)
    long["label"] = ""
    for e in _events(run, assets).itertuples(index=False):
        inside = (long["asset"] == e.asset) & (long["timestamp"] >= e.start) & (long["timestamp"] < e.end)
        long.loc[inside, "label"] = e.kind
    long.to_csv(tmp_path / "readings.csv", index=False)
    args = train.SourceArgs(csv=tmp_path / "readings.csv", label_column="label", namespace="site-a")
    result = train.train("anomaly", "csv", name="labelled", args=args, home=tmp_path / "bh", progress=_quiet)
    assert result.metrics["train_f1"] > 0 and result.metrics["events"] > 0  # the labels were read as events
