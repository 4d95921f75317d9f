"""Unit tests of the model call statistics: the Lease annotations both sides share, totals, the canary verdict."""

from __future__ import annotations

import pytest

from dtwin_core import model_calls
from dtwin_core.model_calls import CallStats, aggregate, decode, encode, outdated, verdict


def test_encode_decode_round_trip_with_exact_keys() -> None:
    stable, canary = CallStats("1.0", 400, 3, 123.25), CallStats("1.1", 120, 50, 30.5)
    annotations = encode(stable, canary)
    assert annotations == {
        "dtwin.io/stable-version": "1.0",
        "dtwin.io/stable-calls": "400",
        "dtwin.io/stable-errors": "3",
        "dtwin.io/stable-score-sum": "123.25",
        "dtwin.io/canary-version": "1.1",
        "dtwin.io/canary-calls": "120",
        "dtwin.io/canary-errors": "50",
        "dtwin.io/canary-score-sum": "30.5",
    }
    assert set(annotations) == set(model_calls.ANNOTATIONS)
    assert decode(annotations) == (stable, canary)


def test_a_track_not_called_is_left_out_and_decodes_to_none() -> None:
    annotations = encode(CallStats("1.0", 5, 0, 2.0), None)
    assert not any(k.startswith("dtwin.io/canary-") for k in annotations)
    assert decode(annotations) == (CallStats("1.0", 5, 0, 2.0), None)
    assert decode(None) == (None, None)
    assert decode({"unrelated": "x"}) == (None, None)


@pytest.mark.parametrize(
    "bad",
    [
        {"dtwin.io/canary-calls": "many"},
        {"dtwin.io/canary-calls": "-1"},
        {"dtwin.io/canary-errors": "11"},  # more errors than calls
        {"dtwin.io/canary-score-sum": "nan"},
    ],
)
def test_malformed_counters_are_no_evidence(bad: dict[str, str]) -> None:
    annotations = {**encode(CallStats("1.0", 10, 0, 5.0), CallStats("1.1", 10, 1, 4.0)), **bad}
    stable, canary = decode(annotations)
    assert stable == CallStats("1.0", 10, 0, 5.0)
    assert canary is None


def test_a_lease_is_outdated_once_none_of_its_versions_is_served() -> None:
    both = encode(CallStats("1.0", 10), CallStats("1.1", 5))
    assert not outdated(both, ["1.0"])  # its stable counters still count
    assert not outdated(both, ["2.0", "1.1"])
    assert outdated(both, ["2.0"])
    assert outdated(encode(CallStats("0.9", 3), None), ["1.0", "1.1"])
    assert not outdated(encode(None, None), ["1.0"]), "a reporter with no calls yet is left alone"
    assert not outdated({"dtwin.io/stable-version": "0.9", "dtwin.io/stable-calls": "x"}, ["1.0"]), "malformed"


def test_aggregate_adds_up_per_version_across_reporters_and_tracks() -> None:
    a = decode(encode(CallStats("1.0", 100, 1, 40.0), CallStats("1.1", 20, 2, 9.0)))
    b = decode(encode(CallStats("1.0", 50, 0, 20.0), CallStats("1.1", 30, 3, 13.5)))
    c = decode(encode(CallStats("1.1", 10, 0, 5.0), None))  # a reporter already serving 1.1 as its stable
    totals = aggregate([*a, *b, *c])
    assert totals == {"1.0": CallStats("1.0", 150, 1, 60.0), "1.1": CallStats("1.1", 60, 5, 27.5)}
    assert aggregate([]) == {}


def test_rates_and_means() -> None:
    s = CallStats("1", 10, 2, 4.0)
    assert s.error_rate == pytest.approx(0.2)
    assert s.mean_score == pytest.approx(0.5)  # over the 8 successful calls
    assert CallStats("1").error_rate is None and CallStats("1", 3, 3).mean_score is None
    with pytest.raises(ValueError, match="version"):
        _ = CallStats("1") + CallStats("2")


def test_no_verdict_before_min_calls() -> None:
    ok, reason = verdict(CallStats("1.0", 500), CallStats("1.1", 49, 49), 50, 0.05, 0.2)
    assert ok is None and reason == "49/50 canary calls so far; no verdict before canary.minCalls"
    assert verdict(CallStats("1.0", 500), None, 50, 0.05, 0.2)[0] is None


def test_error_rate_above_the_limit_rolls_back() -> None:
    ok, reason = verdict(CallStats("1.0", 500, 0, 100.0), CallStats("1.1", 120, 50, 20.0), 50, 0.05, 0.2)
    assert ok is False
    assert reason == "error rate 0.42 > 0.05 over 120 calls"
    # The limit itself passes.
    assert verdict(CallStats("1.0", 500, 0, 100.0), CallStats("1.1", 100, 5, 19.0), 50, 0.05, 0.2)[0] is True


def test_score_drift_above_the_limit_rolls_back() -> None:
    stable = CallStats("1.0", 200, 0, 40.0)  # mean 0.2
    ok, reason = verdict(stable, CallStats("1.1", 100, 0, 60.0), 50, 0.05, 0.2)  # mean 0.6
    assert ok is False
    assert reason == "mean score 0.6 vs stable 0.2: drift 0.4 > 0.2 over 100 calls"
    ok, reason = verdict(stable, CallStats("1.1", 100, 1, 29.7), 50, 0.05, 0.2)  # mean 0.3
    assert ok is True
    assert reason == "error rate 0.01 <= 0.05, score drift 0.1 <= 0.2 over 100 calls"


def test_drift_waits_for_enough_stable_calls() -> None:
    ok, reason = verdict(CallStats("1.0", 10, 0, 1.0), CallStats("1.1", 100, 0, 90.0), 50, 0.05, 0.2)
    assert ok is True
    assert "score drift not judged yet (10/50 stable calls)" in reason


def test_lease_name_labels_and_body() -> None:
    assert model_calls.lease_name("anomaly-hvac", "scorer-0") == "dtwin-model-anomaly-hvac-calls-scorer-0"
    assert model_calls.lease_name("m", "Edge_GW 1") == "dtwin-model-m-calls-edge-gw-1"
    body = model_calls.lease_body("demo", "m", "scorer-0", CallStats("1.0", 1, 0, 0.5), None)
    assert body["metadata"]["labels"]["dtwin.io/model"] == "m"
    assert body["spec"] == {"holderIdentity": "scorer-0"}
    assert decode(body["metadata"]["annotations"]) == (CallStats("1.0", 1, 0, 0.5), None)
    assert model_calls.selector("m") == "dtwin.io/model=m,app.kubernetes.io/component=model-calls"
