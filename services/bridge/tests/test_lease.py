"""The replica's heartbeat Lease: settings, rate-limited failure logs, and the real task against a real API server.

The `cluster` tests run `heartbeat()` on an event loop in a background thread (as the runner's TaskGroup
would) and watch the Lease from the test thread through the admin kubeconfig: created, renewed with the
health summary, and deleted on a clean stop or on cancellation. Every wait has a deadline; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from dtwin_bridge import lease
from dtwin_bridge.lease import LeaseSettings, Throttle
from dtwin_bridge.metrics import Metrics
from dtwin_core import leases
from dtwin_core.leases import Health
from dtwin_localcp.kubeapi import wait_until

WAIT = 20.0

# --- plain tests -------------------------------------------------------------------------------


def test_settings_come_from_the_lease_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DTWIN_BRIDGE_LEASE_NAMESPACE", "plant")
    monkeypatch.setenv("DTWIN_BRIDGE_LEASE_RENEW_S", "2.5")
    monkeypatch.setenv("DTWIN_BRIDGE_LEASE_DURATION_S", "8")
    monkeypatch.setenv("DTWIN_BRIDGE_LEASE_ENABLED", "false")
    cfg = LeaseSettings()
    assert (cfg.namespace, cfg.renew_s, cfg.duration_s, cfg.enabled) == ("plant", 2.5, 8, False)


def test_namespace_defaults_to_the_service_accounts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DTWIN_BRIDGE_LEASE_NAMESPACE", raising=False)
    monkeypatch.setattr(lease, "SA_NAMESPACE", tmp_path / "namespace")
    assert LeaseSettings().namespace == "default"
    (tmp_path / "namespace").write_text("plant\n")
    assert LeaseSettings().namespace == "plant"


def test_renewal_must_come_before_expiry() -> None:
    with pytest.raises(ValueError, match="renew_s"):
        LeaseSettings(namespace="n", renew_s=30, duration_s=30)


def test_throttle_logs_the_first_failure_then_one_per_period_and_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    t = Throttle(60, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="dtwin_bridge.lease"):
        for second in range(0, 130, 10):  # 13 failures over two minutes
            now[0] = second
            t.failed("lease heartbeat failed", lease="l", status=503)
        t.ok("lease heartbeat recovered", lease="l")
        t.ok("lease heartbeat recovered", lease="l")  # only once
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "lease heartbeat failed: lease=l status=503 suppressed=0",
        "lease heartbeat failed: lease=l status=503 suppressed=5",
        "lease heartbeat failed: lease=l status=503 suppressed=5",
        "lease heartbeat recovered: lease=l",
    ]
    assert caplog.records[0].lease == {"lease": "l", "status": 503}  # type: ignore[attr-defined]


def test_disabled_heartbeat_returns_at_once() -> None:
    asyncio.run(asyncio.wait_for(lease.heartbeat(LeaseSettings(namespace="n", enabled=False), "hq", "r"), 5))


def test_no_cluster_config_disables_it(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("KUBECONFIG", "/dev/null")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with caplog.at_level(logging.INFO, logger="dtwin_bridge.lease"):
        asyncio.run(asyncio.wait_for(lease.heartbeat(LeaseSettings(namespace="n"), "hq", "r"), 10))
    assert [r.getMessage() for r in caplog.records if "disabled" in r.getMessage()] != []


def test_an_unreachable_api_server_is_logged_once_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    cfg = client.Configuration()
    cfg.host = "http://127.0.0.1:9"  # discard port: connection refused at once
    settings = LeaseSettings(namespace="n", renew_s=0.02, duration_s=1, request_timeout_s=0.5)
    probes = []
    stop = asyncio.Event()

    def health() -> Health:
        probes.append(1)
        if len(probes) == 2:
            raise RuntimeError("a broken probe")
        if len(probes) == 10:
            stop.set()  # ten periods of failures are enough
        return Health()

    async def scenario() -> None:
        task = asyncio.create_task(lease.heartbeat(settings, "hq", "r", health, stop=stop, api=client.ApiClient(cfg)))
        await asyncio.wait_for(task, 5)  # returns normally: the failures never escaped

    with caplog.at_level(logging.INFO, logger="dtwin_bridge.lease"):
        asyncio.run(scenario())
    failed = [r for r in caplog.records if "heartbeat failed" in r.getMessage()]
    assert len(failed) == 1, [r.getMessage() for r in caplog.records]
    assert any("not deleted" in r.getMessage() for r in caplog.records)


def test_probe_reads_connection_and_committed_rows() -> None:
    metrics = Metrics("hq")
    consumer = type("C", (), {"connected": True})()
    read = lease.probe(consumer, metrics)
    assert read().connected is True and not read().rows_committed  # no batch yet: the series may not exist
    metrics.batch(5, 0.01)
    metrics.batch(7, 0.01)
    assert read().rows_committed == 12
    assert lease.probe(object(), object())() == Health()  # nothing known: nothing claimed


# --- against the real API server ---------------------------------------------------------------


@pytest.fixture
def coordination(kubeconfig: Path) -> Iterator[client.CoordinationV1Api]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield client.CoordinationV1Api(api)
    finally:
        api.close()


@pytest.fixture
def lease_namespace(kubeconfig: Path) -> Iterator[str]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core = client.CoreV1Api(api)
    name = f"t-lease-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)
        api.close()


class Background:
    """`heartbeat()` on its own event loop thread, stopped by its `stop` event or by cancelling its task."""

    def __init__(self, settings: LeaseSettings, replica: str, health: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(settings, replica, health), daemon=True)
        self.thread.start()

    def _run(self, settings: LeaseSettings, replica: str, health: Any) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.task = asyncio.create_task(lease.heartbeat(settings, "hq", replica, health, stop=self.stop))
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

        try:
            self.loop.run_until_complete(main())
        except BaseException as err:
            self.error = err
        finally:
            self.loop.close()

    def finish(self, cancel: bool = False) -> None:
        if cancel:
            self.loop.call_soon_threadsafe(lambda: self.task and self.task.cancel())
        else:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the heartbeat did not stop"
        assert self.error is None, self.error


def read(api: client.CoordinationV1Api, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return api.api_client.sanitize_for_serialization(api.read_namespaced_lease(name, ns))
    except ApiException as err:
        if err.status == 404:
            return None
        raise


@pytest.mark.cluster
@pytest.mark.timeout(120)
@pytest.mark.parametrize("how", ["stop", "cancel"])
def test_heartbeat_creates_renews_and_deletes_its_lease(
    coordination: client.CoordinationV1Api, lease_namespace: str, how: str
) -> None:
    ns, replica = lease_namespace, f"pod-{how}"
    name = leases.lease_name("hq", replica)
    rows = iter(range(0, 10**6, 100))
    commit = datetime.now(UTC).replace(microsecond=0)
    settings = LeaseSettings(namespace=ns, renew_s=0.3, duration_s=3)  # the client comes from $KUBECONFIG
    hb = Background(settings, replica, lambda: Health(connected=True, last_commit=commit, rows_committed=next(rows)))
    try:
        first = wait_until(lambda: read(coordination, ns, name), WAIT, f"Lease {ns}/{name} to be created")
        assert first["spec"]["holderIdentity"] == replica and first["spec"]["leaseDurationSeconds"] == 3
        assert first["metadata"]["labels"] == leases.labels("hq")
        assert first["metadata"]["annotations"][leases.CONNECTED] == "true"
        seen = leases.heartbeat_of(first)
        assert seen is not None and seen.health.last_commit == commit
        assert seen.renew_time and abs(seen.renew_time - datetime.now(UTC)) < timedelta(seconds=10)

        def renewed() -> dict[str, Any] | None:
            now = read(coordination, ns, name)
            return now if now and now["spec"]["renewTime"] != first["spec"]["renewTime"] else None

        later = wait_until(renewed, WAIT, "the Lease to be renewed")
        assert int(later["metadata"]["annotations"][leases.ROWS_COMMITTED]) > int(
            first["metadata"]["annotations"][leases.ROWS_COMMITTED]
        )
        after = leases.heartbeat_of(later)
        assert after is not None and leases.is_live(after, datetime.now(UTC))
    finally:
        hb.finish(cancel=how == "cancel")
    assert read(coordination, ns, name) is None, "the Lease must be gone after a clean stop"
