"""The replica's heartbeat: a coordination.k8s.io Lease renewed every `renew_s`, deleted on the way out.

`heartbeat(...)` is one task of the runner's TaskGroup. Every period it server-side-applies the whole Lease
(`dtwin_core.leases.lease_body`: holder = replica, `leaseDurationSeconds`, `renewTime`, labels the operator
selects by, and a small health summary from the `health` callback as annotations) — one request that creates
or renews alike. It never blocks or crashes ingestion: the synchronous `kubernetes` client runs in a thread
with a request timeout, and any error is logged (rate-limited) and retried next period. Without an in-cluster
ServiceAccount or a kubeconfig, or with `DTWIN_BRIDGE_LEASE_ENABLED=false`, it logs once and returns.

When `stop` is set or the task is cancelled, it deletes the Lease (bounded by the request timeout), so the
operator sees the replica gone at once instead of after the lease duration. A SIGKILLed replica's Lease
simply expires; in a cluster its Pod owns it (`DTWIN_BRIDGE_LEASE_POD_NAME`/`_POD_UID`), so garbage
collection removes it with the Pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client import ApiClient, CoordinationV1Api
from kubernetes.client.exceptions import ApiException
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dtwin_core import leases
from dtwin_core.leases import Health

log = logging.getLogger(__name__)
SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
APPLY = "application/apply-patch+yaml"


def _default_namespace() -> str:
    try:
        return SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class LeaseSettings(BaseSettings):
    """`DTWIN_BRIDGE_LEASE_*`: where and how often the replica heartbeats."""

    model_config = SettingsConfigDict(env_prefix="DTWIN_BRIDGE_LEASE_", frozen=True)

    enabled: bool = True
    namespace: str = Field(default_factory=_default_namespace, min_length=1)
    renew_s: float = Field(default=10.0, gt=0)
    duration_s: int = Field(default=30, ge=1)
    request_timeout_s: float = Field(default=5.0, gt=0)
    log_every_s: float = Field(default=60.0, ge=0)  # at most one failure log per this many seconds
    pod_name: str | None = None  # with pod_uid: the Pod owns the Lease (garbage-collected with it)
    pod_uid: str | None = None

    @model_validator(mode="after")
    def _renew_within_duration(self) -> LeaseSettings:
        if self.renew_s >= self.duration_s:
            raise ValueError(f"renew_s ({self.renew_s}) must be less than duration_s ({self.duration_s})")
        return self


def connect() -> ApiClient | None:
    """A client from the in-cluster ServiceAccount, else $KUBECONFIG / ~/.kube/config; None if neither works."""
    cfg = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=cfg)
    except kubernetes.config.ConfigException:
        try:
            # Read $KUBECONFIG now: the client's own default froze it when `kubernetes` was imported.
            kubeconfig = os.environ.get("KUBECONFIG") or None
            kubernetes.config.load_kube_config(kubeconfig, client_configuration=cfg, persist_config=False)
        except Exception as err:  # missing or empty file, no context, bad YAML: all mean "no cluster"
            log.info("lease heartbeat disabled: no in-cluster ServiceAccount and no usable kubeconfig (%s)", err)
            return None
    return ApiClient(cfg)


class Throttle:
    """Logs the first of a run of failures, then at most one line per `every_s` with the count it held back."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self.failing = False
        self.suppressed = 0
        self._last = -float("inf")

    def failed(self, message: str, **fields: Any) -> None:
        now = self.clock()
        if self.failing and now - self._last < self.every_s:
            self.suppressed += 1
            return
        kv = " ".join(f"{k}={v}" for k, v in {**fields, "suppressed": self.suppressed}.items())
        log.warning("%s: %s", message, kv, extra={"lease": fields, "suppressed": self.suppressed})
        self.failing, self.suppressed, self._last = True, 0, now

    def ok(self, message: str, **fields: Any) -> None:
        if self.failing:
            kv = " ".join(f"{k}={v}" for k, v in fields.items())
            log.info("%s: %s", message, kv, extra={"lease": fields})
        self.failing, self.suppressed = False, 0


