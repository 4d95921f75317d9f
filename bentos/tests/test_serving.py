"""The bentos as the operator runs them: real `bentoml serve service:<Class>` processes over a real model store.

One anomaly server for the module (startup is the slow part), with batches of at most 4 windows so that every
request below is split and merged with other callers' windows by BentoML's adaptive batching.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import bentoml
import httpx
import pytest
import sklearn

from dtwin_ml import serving, store
from dtwin_ml.features import FEATURE_VERSION
from dtwin_operator.render.model import SERVICE_CLASS

from .conftest import Trained

BATCH = 4


@pytest.fixture(scope="module")
def bento(anomaly_model: Trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[serving.BentoProcess]:
    log = tmp_path_factory.mktemp("bento") / "serve.log"
    # A generous latency budget: on a busy 2-core box BentoML would otherwise shed queued requests with 503s.
    with serving.BentoProcess(
        "anomaly", anomaly_model.tag, anomaly_model.home, log, max_batch_size=BATCH, max_latency_ms=20_000
    ) as proc:
        proc.wait_ready(120)
        yield proc


def _predict(bento: serving.BentoProcess, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = httpx.post(f"{bento.url}/predict", json={"windows": windows}, timeout=120)
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()
    return out


def _concurrently(bento: serving.BentoProcess, requests: list[list[dict[str, Any]]]) -> list[list[dict[str, Any]]]:
    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(lambda ws: _predict(bento, ws), requests))


def _stamped(results: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    name, _, version = tag.partition(":")
    return [{**r, "model": name, "version": version} for r in results]


def test_predictions_over_http_are_the_bundles_in_process(bento: serving.BentoProcess, anomaly_model: Trained) -> None:
    ws = anomaly_model.windows
    requests = [ws[i::4] for i in range(4)]  # four callers at once, each with more windows than one batch holds
    assert all(len(r) > BATCH for r in requests)
    for sent, got in zip(requests, _concurrently(bento, requests), strict=True):
        assert got == _stamped(anomaly_model.bundle.predict(sent), anomaly_model.tag)


def test_a_bad_window_costs_only_its_own_answer(bento: serving.BentoProcess, anomaly_model: Trained) -> None:
    ws, bundle = anomaly_model.windows, anomaly_model.bundle
    gap = {**ws[1], "timestamps": ws[1]["timestamps"][:10] + ws[1]["timestamps"][11:]}
    short = {"asset": ws[4]["asset"], "timestamps": ws[4]["timestamps"][-20:]}
    short["values"] = {m: v[-20:] for m, v in ws[4]["values"].items()}
    mixed = [ws[0], gap, ws[2], short, ws[3]]  # its first batch of 4 holds both bad windows and two good ones
    got, others = _concurrently(bento, [mixed, ws[5:11]])
    good = _stamped(bundle.predict([ws[0], ws[2], ws[3]]), anomaly_model.tag)
    assert [got[0], got[2], got[4]] == good
    assert got[1] == {"asset": gap["asset"], "error": got[1]["error"]} and "regular" in got[1]["error"]
    assert got[3] == {"asset": short["asset"], "error": got[3]["error"]}
    assert f"needs {bundle.lookback_steps}" in got[3]["error"]
    assert others == _stamped(bundle.predict(ws[5:11]), anomaly_model.tag)
    # A body that is not a list of windows is the request's own 400, not a batch failure.
    assert httpx.post(f"{bento.url}/predict", json={"windows": [1]}, timeout=30).status_code == 400


def test_info_describes_the_served_model(bento: serving.BentoProcess, anomaly_model: Trained) -> None:
    r = httpx.post(f"{bento.url}/info", timeout=30)
    assert r.status_code == 200
    meta = store.info(anomaly_model.tag, anomaly_model.home)["metadata"]
    name, _, version = anomaly_model.tag.partition(":")
    assert r.json() == {
        "model": name,
        "version": version,
        "tag": anomaly_model.tag,
        "task": "anomaly",
        "lookback_steps": anomaly_model.bundle.lookback_steps,
        "feature_names": anomaly_model.bundle.feature_names,
        "metrics": meta["metrics"],
    }
    assert httpx.get(f"{bento.url}/livez", timeout=10).status_code == 200


def _old_model(home: Path) -> str:
    meta = {"task": "anomaly", "sklearn_version": "1.2.0", "feature_version": FEATURE_VERSION}
    with bentoml.models.create("old", labels={"task": "anomaly"}, metadata=meta, **store._kw(home)) as m:
        Path(m.path_of(store.FILE)).write_bytes(b"never unpickled")
    return str(m.tag)


@pytest.mark.parametrize(
    ("task", "model", "message"),
    [
        ("anomaly", "old", f"trained with scikit-learn 1.2.0, but scikit-learn {sklearn.__version__} is installed"),
        ("anomaly", "missing:v1", "model missing:v1 is not in the model store"),
        ("failure", "trained", "is a 'anomaly' model; this bento serves 'failure' models"),
    ],
)
def test_a_model_that_cannot_be_served_stops_the_server(
    anomaly_model: Trained, tmp_path: Path, task: str, model: str, message: str
) -> None:
    tag = {"old": lambda: _old_model(anomaly_model.home), "trained": lambda: anomaly_model.tag}.get(
        model, lambda: model
    )
    log = tmp_path / "serve.log"
    with (
        serving.BentoProcess(task, tag(), anomaly_model.home, log) as proc,
        pytest.raises(RuntimeError, match="exited"),
    ):
        proc.wait_ready(90)  # never ready: it exits first
    assert message in log.read_text()


def test_every_task_has_its_bento_as_the_operator_names_it() -> None:
    assert serving.SERVICE_CLASS == SERVICE_CLASS
    for task, cls in SERVICE_CLASS.items():
        spec = importlib.util.spec_from_file_location(f"bento_{task}", serving.BENTOS / task / "service.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        svc = getattr(module, cls)
        assert isinstance(svc, bentoml.Service) and svc.inner.task == task
        assert set(svc.apis) == {"predict", "info"} and svc.apis["predict"].batchable
        assert (serving.BENTOS / task / "bentofile.yaml").read_text().count(f"bentos.{task}.service:{cls}") == 1


def test_batching_comes_from_the_environment() -> None:
    env = {serving.BATCH_ENV: "16", serving.LATENCY_ENV: "200"}
    assert serving.batching(env) == {"batchable": True, "max_batch_size": 16, "max_latency_ms": 200}
    assert serving.batching({serving.BATCH_ENV: "1"})["batchable"] is False
    assert serving.batching({}) == {"batchable": True, "max_batch_size": 64, "max_latency_ms": 2000}
    with pytest.raises(ValueError, match="DTWIN_MAX_BATCH_SIZE='many'"):
        serving.batching({serving.BATCH_ENV: "many"})
