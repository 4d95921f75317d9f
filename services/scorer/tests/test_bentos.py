"""The scorer against two real `bentoml serve` processes (stable v1 and canary v2 of a trained anomaly model)
and real PostgreSQL holding a simulated campus's telemetry: the canary's share of the windows, measured by the
version the servers answered with, is 20 %; and the W3C trace context reaches the model servers (their access
log names the scorer's trace id)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pandas as pd
import pytest

from dtwin_ml import store
from dtwin_ml.bundle import AnomalyBundle
from dtwin_scorer.scorer import Scorer
from dtwin_scorer.settings import Settings
from dtwin_trainer import train

ROOT = Path(__file__).resolve().parents[3]
BENTO = ROOT / "bentos" / "anomaly"
MODEL = "pump-anomaly"
PASSES = 25  # x 8 assets = 200 windows
HISTORY = 200  # buckets of telemetry per asset: a lookback (153) plus the passes

pytestmark = pytest.mark.skipif(not (BENTO / "service.py").exists(), reason="bentos/anomaly not there")


@dataclass
class Trained:
    home: Path
    run: Any
    assets: list[str]  # "<namespace>/<asset>"


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """An anomaly model trained on 8 simulated days as v1, and the same bundle stored again as v2 (the canary)."""
    home = tmp_path_factory.mktemp("bentoml")
    args = train.SourceArgs(days=8)
    result = train.train("anomaly", "sim", name=MODEL, args=args, home=home, progress=_quiet, version="v1")
    meta = store.info(result.tag, home)["metadata"]
    bundle = store.load(result.tag, home)
    store.save(
        bundle, MODEL, metrics=meta["metrics"], train_start=pd.Timestamp(meta["train_start"]),
        train_end=pd.Timestamp(meta["train_end"]), data_sha256=meta["data_sha256"], home=home, version="v2",
    )  # fmt: skip
    run = train.runs_of("sim", args, _quiet)[0][0]
    assert isinstance(bundle, AnomalyBundle)
    return Trained(home, run, sorted(bundle.assets))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Bento:
    url: str
    log: Path
    proc: subprocess.Popen[bytes]


def _serve(trained: Trained, version: str, log: Path) -> Bento:
    port = _free_port()
    env = os.environ | {
        "BENTOML_HOME": str(trained.home), "DTWIN_MODEL_TAG": f"{MODEL}:{version}",
        "PYTHONPATH": os.pathsep.join(sys.path), "DTWIN_MAX_BATCH_SIZE": "16", "DTWIN_MAX_LATENCY_MS": "50",
    }  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bentoml", "serve", "service:AnomalyService", "--port", str(port)],
            cwd=BENTO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return Bento(f"http://127.0.0.1:{port}", log, proc)


def _wait_ready(b: Bento, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if b.proc.poll() is not None:
            pytest.fail(f"bentoml serve exited {b.proc.returncode}:\n{b.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{b.url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"bentoml serve not ready in {timeout_s} s:\n{b.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def bentos(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bento, Bento]]:
    logs = tmp_path_factory.mktemp("bento-logs")
    started = [_serve(trained, v, logs / f"{v}.log") for v in ("v1", "v2")]
    try:
        for b in started:
            _wait_ready(b)
        yield started[0], started[1]
    finally:
        for b in started:
            b.proc.terminate()
        for b in started:
            try:
                b.proc.wait(20)
            except subprocess.TimeoutExpired:
                b.proc.kill()
                b.proc.wait()


async def _load_telemetry(dsn: str, trained: Trained) -> pd.Timestamp:
    """The last HISTORY buckets of every asset's simulated means as one reading per bucket; returns the end."""
    from dtwin_core import migrate
    from dtwin_core.schema import StorageSpec

    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn, StorageSpec(schema="site_hq"))
        sensors, readings = [], []
        for key in trained.assets:
            asset = key.split("/", 1)[1]
            frame = trained.run.frames[asset].iloc[-HISTORY:]
            for metric in frame.columns:
                name = f"{asset}-{metric}"
                sensors.append((name, asset, str(metric)))
                for ts, v in frame[metric].dropna().items():
                    readings.append((name, (ts + pd.Timedelta(minutes=5)).to_pydatetime(), float(v)))
        await conn.executemany(
            "INSERT INTO site_hq.sensors (name, asset, metric, unit, canonical_unit, topic, format) "
            "VALUES ($1, $2, $3, '', '', $1, 'json')",
            sensors,
        )
        await conn.copy_records_to_table("telemetry", schema_name="site_hq", records=readings)
        return pd.Timestamp(trained.run.frames[trained.assets[0].split("/", 1)[1]].index[-1]) + pd.Timedelta(minutes=10)
    finally:
        await conn.close()


