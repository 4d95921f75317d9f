"""BridgeReady from heartbeat Leases (pure), and its place in the Site status: reported, never part of Ready."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dtwin_core import leases
from dtwin_core.leases import Health, Heartbeat
from dtwin_operator import heartbeats, labels
from dtwin_operator.indexes import KEYS, LEASES, gather
from dtwin_operator.status import Cond, compose, is_true, ready_of

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def hb(holder: str, age_s: float = 0, duration: int = 30, connected: bool | None = True) -> Heartbeat:
    return Heartbeat(
        "ns", f"dtwin-bridge-hq-{holder}", "hq", holder, NOW - timedelta(seconds=age_s), duration, Health(connected)
    )


def test_the_bridge_and_the_operator_agree_on_the_label_keys() -> None:
    assert leases.SITE_LABEL == labels.SITE
    assert labels.common("hq", "bridge")[leases.NAME_LABEL] == leases.BRIDGE


def test_live_replicas_are_counted_and_named() -> None:
    cond, live = heartbeats.bridge_ready("hq", "ns", [hb("b"), hb("a", age_s=10), hb("c", age_s=31)], NOW)
    assert (cond.type, cond.ok, cond.reason, live) == ("BridgeReady", True, "ReplicasLive", 2)
    assert cond.message == "2 bridge replicas are heartbeating: a, b"


def test_a_disconnected_replica_is_live_but_said_so() -> None:
    cond, live = heartbeats.bridge_ready("hq", "ns", [hb("a", connected=False)], NOW)
    assert cond.ok and live == 1
    assert cond.message == "1 bridge replica is heartbeating: a (broker disconnected)"


def test_no_lease_at_all() -> None:
    cond, live = heartbeats.bridge_ready("hq", "ns", [], NOW)
    assert (cond.ok, cond.reason, live) == (False, "NoLiveReplicas", 0)
    assert "no bridge replica of Site 'hq' has a heartbeat Lease in namespace 'ns'" in cond.message


def test_expired_leases_name_the_replicas_and_the_last_renewal() -> None:
    cond, live = heartbeats.bridge_ready("hq", "ns", [hb("a", age_s=31), hb("b", age_s=60)], NOW)
    assert (cond.ok, cond.reason, live) == (False, "NoLiveReplicas", 0)
    assert cond.message.startswith("the heartbeats of a, b expired; the last renewal was at 2026-03-01T11:59:29Z")


def test_many_replicas_are_summarised() -> None:
    cond, live = heartbeats.bridge_ready("hq", "ns", [hb(f"r{i:02}") for i in range(13)], NOW)
    assert live == 13 and cond.message.endswith("r09 and 3 more")


def test_renewals_do_not_change_the_condition() -> None:
    """A renewal moves renewTime only; the condition (and so the status) must not move with it."""
    first, _ = heartbeats.bridge_ready("hq", "ns", [hb("a", age_s=5)], NOW)
    again, _ = heartbeats.bridge_ready("hq", "ns", [hb("a", age_s=0)], NOW)
    assert first == again


def test_stale_when_the_status_says_otherwise() -> None:
    cond, live = heartbeats.bridge_ready("hq", "ns", [hb("a")], NOW)
    status = compose(None, [cond], 1, "t", {"bridge": {"liveReplicas": live}})
    assert not heartbeats.stale(status, cond)
    assert not heartbeats.stale({**status, "bridge": {}}, cond)  # a pruned liveReplicas must not loop
    two, _ = heartbeats.bridge_ready("hq", "ns", [hb("a"), hb("b")], NOW)
    assert heartbeats.stale(status, two)
    gone, _ = heartbeats.bridge_ready("hq", "ns", [], NOW)
    assert heartbeats.stale(status, gone)
    assert heartbeats.stale(None, cond)


def test_bridge_ready_is_reported_but_not_part_of_ready() -> None:
    """As the Site reconcile composes it: parts decide Ready, BridgeReady rides along."""
    parts = [Cond("ChildrenApplied", True, "Applied"), Cond("BridgeAvailable", True, "Available")]
    dead, _ = heartbeats.bridge_ready("hq", "ns", [], NOW)
    status = compose(None, [*parts, dead], 1, "t", ready=ready_of(parts))
    assert is_true(status) and not is_true(status, "BridgeReady")
    assert [c["type"] for c in status["conditions"]] == ["Ready", "ChildrenApplied", "BridgeAvailable", "BridgeReady"]


def test_heartbeats_of_a_site_come_from_the_lease_index() -> None:
    kw: dict[str, Any] = {k: {} for k in KEYS} | {LEASES: {("ns", "hq"): [hb("a")], ("ns", "other"): [hb("z")]}}
    idx = gather(kw)
    assert [h.holder for h in heartbeats.of_site(idx, "ns", "hq")] == ["a"]
    assert heartbeats.of_site(idx, "elsewhere", "hq") == []
