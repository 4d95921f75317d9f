"""Bridge heartbeats: keep each Site's `BridgeReady` condition in step with its replicas' Leases.

The `bridge_leases` index (`dtwin_operator.indexes`) holds every bridge heartbeat Lease, fed by one watch
that the API server already filters by label (set at startup below), so the node and leader-election
Leases of the cluster never reach the operator. A daemon per Site compares, every `lease_check_interval`
seconds and in memory only, what the Leases say with what the Site's status says, and runs the Site
reconcile only when they disagree: a replica came, left (a clean shutdown deletes its Lease) or died (its
Lease expired — nothing else happens when a replica dies, hence the polling). A renewal that changes
nothing costs nothing; a transition costs one Site reconcile.

A daemon rather than a timer or an event handler on Leases: Kopf logs every timer run and every event
handler call at INFO, which at this rate (and per renewal) would drown the operator's log. Kopf's indexes
are live objects, so the daemon sees every Lease event without being called for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import kopf

from dtwin_core import leases
from dtwin_operator import heartbeats, runtime
from dtwin_operator.api.common import GROUP, VERSION
from dtwin_operator.indexes import Indexes, gather, one
from dtwin_operator.settings import OperatorSettings

SITES = (GROUP, VERSION, "sites")
LEASES = ("coordination.k8s.io", "v1", "leases")


async def check(memo: kopf.Memo, idx: Indexes, namespace: str, site: str) -> bool:
    """Reconcile the Site if its BridgeReady condition is out of date; True if it did."""
    obj = one(idx["sites"], (namespace, site))
    if obj is None or obj.deleting:
        return False
    cond, _ = heartbeats.bridge_ready(site, namespace, heartbeats.of_site(idx, namespace, site), datetime.now(UTC))
    if not heartbeats.stale(obj.status, cond):
        return False
    await runtime.of(memo).site(idx, namespace, site)
    return True


def register(registry: kopf.OperatorRegistry, cfg: OperatorSettings) -> None:
    @kopf.on.startup(id="bridge-lease-selector", registry=registry)
    async def selector(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Server-side filtering: without it Kopf would receive every Lease of the cluster (each node renews
        # one every 10 s) and drop all but ours client-side.
        settings.watching.label_selectors[LEASES] = leases.selector()

    @kopf.daemon(*SITES, id="bridge-liveness", registry=registry, cancellation_timeout=5)
    async def liveness(
        namespace: str, name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, logger: logging.Logger, **kw: Any
    ) -> None:
        idx = gather(kw)
        while not stopped:
            try:
                await check(memo, idx, namespace, name)
            except Exception as err:  # the reconcile failed (API server, database): try again next round
                logger.warning("BridgeReady not updated, retrying in %ss: %s", cfg.lease_check_interval, err)
            await stopped.wait(cfg.lease_check_interval)
