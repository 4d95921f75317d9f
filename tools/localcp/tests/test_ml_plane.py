"""Embedded mode's ML plane, pure parts: the demo timeline's pinned faults, and how serving_sync turns a rendered
serving container and routing table into local ones."""

from __future__ import annotations

from pathlib import Path

import yaml

from dtwin_localcp import demo_models, serving_sync, timeline
from dtwin_localcp.locations import repo_root
from dtwin_simulator import times

CONTAINER = {
    "name": "bento",
    "command": ["bentoml", "serve", "service:FailureService", "--port", "3000"],
    "workingDir": "/app/bentos/failure",
    "env": [
        {"name": "DTWIN_MODEL_TAG", "value": "failure-xgboost:2.0.1"},
        {"name": "BENTOML_HOME", "value": "/models"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}},
    ],
}


def test_faults_are_pinned_to_the_live_start_for_both_runs(tmp_path: Path) -> None:
    line = timeline.Timeline(times.parse_instant_ms("2026-03-10T12:00:00Z", 0))
    pinned = timeline.pin_faults(repo_root() / "services/simulator/faults-demo.yaml", tmp_path / "f.yaml", line)
    faults = {f["id"]: f for f in yaml.safe_load(pinned.read_text())["faults"]}
    assert faults["ct-1-offline"]["start"] == "2026-03-10T12:30:00.000Z"
    # The bearing wear began before the live stream (the backfill shows it), and fails inside the live stream.
    bearing = faults["chwp-1-bearing"]
    assert bearing["start"] == "2026-03-07T13:00:00.000Z"
    start_ms = times.parse_instant_ms(bearing["start"], 0)
    assert start_ms < line.live_start_ms
    failure_ms = start_ms + times.parse_duration_ms(bearing["duration"])
    assert line.live_start_ms < failure_ms < line.live_start_ms + times.parse_duration_ms(timeline.LIVE)


def test_a_serving_container_runs_locally_on_its_own_port_and_store() -> None:
    argv = serving_sync.local_argv(CONTAINER, 41234)
    assert argv[0].endswith("/bentoml") and argv[1:] == ["serve", "service:FailureService", "--port", "41234"]
    env = serving_sync.local_env(CONTAINER, Path("/tmp/store"))
    assert env == {"DTWIN_MODEL_TAG": "failure-xgboost:2.0.1", "BENTOML_HOME": "/tmp/store"}
    assert serving_sync.local_workdir(CONTAINER) == repo_root() / "bentos" / "failure"
    changed = {**CONTAINER, "env": [{"name": "DTWIN_MODEL_TAG", "value": "failure-xgboost:2.0.2"}]}
    assert serving_sync.template_key(changed) != serving_sync.template_key(CONTAINER)


def test_routing_points_at_the_local_servers() -> None:
    routing = {
        "name": "anomaly-hvac",
        "stable": {"version": "1.0.0", "url": "http://dtwin-model-anomaly-hvac.dtwin-demo.svc:3000"},
        "canary": {
            "version": "1.1.0",
            "url": "http://dtwin-model-anomaly-hvac-canary.dtwin-demo.svc:3000",
            "percent": 10,
        },
    }
    urls = {"dtwin-demo/dtwin-model-anomaly-hvac": "http://127.0.0.1:5001"}
    local = serving_sync.local_routing(routing, "dtwin-demo", urls)
    assert local["stable"]["url"] == "http://127.0.0.1:5001"
    # A track whose server has not started yet keeps its Service URL (the scorer counts the errors).
    assert local["canary"] == routing["canary"]
    assert routing["stable"]["url"].endswith(".svc:3000"), "the input is not modified"


def test_the_demo_needs_every_example_model_version() -> None:
    docs = [
        {"kind": "ModelDeployment", "spec": {"task": "anomaly", "model": {"name": "a", "version": "1"},
                                             "canary": {"version": "2"}}},
        {"kind": "ModelDeployment", "spec": {"task": "failure", "model": {"name": "f", "version": "3"}}},
        {"kind": "Site", "spec": {}},
    ]  # fmt: skip
    assert demo_models.wanted(docs) == [("anomaly", "a", ["1", "2"]), ("failure", "f", ["3"])]


def test_a_crashing_server_is_restarted_with_kubelets_backoff() -> None:
    assert [serving_sync.crash_delay(n) for n in (1, 2, 3, 6, 20)] == [10.0, 20.0, 40.0, 300.0, 300.0]
