"""Pure parts of the scorer: windows from bucket rows, the canary split, results to rows and alerts, routing."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dtwin_ml.window import to_frames
from dtwin_scorer import windows
from dtwin_scorer.calls import ModelCalls
from dtwin_scorer.client import Backoff
from dtwin_scorer.results import dedup_key, interpret, score_of
from dtwin_scorer.routing import Routing, RoutingDir
from dtwin_scorer.split import CanarySplit, batches

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def routing_dict(**over: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "name": "pumps",
        "namespace": "demo",
        "task": "failure",
        "model": "failure-rf",
        "threshold": 0.7,
        "horizonHours": 72,
        "maxBatchSize": 4,
        "maxLatencyMs": 20,
        "stable": {"version": "1.0", "url": "http://stable:3000"},
        "canary": {"version": "1.1", "url": "http://canary:3000/", "percent": 20},
        "assets": ["demo/pump-1", "demo/pump-2"],
        "schemas": ["site_hq"],
    } | over


def bucket(asset: str, metric: str, t: datetime, mean: float, n: int = 60) -> dict[str, Any]:
    return {"asset": asset, "metric": metric, "bucket": t, "mean": mean, "min": mean - 1, "max": mean + 1, "count": n}


def test_window_end_is_the_last_complete_bucket() -> None:
    assert windows.window_end(T0 + timedelta(minutes=13, seconds=5)) == pd.Timestamp(T0 + timedelta(minutes=10))
    assert windows.window_end(datetime(2026, 1, 5, 0, 20)) == pd.Timestamp("2026-01-05T00:20Z")  # naive is UTC
    assert windows.span(pd.Timestamp(T0), 3) == (pd.Timestamp(T0) - pd.Timedelta(minutes=30), pd.Timestamp(T0))


def test_build_windows_fixed_grid_with_gaps_and_namespaced_assets() -> None:
    end = pd.Timestamp(T0 + timedelta(hours=1))
    rows = [
        bucket("pump-1", "temp", T0 + timedelta(minutes=20), 40.0),
        bucket("pump-1", "temp", T0 + timedelta(minutes=40), 42.0),
        bucket("pump-1", "vib", T0 + timedelta(minutes=50), 3.0, n=6),
        bucket("pump-1", "temp", T0 + timedelta(hours=1), 99.0),  # the bucket still filling: not in the window
        bucket("pump-1", "temp", T0 - timedelta(minutes=10), 1.0),  # before the window
        bucket("other", "temp", T0 + timedelta(minutes=40), 7.0),  # not in this model's selection
    ]
    (w,) = windows.build(rows, {"pump-1": "demo/pump-1", "pump-9": "demo/pump-9"}, end, steps=6)
    assert w["asset"] == "demo/pump-1"
    assert w["timestamps"] == [f"2026-01-05T00:{m:02d}:00Z" for m in range(0, 60, 10)]
    assert w["values"] == {"temp": [None, None, 40.0, None, 42.0, None], "vib": [None] * 5 + [3.0]}
    assert w["count"]["temp"] == [0.0, 0.0, 60.0, 0.0, 60.0, 0.0]  # no reading = a count of 0, not null
    assert w["min"]["vib"][-1] == 2.0 and w["max"]["temp"][2] == 41.0
    frame, stats = to_frames(w)  # what the bundles read
    assert len(frame) == 6 and stats is not None
    assert windows.build([], {"pump-1": "demo/pump-1"}, end, 6) == []
    # Silent for the last `fresh_steps` buckets: offline, not scored (pump-1's last reading is at 00:50).
    later, pump1 = end + pd.Timedelta(minutes=10), {"pump-1": "demo/pump-1"}
    assert windows.build(rows[:3], pump1, later, 6, fresh_steps=1) == []
    assert len(windows.build(rows[:3], pump1, later, 6, fresh_steps=2)) == 1


def test_query_reuses_the_trainer_bucketing() -> None:
    from dtwin_trainer.dbsource import query

    sql = windows.query("site_hq")
    assert query("site_hq") in sql and "ANY($3::text[])" in sql


@pytest.mark.parametrize("percent", [20, 10, 50, 1])
def test_canary_share_is_exact_over_few_and_many_windows(percent: int) -> None:
    split = CanarySplit()
    picks = [split.canary(percent) for _ in range(2000)]
    assert abs(sum(picks) - 2000 * percent / 100) <= 3
    assert abs(sum(picks[:100]) - percent) <= 2  # even over the first hundred


def test_canary_share_is_spread_over_assets() -> None:
    """Five assets in a fixed order, 20 % canary: every asset goes to the canary about 20 % of its passes."""
    split = CanarySplit()
    per_asset: Counter[int] = Counter()
    for _ in range(400):
        for asset in range(5):
            per_asset[asset] += split.canary(20)
    assert all(abs(n - 80) <= 4 for n in per_asset.values()), per_asset
    assert not any(CanarySplit().canary(0) for _ in range(100))
    split = CanarySplit()
    assert all(split.canary(100) for _ in range(100))


def test_batches() -> None:
    assert [list(b) for b in batches(list(range(10)), 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(batches([], 4)) == []


def window(asset: str = "demo/pump-1") -> dict[str, Any]:
    return {"asset": asset, "timestamps": ["2026-01-05T00:00:00Z", "2026-01-05T00:10:00Z"], "values": {"t": [1, 2]}}


def test_failure_result_to_row_and_alert() -> None:
    r = Routing.from_dict(routing_dict())
    top = [{"feature": "bearing_temp:slope_36", "contribution": 0.4}, {"feature": "vibration:rms", "contribution": 0.2}]
    res = {
        "asset": "demo/pump-1", "timestamp": "2026-01-05T00:10:00Z", "known": True, "probability": 0.83,
        "horizon_h": 72.0, "alert": True, "top": top, "model": "failure-rf", "version": "1.1",
    }  # fmt: skip
    score, row, alert = interpret(r, window(), res, "1.0")
    assert score == 0.83
    assert row is not None and alert is not None
    assert (row.asset, row.model, row.version, row.score, row.horizon_hours, row.task, row.rul_hours) == (
        "pump-1", "failure-rf", "1.1", 0.83, 72, "failure", None,
    )  # fmt: skip
    assert row.ts == T0 + timedelta(minutes=10)
    assert json.loads(row.explanation) == {"probability": 0.83, "horizon_h": 72.0, "alert": True, "top": top}
    assert alert.open and alert.severity == "warning" and alert.asset == "pump-1"
    assert alert.dedup_key == dedup_key("failure-rf", "pump-1") == "predictive:failure-rf:pump-1"
    assert alert.message == "pump-1: 83% probability of failure within 72 h (bearing temp slope 36, vibration rms)"
    assert json.loads(alert.details) == {
        "probability": 0.83, "horizon_hours": 72, "model": "failure-rf", "version": "1.1", "top": top,
    }  # fmt: skip
    # Over the threshold without the bundle's debounced flag: still an alert; critical from (0.7 + 1) / 2.
    _, _, alert = interpret(r, window(), res | {"alert": False, "probability": 0.9}, "1.0")
    assert alert is not None and alert.open and alert.severity == "critical"
    # Below and not flagged: the open alert of this asset and model is resolved.
    _, _, alert = interpret(r, window(), res | {"alert": False, "probability": 0.2}, "1.0")
    assert alert is not None and not alert.open and "back below" in alert.message


def test_anomaly_unknown_rul_energy_results() -> None:
    r = Routing.from_dict(routing_dict(task="anomaly", threshold=0.8))
    res = {"asset": "demo/pump-1", "known": True, "score": 0.5, "alert": True, "top": []}
    _, row, alert = interpret(r, window(), res, "1.0")
    assert row is not None and row.version == "1.0" and row.ts == T0 + timedelta(minutes=10)  # window's last step
    assert alert is not None and alert.open and alert.message == "pump-1: anomaly score 0.50"
    assert json.loads(alert.details)["score"] == 0.5
    assert interpret(r, window(), {"asset": "demo/pump-1", "known": False, "score": None}, "1.0") == (None, None, None)
    rul = Routing.from_dict(routing_dict(task="rul"))
    _, row, alert = interpret(rul, window(), {"asset": "demo/pump-1", "rul_hours": 120.5}, "1.0")
    assert row is not None and (row.score, row.rul_hours, alert) == (120.5, 120.5, None)
    energy = Routing.from_dict(routing_dict(task="energy"))
    fc = [{"timestamp": "2026-01-05T01:00:00Z", "kwh": 1.5}, {"timestamp": "2026-01-05T02:00:00Z", "kwh": None}]
    _, row, alert = interpret(energy, window(), {"asset": "demo/pump-1", "forecast": fc, "known": True}, "1.0")
    assert row is not None and (row.score, row.horizon_hours, alert) == (1.5, 24, None)
    assert score_of("failure", {"probability": True}) is None  # a bool is not a score


def test_call_stats_restart_per_version() -> None:
    calls = ModelCalls()
    calls.add("stable", "1.0", calls=3, errors=1, score_sum=0.5)
    calls.add("stable", "1.0", calls=1, score_sum=0.25)
    calls.add("canary", "1.1", calls=2, errors=2)
    stable, canary = calls.pair()
    assert stable is not None and (stable.calls, stable.errors, stable.score_sum) == (4, 1, 0.75)
    assert canary is not None and canary.error_rate == 1.0
    calls.add("canary", "1.2", calls=1)
    assert calls.pair()[1] == type(canary)("1.2", 1, 0, 0.0)
    calls.forget("canary")
    assert calls.pair()[1] is None


def test_backoff_doubles_up_to_the_cap() -> None:
    now = [0.0]
    b = Backoff(30, 100, clock=lambda: now[0])
    assert b.ready()
    assert [b.failed(), b.failed(), b.failed(), b.failed()] == [30, 60, 100, 100]
    assert not b.ready()
    now[0] = 100
    assert b.ready()
    b.ok()
    assert b.failed() == 30


def test_routing_parse_and_reload_on_change(tmp_path: Path) -> None:
    r = Routing.from_dict(routing_dict())
    assert r.canary is not None and r.canary.url == "http://canary:3000" and r.canary.percent == 20
    assert r.plain_assets() == {"pump-1": "demo/pump-1", "pump-2": "demo/pump-2"}
    assert Routing.from_dict(routing_dict(canary=None)).canary is None
    with pytest.raises(ValueError, match="unknown task"):
        Routing.from_dict(routing_dict(task="nope"))

    # kubelet's layout: <dir>/<name>.json -> ..data/<name>.json, ..data -> a timestamped dir swapped atomically
    def project(version: str, text: str) -> None:
        d = tmp_path / f"..{version}"
        d.mkdir()
        (d / "pumps.json").write_text(text)
        os.symlink(d.name, tmp_path / "..tmp")
        os.replace(tmp_path / "..tmp", tmp_path / "..data")

    project("v1", json.dumps(routing_dict()))
    (tmp_path / "pumps.json").symlink_to("..data/pumps.json")
    rd = RoutingDir(tmp_path)
    assert [x.stable.version for x in rd.load().values()] == ["1.0"]
    project("v2", json.dumps(routing_dict(stable={"version": "2.0", "url": "http://s"})))
    assert [x.stable.version for x in rd.load().values()] == ["2.0"]
    project("v3", "{not json")  # a bad update keeps the last good routing, and says so
    assert [x.stable.version for x in rd.load().values()] == ["2.0"] and rd.errors
    (tmp_path / "pumps.json").unlink()
    assert rd.load() == {} and not rd.errors
