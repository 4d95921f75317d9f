"""The edges of the rules engine: publish its events on MQTT, count them, and write them to the alerts table.

The runner feeds the `Engine` the readings of every *committed* batch (rules only see stored readings) and
ticks it once a second; every event it returns goes to `Alerts.emit`, which, in order and at once, counts it
(`dtwin_bridge_alerts_total{kind,severity,transition}`), publishes it as JSON on `<prefix>/events/alerts`
(QoS 1, not retained; `<prefix>` is the site's topic prefix, `sites/<site>` by default) and queues it for
the database. The bridge subscribes to `<prefix>/#`, so it receives its own events back; `is_own_event`
tells the ingest task to acknowledge those without parsing or dead-lettering them.

The database queue never blocks ingestion and never drops: `Pending` is unbounded but coalescing per
dedup key (an escalation folds into a still-unwritten opening or escalation of the same alert), so while the
database is down it grows with the number of distinct alert transitions, not with readings. The `write`
task drains it into one transaction at a time (`Writer.write_alerts_retrying`), retrying with backoff.

Limitation: the engine's state is in memory, per replica. With several replicas on one shared subscription
each sees only a share of the readings, so threshold durations and staleness are judged on partial signals;
the rules are correct with one bridge replica per site. A restart forgets open alerts: a condition still
present re-opens (deduplicated by the table's partial unique index); one that cleared while the bridge was
down leaves its row open.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from dtwin_bridge.db import Writer
from dtwin_bridge.metrics import Metrics
from dtwin_bridge.rules.events import AlertEscalated, AlertOpened, AlertResolved, Event

log = logging.getLogger(__name__)


def topic_prefix(site: str, subscriptions: Iterable[str]) -> str:
    """The site's topic prefix: the operator renders `<prefix>/#` as the first subscription."""
    for f in subscriptions:
        if f.endswith("/#"):
            return f[:-2]
    return f"sites/{site}"


def events_topic(prefix: str) -> str:
    return f"{prefix}/events/alerts"


def is_own_event(topic: str, prefix: str) -> bool:
    return topic.startswith(f"{prefix}/events/")


def transition(e: Event) -> str:
    return "opened" if isinstance(e, AlertOpened) else "escalated" if isinstance(e, AlertEscalated) else "resolved"


def to_json(e: Event, site: str, severity: str | None) -> bytes:
    doc = {
        "site": site,
        "transition": transition(e),
        "kind": e.kind,
        "severity": severity,
        "previous": e.previous if isinstance(e, AlertEscalated) else None,
        "sensor": e.sensor,
        "asset": e.asset,
        "at": e.at.isoformat(),
        "value": e.value,
        "message": e.message,
        "dedupKey": e.dedup_key,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class Pending:
    """Alert events not yet written, per dedup key, in order; escalations coalesce (see the module docstring)."""

    by_key: dict[str, list[Event]] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_key.values())

    def add(self, e: Event) -> None:
        q = self.by_key.setdefault(e.dedup_key, [])
        last = q[-1] if q else None
        if isinstance(e, AlertEscalated) and isinstance(last, AlertOpened):
            q[-1] = replace(last, severity=e.severity, value=e.value, message=e.message)
        elif isinstance(e, AlertEscalated) and isinstance(last, AlertEscalated):
            q[-1] = replace(e, previous=last.previous)
        else:
            q.append(e)

    def take(self) -> list[Event]:
        out = [e for q in self.by_key.values() for e in q]
        self.by_key = {}
        return out

    def put_back(self, events: list[Event]) -> None:
        """Events taken but not written go in front of what arrived since."""
        newer, self.by_key = self.by_key, {}
        for e in events:
            self.add(e)
        for q in newer.values():
            for e in q:
                self.add(e)


class Alerts:
    """Emits the engine's events; owned by the event loop thread (no locking)."""

    def __init__(
        self, site: str, prefix: str, publish: Callable[[str, bytes], None], writer: Writer, metrics: Metrics
    ) -> None:
        self.site, self.prefix, self.writer, self.metrics = site, prefix, writer, metrics
        self.publish = publish  # the consumer's `publish`
        self.pending = Pending()
        self.severity: dict[str, str] = {}  # dedup key -> severity of the open alert (resolved events have none)
        self.wake = asyncio.Event()

    def emit(self, events: Iterable[Event]) -> None:
        for e in events:
            if isinstance(e, AlertResolved):
                severity = self.severity.pop(e.dedup_key, None)
            else:
                severity = self.severity[e.dedup_key] = e.severity
            self.metrics.alert(e.kind, severity or "none", transition(e))
            try:
                self.publish(events_topic(self.prefix), to_json(e, self.site, severity))
            except Exception as err:  # publishing is best effort; the table is the record
                log.warning("alert %s not published: %r", e.dedup_key, err)
            self.pending.add(e)
        self.metrics.alerts_pending(len(self.pending))
        self.wake.set()

    async def write(self) -> None:
        """Runs until cancelled: drain the pending events into the table, one transaction at a time."""
        while True:
            self.wake.clear()
            if not self.pending.by_key:
                await self.wake.wait()
                continue
            await self.drain_once()

    async def drain_once(self) -> None:
        events = self.pending.take()
        try:
            await self.writer.write_alerts_retrying(events)
        except asyncio.CancelledError:
            self.pending.put_back(events)
            raise
        self.metrics.alerts_pending(len(self.pending))

    async def drain(self, budget_s: float) -> None:
        """Shutdown: write what is pending, for at most `budget_s` seconds (the rest is logged and lost)."""
        try:
            async with asyncio.timeout(budget_s):
                while self.pending.by_key:
                    await self.drain_once()
        except TimeoutError:
            log.error("shutdown: %d alert events not stored", len(self.pending))
