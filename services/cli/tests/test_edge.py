"""`dtwin model export` and `dtwin edge score|mqtt`: the exported package scores as the model store's bundle does.

Models are trained on the hand-written test CSV (data/pump_history.csv): an anomaly model (robust-z, exported as
parameters) and an energy model of the meter (a gradient-boosted forecaster, exported as ONNX). `edge mqtt` runs as
its own process against the session's real Mosquitto: the CSV's rows are published as JSON messages, and the scores
it prints and publishes must equal `model score` on the same rows. The estimator-level ONNX/scikit-learn parity is
libs/dtwin_ml/tests/test_onnx_export.py.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pandas as pd
import pytest
from typer.testing import CliRunner

from dtwin_cli.main import app

DATA = Path(__file__).parent / "data"
HISTORY = DATA / "pump_history.csv"
EVENTS = DATA / "events.csv"
runner = CliRunner()


def dtwin(*args: str) -> Any:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Tags and exported folders of an anomaly model (both assets) and an energy model (the meter)."""
    home = tmp_path_factory.mktemp("bentoml")
    out: dict[str, Any] = {"home": home}
    anomaly = dtwin("model", "train", "--task", "anomaly", "--name", "pump", "--csv", str(HISTORY), "--events",
                    str(EVENTS), "--namespace", "acme", "--bentoml-home", str(home))  # fmt: skip
    energy = dtwin("model", "train", "--task", "energy", "--name", "meter", "--csv", str(HISTORY), "--skip",
                   "pump-1.bearing_temp", "--skip", "pump-1.vibration", "--namespace", "acme",
                   "--bentoml-home", str(home))  # fmt: skip
    for task, result in (("anomaly", anomaly), ("energy", energy)):
        tag = result.stdout.strip().splitlines()[-1]
        folder = tmp_path_factory.mktemp(f"edge-{task}")
        written = dtwin("model", "export", "--model", tag, "--out", str(folder), "--bentoml-home", str(home))
        out[task] = (tag, folder, written.stdout.split())
    return out


def test_export_writes_the_onnx_and_the_sidecar(packages: dict[str, Any]) -> None:
    _, anomaly_dir, anomaly_files = packages["anomaly"]
    _, energy_dir, energy_files = packages["energy"]
    assert [Path(p).name for p in anomaly_files] == ["model.json"]  # robust-z: parameters, no estimator
    assert [Path(p).name for p in energy_files] == ["model.onnx", "model.json"]
    side = json.loads((anomaly_dir / "model.json").read_text())
    assert sorted(side["assets"]) == ["acme/meter-1", "acme/pump-1"]
    assert {"profile", "config", "scaler"} <= set(side["assets"]["acme/pump-1"])
    assert side["threshold"] == 0.999 and side["lookback_steps"] == 151
    energy = json.loads((energy_dir / "model.json").read_text())
    assert energy["scales"].keys() == {"acme/meter-1/power"} and "lag_24" in energy["inputs"]


@pytest.mark.parametrize("task", ["anomaly", "energy"])
def test_edge_score_equals_model_score(packages: dict[str, Any], task: str, tmp_path: Path) -> None:
    tag, folder, _ = packages[task]
    online, edge = tmp_path / "online.csv", tmp_path / "edge.csv"
    dtwin("model", "score", "--model", tag, "--csv", str(HISTORY), "--out", str(online),
          "--bentoml-home", str(packages["home"]))  # fmt: skip
    dtwin("edge", "score", "--dir", str(folder), "--csv", str(HISTORY), "--out", str(edge))
    want, got = pd.read_csv(online), pd.read_csv(edge)
    assert list(got.columns) == list(want.columns)
    assert got[["timestamp", "asset"]].equals(want[["timestamp", "asset"]])
    column = want.columns[-1]
    diff = float((got[column] - want[column]).abs().max())
    print(f"{task}: {len(got)} rows, max |edge - model score| = {diff:.2e}")
    assert diff <= (0.0 if task == "anomaly" else 1e-4)


def _collect(port: int, topic: str, into: queue.Queue[dict[str, Any]], ready: threading.Event) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-edge-listener")
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, msg: into.put(json.loads(msg.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_edge_mqtt_scores_a_live_stream_like_the_history(
    packages: dict[str, Any], mosquitto_server: Any, tmp_path: Path
) -> None:
    tag, folder, _ = packages["anomaly"]
    rows = pd.read_csv(HISTORY).iloc[:200]  # more than the model's lookback (151), so old buckets are dropped
    expected_scores = len(rows) - 1  # the last bucket is never completed
    online = tmp_path / "online.csv"
    dtwin("model", "score", "--model", tag, "--csv", str(HISTORY), "--out", str(online), "--asset", "pump-1",
          "--bentoml-home", str(packages["home"]))  # fmt: skip
    want = pd.read_csv(online).iloc[:expected_scores]

    published: queue.Queue[dict[str, Any]] = queue.Queue()
    listening = threading.Event()
    listener = _collect(mosquitto_server.port, "dtwin/edge/+/anomaly", published, listening)
    assert listening.wait(10)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "dtwin_cli", "edge", "mqtt", "--dir", str(folder), "--host", "127.0.0.1",
           "--port", str(mosquitto_server.port), "--topic", "sites/works/+/telemetry", "--namespace", "acme",
           "--map", "bearing.temp=bearing_temp", "--max-scores", str(expected_scores)]  # fmt: skip
    edge = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert edge.stderr is not None
        line = edge.stderr.readline()  # the edge says when its subscription is acknowledged
        assert line.startswith("subscribed to sites/works/+/telemetry"), line + edge.stderr.read()
        pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-edge-device")
        pub.connect("127.0.0.1", mosquitto_server.port)
        pub.loop_start()
        for r in rows.itertuples(index=False):
            body = {"ts": r[0], "bearing": {"temp": r[1]}, "vibration": r[2]}  # the binding's nested field
            pub.publish("sites/works/pump-1/telemetry", json.dumps(body), qos=1).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        out, err = edge.communicate(timeout=120)
    finally:
        if edge.poll() is None:
            edge.kill()
            edge.wait()
    assert edge.returncode == 0, err
    printed = [json.loads(x) for x in out.splitlines()]
    assert len(printed) == expected_scores
    assert [p["timestamp"] for p in printed] == list(want["timestamp"])
    diff = max(abs(p["score"] - s) for p, s in zip(printed, want["anomaly_score"], strict=True))
    print(f"edge mqtt: {len(printed)} scores, max |stream - history| = {diff:.2e}")
    assert diff <= 1e-9
    assert all(p["asset"] == "pump-1" and p["task"] == "anomaly" for p in printed)

    deadline = time.monotonic() + 10
    got: list[dict[str, Any]] = []
    while len(got) < expected_scores and time.monotonic() < deadline:
        try:
            got.append(published.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    listener.loop_stop()
    listener.disconnect()
    assert got == printed  # what it printed is what it published, in order
