"""Unit tests of status composition, reference decisions and request coalescing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dtwin_operator import resolve
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.modeldeployment import AssetSelector
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.coalesce import Coalescer
from dtwin_operator.indexes import Obj
from dtwin_operator.status import Cond, changed, compose, is_true, ready_of, set_condition


def test_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition([], Cond("Ready", False, "Waiting", "m"), 1, "T1")
    same = set_condition([first], Cond("Ready", False, "StillWaiting", "m2"), 2, "T2")
    flipped = set_condition([same], Cond("Ready", True, "Reconciled"), 2, "T3")
    assert first["lastTransitionTime"] == "T1"
    assert same["lastTransitionTime"] == "T1" and same["reason"] == "StillWaiting"
    assert same["observedGeneration"] == 2
    assert flipped["lastTransitionTime"] == "T3" and flipped["status"] == "True"


def test_ready_takes_first_failing_part() -> None:
    parts = [Cond("A", True, "Ok"), Cond("B", False, "BadB", "fix b"), Cond("C", False, "BadC")]
    assert ready_of(parts) == Cond("Ready", False, "BadB", "fix b")
    assert ready_of(parts[:1]) == Cond("Ready", True, "Reconciled", "")


def test_compose_is_stable_so_a_second_reconcile_writes_nothing() -> None:
    parts = [Cond("A", True, "Ok")]
    s1 = compose(None, parts, 3, "T1", {"assets": 2})
    s2 = compose(s1, parts, 3, "T2", {"assets": 2})
    assert s1["observedGeneration"] == 3 and [c["type"] for c in s1["conditions"]] == ["Ready", "A"]
    assert not changed(s1, s2)
    assert changed(s1, compose(s1, parts, 4, "T2", {"assets": 2}))
    assert is_true(s1) and not is_true({"conditions": []})


def _site() -> SiteSpec:
    return SiteSpec.model_validate(
        {"layout": {"floors": [{"name": "l1", "level": 1, "zones": [{"name": "east"}]}, {"name": "b1", "level": -1}]}}
    )


@pytest.mark.parametrize(
    ("location", "ok", "reason"),
    [
        ({"floor": "l1", "zone": "east"}, True, "Placed"),
        ({"floor": "b1"}, True, "Placed"),
        ({"floor": "l9"}, False, "UnknownFloor"),
        ({"floor": "l1", "zone": "west"}, False, "UnknownZone"),
    ],
)
def test_placement_checks_floor_and_zone(location: dict[str, str], ok: bool, reason: str) -> None:
    asset = AssetSpec.model_validate({"siteRef": "hq", "kind": "Pump", "location": location})
    cond = resolve.placement(asset, "hq", _site())
    assert (cond.ok, cond.reason) == (ok, reason)
    if not ok:
        assert "b1, l1" in cond.message or "east" in cond.message


def _sts(want: int | None, up: int, current: str = "r1", update: str = "r1", updated: int = 0) -> dict[str, Any]:
    """A StatefulSet as Kube.statefulset_state returns it; `want` None: spec.replicas never set."""
    status = {"replicas": want or 0, "readyReplicas": up, "availableReplicas": up, "currentRevision": current}
    return {
        "spec": {} if want is None else {"replicas": want},
        "status": {**status, "updateRevision": update, "updatedReplicas": updated},
    }


def test_bridge_available_from_statefulset_status() -> None:
    assert resolve.bridge_available("b", None).reason == "BridgeMissing"
    assert "StatefulSet b does not exist" in resolve.bridge_available("b", None).message
    up = resolve.bridge_available("b", _sts(2, 2))
    assert (up.ok, up.reason, up.message) == (True, "Available", "2/2 bridge replicas available")
    short = resolve.bridge_available("b", _sts(3, 2))
    assert (short.ok, short.reason) == (False, "BridgeUnavailable")
    assert "2/3 bridge replicas available" in short.message and "b-<ordinal>" in short.message
    # Nobody set spec.replicas yet: the API server's default of 1 is what the StatefulSet runs.
    assert not resolve.bridge_available("b", {"spec": {}, "status": {}}).ok
    assert resolve.bridge_available("b", _sts(None, 1)).ok
    # Without availableReplicas (minReadySeconds unknown to an old server), ready pods count.
    assert resolve.bridge_available("b", {"spec": {"replicas": 1}, "status": {"readyReplicas": 1}}).ok


def test_bridge_stays_available_while_a_rolling_update_replaces_one_pod() -> None:
    rolling = resolve.bridge_available("b", _sts(3, 2, current="b-1", update="b-2", updated=1))
    assert (rolling.ok, rolling.reason) == (True, "RollingUpdate")
    assert rolling.message == "2/3 bridge replicas available; rolling out revision b-2 (1 updated so far)"
    # Two down is more than the one pod a StatefulSet replaces at a time.
    assert not resolve.bridge_available("b", _sts(3, 1, current="b-1", update="b-2")).ok
    # The only replica being replaced: nothing ingests meanwhile (its messages wait at the broker).
    alone = resolve.bridge_available("b", _sts(1, 0, current="b-1", update="b-2"))
    assert (alone.ok, alone.reason) == (False, "BridgeUnavailable") and "rolling out revision b-2" in alone.message
    done = resolve.bridge_available("b", _sts(3, 3, current="b-1", update="b-2", updated=2))
    assert (done.ok, done.reason) == (True, "Available") and done.message.endswith("(2 updated so far)")


def test_bridge_scaled_to_zero_says_how_to_recover() -> None:
    cond = resolve.bridge_available("b", _sts(0, 0))
    assert (cond.ok, cond.reason) == (False, "ScaledToZero")
    assert "kubectl scale statefulset b --replicas=1" in cond.message


def _asset(name: str, site: str, kind: str, **labels: str) -> Obj:
    return Obj("ns", name, "u", 1, {"siteRef": site, "kind": kind}, {}, labels)


def test_selector_matches_all_criteria() -> None:
    assets = [
        _asset("p1", "hq", "Pump", system="water"),
        _asset("c1", "hq", "Chiller"),
        _asset("p2", "plant", "Pump", system="water"),
    ]
    pick = lambda **s: [a.name for a in resolve.selected(AssetSelector.model_validate(s), assets)]  # noqa: E731
    assert pick() == ["c1", "p1", "p2"]
    assert pick(site="hq") == ["c1", "p1"]
    assert pick(kinds=["Pump"]) == ["p1", "p2"]
    assert pick(site="hq", kinds=["Pump", "Chiller"], matchLabels={"system": "water"}) == ["p1"]
    assert not resolve.selection(0).ok and resolve.selection(3).message == "3 assets selected"


def test_coalescer_runs_once_for_requests_made_during_a_run() -> None:
    async def scenario() -> list[int]:
        c, runs, gate = Coalescer(), [], asyncio.Event()

        async def work() -> None:
            runs.append(len(runs))
            await gate.wait()

        first = asyncio.create_task(c.run("k", work))
        await asyncio.sleep(0)  # let the first run start and block on the gate
        waiters = [asyncio.create_task(c.run("k", work)) for _ in range(5)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(first, *waiters)
        assert results.count(True) == 2  # the first run, then one run covering all five waiters
        return runs

    assert asyncio.run(scenario()) == [0, 1]


def test_coalescer_failed_run_covers_nobody() -> None:
    async def scenario() -> int:
        c, calls = Coalescer(), []

        async def boom() -> None:
            calls.append(1)
            raise RuntimeError

        with pytest.raises(RuntimeError):
            await c.run("k", boom)
        with pytest.raises(RuntimeError):
            await c.run("k", boom)
        return len(calls)

    assert asyncio.run(scenario()) == 2
