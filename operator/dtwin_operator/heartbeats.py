"""A Site's `BridgeReady` condition, decided from its bridge replicas' heartbeat Leases (pure).

Each bridge replica renews a Lease (`dtwin_core.leases`), in a cluster and in embedded mode alike, so this
condition says whether ingestion processes are actually alive, where `BridgeAvailable` only says what the
StatefulSet controller believes (KWOK's pods are "available" without running anything). It is deliberately
not part of `Ready`: the Site's declared state can be fully reconciled while no bridge runs yet. The
liveness rule is the shared one (`dtwin_core.leases.is_live`), so the operator and the bridge agree on it.
Messages name the live replicas but carry nothing that changes on every renewal, so the status is written
only when a replica comes, goes or changes broker connectivity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from dtwin_core import leases
from dtwin_core.leases import Heartbeat
from dtwin_operator.indexes import LEASES, Indexes
from dtwin_operator.status import Cond, condition

BRIDGE_READY = "BridgeReady"
MAX_NAMED = 10  # replicas named in a message; the rest are counted


def of_site(idx: Indexes, namespace: str, site: str) -> list[Heartbeat]:
    """The heartbeats of a Site's bridge replicas, from the operator's lease index."""
    found = idx.get(LEASES, {}).get((namespace, site), ())
    return [h for h in found if isinstance(h, Heartbeat)]


def _names(hbs: list[Heartbeat]) -> str:
    shown = []
    for h in hbs[:MAX_NAMED]:
        note = " (broker disconnected)" if h.health.connected is False else ""
        shown.append(f"{h.holder}{note}")
    more = f" and {len(hbs) - MAX_NAMED} more" if len(hbs) > MAX_NAMED else ""
    return ", ".join(shown) + more


def bridge_ready(site: str, namespace: str, heartbeats: Iterable[Heartbeat], now: datetime) -> tuple[Cond, int]:
    """The condition and the number of live replicas."""
    every = sorted(heartbeats, key=lambda h: (h.holder, h.name))
    live = leases.live(every, now)
    if live:
        what = "replica is" if len(live) == 1 else "replicas are"
        return Cond(BRIDGE_READY, True, "ReplicasLive", f"{len(live)} bridge {what} heartbeating: {_names(live)}"), len(
            live
        )
    if not every:
        return Cond(
            BRIDGE_READY,
            False,
            "NoLiveReplicas",
            f"no bridge replica of Site {site!r} has a heartbeat Lease in namespace {namespace!r} "
            f"(label {leases.SITE_LABEL}={site}); a running bridge renews one every few seconds: check that its "
            "pods run and their logs for 'lease heartbeat' errors (API server reachable, RBAC on leases).",
        ), 0
    last = max((h.renew_time for h in every if h.renew_time), default=None)
    when = f"; the last renewal was at {leases.micro_time(last)[:19]}Z" if last else ""
    return Cond(
        BRIDGE_READY,
        False,
        "NoLiveReplicas",
        f"the heartbeats of {_names(every)} expired{when}: the bridge replicas stopped or cannot reach the API "
        "server; check the bridge pods and their logs.",
    ), 0


def stale(status: Mapping[str, Any] | None, cond: Cond) -> bool:
    """Whether the Site's status says something else than `cond` (then it needs a reconcile).

    Only the condition is compared: its message carries the live count, so `status.bridge.liveReplicas`
    cannot differ without it, and a CRD that predates (and prunes) that field cannot cause a reconcile loop.
    """
    current = condition(status, BRIDGE_READY) or {}
    want = ("True" if cond.ok else "False", cond.reason, cond.message)
    return want != (current.get("status"), current.get("reason"), current.get("message"))
