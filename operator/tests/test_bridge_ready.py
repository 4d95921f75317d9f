"""The Site's BridgeReady condition follows its bridge replicas' heartbeat Leases, against a real API server.

The first test writes the Leases itself, exactly as `dtwin_bridge.lease` does (server-side apply of
`dtwin_core.leases.lease_body`), so it controls when a replica renews, leaves or dies; the second runs the
bridge's real heartbeat task against the same operator. The first checks that a
live Lease makes BridgeReady True and a deleted one is noticed within the operator's check interval, that
one which stops renewing turns the condition False within its duration plus that interval (and not
before it expires), and that Ready never depends on any of it. Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from dtwin_bridge import lease
from dtwin_core import leases
from dtwin_localcp import kopf_process, processes
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.postgres import PgServer
from dtwin_localcp.twin import Twin

pytestmark = pytest.mark.cluster

CHECK_INTERVAL = 0.5
SHORT = 2  # leaseDurationSeconds of the replica that dies
CONVERGE = 60.0


@pytest.fixture(scope="module")
def twin(kubeconfig: Path, crds_installed: list[str]) -> Twin:
    return Twin(kubeconfig, field_manager="dtwin-tests", database_per_namespace=True)


@pytest.fixture(scope="module")
def operator(
    kubeconfig: Path, crds_installed: list[str], postgres_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    run_dir = tmp_path_factory.mktemp("operator")
    env = {
        "DTWIN_OPERATOR_DRIFT_INTERVAL": "30",
        "DTWIN_OPERATOR_RETRY_DELAY": "1",
        "DTWIN_OPERATOR_ERROR_BACKOFF": "1",
        "DTWIN_OPERATOR_LEASE_CHECK_INTERVAL": str(CHECK_INTERVAL),
        "DTWIN_OPERATOR_DATABASE_URL": postgres_server.dsn("{database}"),
    }
    with kopf_process.running(run_dir, kubeconfig, env):
        yield run_dir
    print(f"operator log: {processes.log_path(run_dir, kopf_process.NAME)}")


def beat(api: client.CoordinationV1Api, ns: str, replica: str, duration_s: int) -> datetime:
    """One renewal, as the bridge sends it; returns its renewTime."""
    now = datetime.now(UTC)
    body = leases.lease_body("hq", replica, ns, duration_s, now, leases.Health(connected=True))
    api.patch_namespaced_lease(
        body["metadata"]["name"],
        ns,
        body,
        field_manager=leases.FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    return now


def conditions(twin: Twin, ns: str, site: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The Site's conditions by type: of `site` if given (one read), else of a fresh read."""
    site = site if site is not None else twin.get("Site", ns, "hq") or {}
    return {c["type"]: c for c in (site.get("status") or {}).get("conditions") or []}


def wait_bridge_ready(twin: Twin, ns: str, status: str, message: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        site = twin.get("Site", ns, "hq") or {}
        # The condition from the same read as the returned status, or the two could come from different writes.
        c = conditions(twin, ns, site).get("BridgeReady", {})
        return site if (c.get("status"), c.get("message", "")[: len(message)]) == (status, message) else None

    return wait_until(
        check, CONVERGE, f"BridgeReady={status} {message!r}", on_timeout=lambda: json.dumps(conditions(twin, ns))
    )


def test_bridge_ready_follows_the_heartbeat_leases(
    twin: Twin, operator: Path, namespace: str, kube_client: client.ApiClient
) -> None:
    api = client.CoordinationV1Api(kube_client)
    twin.apply(
        {
            "apiVersion": "dtwin.io/v1alpha1",
            "kind": "Site",
            "metadata": {"name": "hq"},
            "spec": {"layout": {"floors": [{"name": "l1", "level": 1}]}},
        },
        namespace,
    )
    # No bridge has ever run (KWOK's pods run nothing): Ready, but not BridgeReady.
    twin.wait_all_ready(namespace, expected=1, timeout=CONVERGE)
    site = wait_bridge_ready(twin, namespace, "False", "no bridge replica of Site 'hq' has a heartbeat Lease")
    assert conditions(twin, namespace)["BridgeReady"]["reason"] == "NoLiveReplicas"
    assert site["status"]["bridge"]["liveReplicas"] == 0, site["status"]

    beat(api, namespace, "r1", 60)
    beat(api, namespace, "r2", 60)
    site = wait_bridge_ready(twin, namespace, "True", "2 bridge replicas are heartbeating: r1, r2")
    assert site["status"]["bridge"]["liveReplicas"] == 2, site["status"]
    assert conditions(twin, namespace)["Ready"]["status"] == "True", conditions(twin, namespace)

    # A clean shutdown deletes the Lease: seen at the next check, not after an expiry.
    api.delete_namespaced_lease(leases.lease_name("hq", "r1"), namespace)
    wait_bridge_ready(twin, namespace, "True", "1 bridge replica is heartbeating: r2")

    # r2 renews once more with a short duration, then dies without a word.
    last = beat(api, namespace, "r2", SHORT)
    site = wait_bridge_ready(twin, namespace, "False", "the heartbeats of r2 expired")
    noticed = time.time() - last.timestamp()
    assert noticed < SHORT + CHECK_INTERVAL + 5, f"took {noticed:.1f}s after the last renewal"
    (cond,) = [c for c in site["status"]["conditions"] if c["type"] == "BridgeReady"]
    flipped = datetime.fromisoformat(cond["lastTransitionTime"])
    assert flipped.timestamp() >= int(last.timestamp()) + SHORT - 1, f"False before expiry: {last} {site['status']}"
    assert site["status"]["bridge"]["liveReplicas"] == 0, site["status"]
    assert conditions(twin, namespace)["Ready"]["status"] == "True", conditions(twin, namespace)

    # It comes back by itself when the replica does.
    beat(api, namespace, "r2", 60)
    wait_bridge_ready(twin, namespace, "True", "1 bridge replica is heartbeating: r2")


def test_the_real_bridge_heartbeat_makes_the_site_bridge_ready(
    twin: Twin, operator: Path, namespace: str, kubeconfig: Path
) -> None:
    """`dtwin_bridge.lease.heartbeat` as the runner runs it (here on a thread's event loop), with the operator."""
    twin.apply(
        {
            "apiVersion": "dtwin.io/v1alpha1",
            "kind": "Site",
            "metadata": {"name": "hq"},
            "spec": {"layout": {"floors": [{"name": "l1", "level": 1}]}},
        },
        namespace,
    )
    wait_bridge_ready(twin, namespace, "False", "no bridge replica")
    settings = lease.LeaseSettings(namespace=namespace, renew_s=0.5, duration_s=5)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def health() -> leases.Health:
        return leases.Health(connected=False)

    runner = threading.Thread(
        target=loop.run_until_complete, args=(lease.heartbeat(settings, "hq", "embedded", health, stop=stop),)
    )
    runner.start()
    try:
        wait_bridge_ready(twin, namespace, "True", "1 bridge replica is heartbeating: embedded (broker disconnected)")
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(30)
        loop.close()
    # A clean stop deletes the Lease: False at the next check, long before the 5 s duration would run out.
    started = time.monotonic()
    wait_bridge_ready(twin, namespace, "False", "no bridge replica")
    assert time.monotonic() - started < 5