class LeaseClient:
    """The Lease of one replica; `renew` and `release` are synchronous (run them in a thread).

    One lock orders them: a renewal still in flight when the task is cancelled finishes before the delete,
    and none starts after it, so a released Lease is never re-created.
    """

    def __init__(self, api: ApiClient, cfg: LeaseSettings, site: str, replica: str) -> None:
        self.api = CoordinationV1Api(api)
        self.cfg, self.site, self.replica = cfg, site, replica
        self.name = leases.lease_name(site, replica)
        self._lock = threading.Lock()
        self._released = False

    def renew(self, health: Health, now: datetime) -> bool:
        """Apply the Lease with a fresh renewTime; False if already released."""
        owner = {"name": self.cfg.pod_name or "", "uid": self.cfg.pod_uid or ""}
        body = leases.lease_body(self.site, self.replica, self.cfg.namespace, self.cfg.duration_s, now, health, owner)
        with self._lock:
            if self._released:
                return False
            self.api.patch_namespaced_lease(
                self.name,
                self.cfg.namespace,
                body,
                field_manager=leases.FIELD_MANAGER,
                force=True,
                _content_type=APPLY,
                _request_timeout=self.cfg.request_timeout_s,
            )
        return True

    def release(self) -> bool:
        """Delete the Lease; True if it existed."""
        with self._lock:
            self._released = True
            try:
                self.api.delete_namespaced_lease(
                    self.name, self.cfg.namespace, _request_timeout=self.cfg.request_timeout_s
                )
            except ApiException as err:
                if err.status == 404:
                    return False
                raise
        return True


def _describe(err: BaseException) -> dict[str, Any]:
    if isinstance(err, ApiException):
        return {"status": err.status, "reason": err.reason}
    return {"error": type(err).__name__, "detail": str(err)[:200]}


async def _sleep_or_stop(stop: asyncio.Event | None, seconds: float) -> bool:
    """Wait `seconds`; True if `stop` was set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def heartbeat(
    cfg: LeaseSettings,
    site: str,
    replica: str,
    health: Callable[[], Health] = Health,
    *,
    stop: asyncio.Event | None = None,
    api: ApiClient | None = None,
) -> None:
    """Renew the replica's Lease until `stop` is set or the task is cancelled, then delete it."""
    if not cfg.enabled:
        log.info("lease heartbeat disabled (DTWIN_BRIDGE_LEASE_ENABLED=false)")
        return
    own_client = api is None
    api = api or await asyncio.to_thread(connect)
    if api is None:
        return
    client = LeaseClient(api, cfg, site, replica)
    where = {"lease": client.name, "namespace": cfg.namespace}
    throttle = Throttle(cfg.log_every_s)
    log.info(
        "lease heartbeat: %s/%s every %.3gs, duration %ds", cfg.namespace, client.name, cfg.renew_s, cfg.duration_s
    )
    try:
        while True:
            try:
                await asyncio.to_thread(client.renew, _probe(health), datetime.now(UTC))
                throttle.ok("lease heartbeat recovered", **where)
            except Exception as err:  # never let the API server take ingestion down; next period retries
                throttle.failed("lease heartbeat failed, retrying next period", **where, **_describe(err))
            if await _sleep_or_stop(stop, cfg.renew_s):
                return
    finally:
        await _release(client, cfg, where)
        if own_client:
            api.close()


def _probe(health: Callable[[], Health]) -> Health:
    try:
        return health()
    except Exception as err:  # a broken probe costs the annotations, not the heartbeat
        log.debug("lease health probe failed: %s", err)
        return Health()


async def _release(client: LeaseClient, cfg: LeaseSettings, where: dict[str, Any]) -> None:
    """Delete the Lease, bounded in time: a dead API server must not hold the replica's shutdown."""
    try:
        gone = await asyncio.wait_for(asyncio.to_thread(client.release), cfg.request_timeout_s + 1)
        log.info("lease %s/%s %s", cfg.namespace, client.name, "deleted" if gone else "was already gone")
    except Exception as err:
        log.warning(
            "lease not deleted; it expires by itself: %s",
            " ".join(f"{k}={v}" for k, v in {**where, **_describe(err)}.items()),
        )


def probe(consumer: Any, metrics: Any) -> Callable[[], Health]:
    """A health callback over the runner's MQTT consumer and metrics (read-only, duck-typed).

    Broker connection from `consumer.connected`; rows committed and the last commit from the metrics
    registry (`dtwin_bridge_batch_rows` sum, `dtwin_bridge_last_commit_timestamp_seconds`), so this needs
    no hook in the hot path. A value that is not there is left out of the Lease.
    """
    site = getattr(metrics, "site", None)

    def sample(name: str) -> float | None:
        registry = getattr(metrics, "registry", None)
        if registry is None or site is None:
            return None
        value = registry.get_sample_value(name, {"site": site})
        return None if value is None else float(value)

    def read() -> Health:
        connected = getattr(consumer, "connected", None)
        rows = sample("dtwin_bridge_batch_rows_sum")
        last = sample("dtwin_bridge_last_commit_timestamp_seconds")
        return Health(
            connected=connected if isinstance(connected, bool) else None,
            last_commit=datetime.fromtimestamp(last, UTC) if last else None,
            rows_committed=int(rows) if rows is not None else None,
        )

    return read