def test_canary_gets_20_percent_of_real_bento_calls(
    trained: Trained, bentos: tuple[Bento, Bento], pg_dsn: str, tmp_path: Path, routing_writer: Any
) -> None:
    stable, canary = bentos
    end = asyncio.run(_load_telemetry(pg_dsn, trained))
    routing_writer(
        tmp_path, "pumps", stable.url, canary.url, percent=20, task="anomaly", model=MODEL, threshold=0.8,
        stable={"version": "v1", "url": stable.url}, canary={"version": "v2", "url": canary.url, "percent": 20},
        assets=trained.assets, maxBatchSize=16,
    )  # fmt: skip
    s = Settings(database_url=pg_dsn, routing_dir=tmp_path, kube_enabled=False, metrics_port=0, request_timeout_s=60)
    ats = [end - pd.Timedelta(minutes=10) * (PASSES - 1 - k) for k in range(PASSES)]

    async def passes() -> Any:
        pool = await asyncpg.create_pool(pg_dsn, min_size=0, max_size=2)
        try:
            async with httpx.AsyncClient() as http:
                scorer = Scorer(s, pool, http)
                reports = [(await scorer.pass_once(at))[0] for at in ats]
                return reports, scorer
        finally:
            await pool.close()

    reports, scorer = asyncio.run(passes())
    assert sum(r.windows for r in reports) == PASSES * len(trained.assets) == 200
    assert all(not r.errors for r in reports), [r.errors for r in reports if r.errors]

    async def rows() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return list(await conn.fetch("SELECT asset, version, ts, score, explanation FROM site_hq.predictions"))
        finally:
            await conn.close()

    got = asyncio.run(rows())
    assert len(got) == 200
    by_version = {v: sum(r["version"] == v for r in got) for v in ("v1", "v2")}
    share = by_version["v2"] / len(got)
    print(f"canary share measured from the servers' answers: {by_version} = {share:.3f}")
    assert by_version["v1"] + by_version["v2"] == 200 and abs(by_version["v2"] - 40) <= 2, by_version
    assert all(0.0 <= r["score"] < 1.0 for r in got)
    assert {r["ts"] for r in got} == {(at - pd.Timedelta(minutes=10)).to_pydatetime() for at in ats}
    st_stable, st_canary = scorer.states[("demo", "pumps")].calls.pair()
    assert st_canary is not None and (st_canary.version, st_canary.calls, st_canary.errors) == (
        "v2", by_version["v2"], 0,
    )  # fmt: skip
    assert st_stable is not None and st_stable.calls == by_version["v1"]

    # One more pass through the CLI with console tracing: the model server's access log carries the trace id.
    env = os.environ | {"OTEL_TRACES_EXPORTER": "console", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-m", "dtwin_scorer", "once", "--routing-dir", str(tmp_path), "--database-url", pg_dsn,
         "--no-kube", "--at", (end + timedelta(minutes=10)).isoformat()],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    traces = set(re.findall(r'"trace_id": "0x([0-9a-f]{32})"', out.stdout))
    assert '"name": "scorer.predict"' in out.stdout and '"name": "scorer.db_write"' in out.stdout
    assert '"predictions": 8' in out.stdout
    served = set(re.findall(r"trace=([0-9a-f]{32})", stable.log.read_text() + canary.log.read_text()))
    assert traces & served, (traces, served)
