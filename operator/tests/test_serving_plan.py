"""Unit tests of the ModelDeployment's pure decisions: serving availability, active version, the canary plan,
status.calls, and the status merge patch."""

from __future__ import annotations

from typing import Any

from dtwin_core.model_calls import CallStats
from dtwin_operator import serving
from dtwin_operator.api.modeldeployment import ModelDeploymentSpec
from dtwin_operator.reconcile.modeldeployment import status_patch


def spec(canary: dict[str, Any] | None = None) -> ModelDeploymentSpec:
    body: dict[str, Any] = {"task": "anomaly", "model": {"name": "m", "version": "1.0"}}
    if canary is not None:
        body["canary"] = canary
    return ModelDeploymentSpec.model_validate(body)


def dep(want: int = 1, available: int = 1, updated: int = 1, replicas: int = 1, version: str = "1.0") -> dict[str, Any]:
    status = {
        "observedGeneration": 2,
        "updatedReplicas": updated,
        "availableReplicas": available,
        "readyReplicas": available,
        "replicas": replicas,
    }
    return {"generation": 2, "replicas": want, "version": version, "status": status}


def test_serving_available_from_the_deployment() -> None:
    assert serving.serving_available("d", None, "1.0").reason == "ServingMissing"
    up = serving.serving_available("d", dep(), "1.0")
    assert (up.ok, up.reason, up.message) == (True, "Available", "1/1 serving replicas available, version 1.0")
    rolling = serving.serving_available("d", dep(updated=1, replicas=2, version="1.1"), "1.1")
    assert (rolling.ok, rolling.reason) == (True, "RollingUpdate")
    down = serving.serving_available("d", dep(available=0, updated=0), "1.0")
    assert (down.ok, down.reason) == (False, "ServingUnavailable")
    assert "kubectl describe deployment d" in down.message


def test_active_version_moves_only_once_rolled_out() -> None:
    assert serving.active_version(dep(version="1.1"), "1.0") == "1.1"
    assert serving.active_version(dep(replicas=2, version="1.1"), "1.0") == "1.0"  # the old pod is still there
    stale = {**dep(version="1.1"), "generation": 3}  # the controller has not seen the new template yet
    assert serving.active_version(stale, "1.0") == "1.0"
    assert serving.active_version(None, None) is None
    assert serving.ready_replicas(dep(available=2, want=2)) == 2 and serving.ready_replicas(None) == 0


def test_no_canary_is_off() -> None:
    p = serving.plan(spec(), None, {})
    assert (p.state, p.render, p.rolled_back_version, p.rollback) == ("Off", False, None, None)
    assert p.condition.ok and p.condition.reason == "NoCanary"


def test_canary_awaits_min_calls_then_is_healthy() -> None:
    s = spec({"version": "1.1", "minCalls": 10})
    p = serving.plan(s, None, {"1.1": CallStats("1.1", 9)})
    assert (p.state, p.render, p.condition.reason, p.condition.unknown) == ("Progressing", True, "AwaitingCalls", True)
    assert "9/10 canary calls" in p.condition.message
    totals = {"1.0": CallStats("1.0", 100, 0, 30.0), "1.1": CallStats("1.1", 20, 0, 7.0)}
    p = serving.plan(s, None, totals)
    assert (p.state, p.render, p.condition.ok, p.condition.reason) == ("Progressing", True, True, "Healthy")


def test_bad_canary_is_rolled_back_and_stays_off_until_its_version_changes() -> None:
    s = spec({"version": "1.1", "minCalls": 50, "maxErrorRate": 0.05})
    p = serving.plan(s, None, {"1.1": CallStats("1.1", 120, 50)})
    assert (p.state, p.render, p.rolled_back_version) == ("RolledBack", False, "1.1")
    assert p.rollback == "error rate 0.42 > 0.05 over 120 calls"
    assert not p.condition.ok and p.condition.message.startswith("canary 1.1 rolled back: error rate 0.42")
    # Next reconcile: the counts may have moved on, the version stays off and the reason is kept.
    again = serving.plan(s, "1.1", {"1.1": CallStats("1.1", 1000, 0)}, previous_message=p.condition.message)
    assert (again.state, again.render, again.rollback) == ("RolledBack", False, None)
    assert again.condition.message == p.condition.message
    # A new canary version starts over.
    fresh = serving.plan(spec({"version": "1.2"}), "1.1", {})
    assert (fresh.state, fresh.render, fresh.rolled_back_version) == ("Progressing", True, None)


def test_score_drift_rolls_back() -> None:
    s = spec({"version": "1.1", "minCalls": 10, "maxScoreDrift": 0.1})
    totals = {"1.0": CallStats("1.0", 100, 0, 20.0), "1.1": CallStats("1.1", 50, 0, 25.0)}
    p = serving.plan(s, None, totals)
    assert p.state == "RolledBack" and p.rollback is not None and "drift 0.3 > 0.1" in p.rollback


def test_calls_status() -> None:
    s = spec({"version": "1.1"})
    totals = {"1.0": CallStats("1.0", 200, 2, 39.6), "1.1": CallStats("1.1", 3, 1, 1.0)}
    assert serving.calls_status(s, totals) == {
        "stable": 200,
        "canary": 3,
        "stableErrorRate": 0.01,
        "canaryErrorRate": 0.3333,
        "stableMeanScore": 0.2,
        "canaryMeanScore": 0.5,
    }
    assert serving.calls_status(spec(), {})["canaryErrorRate"] is None


def test_status_patch_writes_only_changes_and_deletes_what_went() -> None:
    current = {"canaryVersion": "1.1", "calls": {"stable": 5, "canary": 2, "canaryMeanScore": 0.5}, "readyReplicas": 1}
    desired = {"canaryVersion": None, "calls": {"stable": 5, "canary": 0, "canaryMeanScore": None}, "readyReplicas": 1}
    assert status_patch(current, desired) == {
        "canaryVersion": None,
        "calls": {"stable": 5, "canary": 0, "canaryMeanScore": None},
    }
    same = {"canaryVersion": "1.1", "calls": {"stable": 5, "canary": 2, "canaryMeanScore": 0.5, "x": None}}
    assert status_patch(current, same) == {}
