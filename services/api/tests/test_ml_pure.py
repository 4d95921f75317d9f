"""Pure rules of the ML routes: which ModelDeployments a site sees, their summary, recommendation status moves."""

from __future__ import annotations

from typing import Any

import pytest

from dtwin_api import ml
from dtwin_core import model_calls


def _md(namespace: str, site: str | None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    selector = {"site": site} if site else {}
    return {
        "metadata": {"name": "m", "namespace": namespace, "generation": 3},
        "spec": {"task": "failure", "model": {"name": "gbm", "version": "2"}, "selector": selector},
        "status": status or {},
    }


@pytest.mark.parametrize(
    ("namespace", "site", "sees"),
    [
        ("ns", "alpha", True),
        ("ns", None, True),
        ("ns", "beta", False),
        ("other", "alpha", False),
        ("other", None, False),
    ],
)
def test_a_model_serves_the_sites_of_its_namespace_its_selector_admits(
    namespace: str, site: str | None, sees: bool
) -> None:
    assert ml.serves_site(_md(namespace, site), "alpha", "ns") is sees


def test_summary_takes_status_over_spec() -> None:
    status = {"activeVersion": "1", "canaryVersion": "3", "endpoint": "http://x", "observedGeneration": 2,
              "conditions": [{"type": "Ready", "status": "False", "reason": "Rolling"}, "junk"]}  # fmt: skip
    out = ml.model_summary(_md("ns", "alpha", status), [{"version": "1"}])
    assert (out["desired_version"], out["active_version"], out["canary_version"]) == ("2", "1", "3")
    assert (out["generation"], out["observed_generation"]) == (3, 2)
    assert out["conditions"] == [{"type": "Ready", "status": "False", "reason": "Rolling", "message": None,
                                  "last_transition_time": None}]  # fmt: skip
    assert out["calls"] == [{"version": "1"}]
    assert ml.model_summary({"metadata": {}})["calls"] == []  # an object with nothing set still summarises


def test_summary_shows_the_canarys_fate_and_never_a_rolled_back_version_as_canary() -> None:
    md = _md("ns", "alpha", {"activeVersion": "2", "canaryState": "RolledBack", "rolledBackVersion": "3",
                             "readyReplicas": 2, "canaryReadyReplicas": 0})  # fmt: skip
    md["spec"]["canary"] = {"version": "3", "trafficPercent": 10}
    out = ml.model_summary(md)
    assert (out["canary_state"], out["rolled_back_version"], out["canary_version"]) == ("RolledBack", "3", None)
    assert (out["ready_replicas"], out["canary_ready_replicas"]) == (2, 0)
    # A new canary version in the spec, not yet reconciled: shown as the canary, the old rollback still reported.
    md["spec"]["canary"]["version"] = "4"
    assert (ml.model_summary(md)["canary_version"], ml.model_summary(md)["rolled_back_version"]) == ("4", "3")
    progressing = {"canaryState": "Progressing", "canaryVersion": "4", "canaryReadyReplicas": 1}
    out = ml.model_summary({**md, "status": progressing})
    assert (out["canary_state"], out["canary_version"], out["rolled_back_version"]) == ("Progressing", "4", None)
    # Before the operator's first status, and with values the CRD would not allow: nothing made up.
    out = ml.model_summary({**md, "status": {"canaryState": "Sideways", "readyReplicas": "2"}})
    assert (out["canary_state"], out["ready_replicas"], out["canary_ready_replicas"]) == (None, None, None)


def test_calls_are_summed_per_model_and_version_across_reporters() -> None:
    def lease(model: str, stable: model_calls.CallStats | None, canary: model_calls.CallStats | None) -> Any:
        return {"metadata": {"labels": model_calls.labels(model), "annotations": model_calls.encode(stable, canary)}}

    leases = [
        lease("m", model_calls.CallStats("1", 10, 1, 4.5), model_calls.CallStats("2", 4, 2, 1.0)),
        lease("m", model_calls.CallStats("1", 5, 0, 2.5), None),
        lease("other", model_calls.CallStats("9", 1, 0, 0.5), None),
        {"metadata": {"labels": {}, "annotations": {}}},  # not a calls Lease of any model
    ]
    out = ml.calls_by_model(leases)
    assert out["m"] == [
        {"version": "1", "calls": 15, "errors": 1, "error_rate": 1 / 15, "mean_score": 0.5},
        {"version": "2", "calls": 4, "errors": 2, "error_rate": 0.5, "mean_score": 0.5},
    ]
    assert set(out) == {"m", "other"}


def test_recommendation_moves() -> None:
    assert ml.recommendation_change("open", "open") is None
    assert ml.recommendation_change("open", "accepted") == "accept"
    assert ml.recommendation_change("accepted", "dismissed") == "dismiss"
    assert ml.recommendation_change("dismissed", "open") == "reopen"
