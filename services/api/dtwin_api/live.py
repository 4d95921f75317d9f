"""Live events for the WebSocket: one MQTT subscriber per process, a hub fanning events out per site, and a
bounded outbox per client that coalesces telemetry under backpressure.

The bridge publishes committed readings on `<prefix>/events/telemetry` (QoS 0) and alert transitions on
`<prefix>/events/alerts` (QoS 1). The prefix of a site comes from `mqtt_topic_prefix_template`
(`sites/{site}`), so the subscriber listens on `sites/+/events/#` and reads the site from the topic, never
from the payload (a payload naming another site is dropped).

paho-mqtt runs its own network thread; each message is handed to the event loop with
`loop.call_soon_threadsafe(hub.dispatch, topic, payload)`, so the hub and every outbox are touched from the
loop thread only. The bridge's W3C trace context (MQTT v5 user properties `traceparent`/`tracestate`) is read
in that thread and handed along: the hub opens one span per batch it delivers to a site's clients, a child of
the publishing span (and linked to it), so a reading's trace continues from the device to the WebSocket.

Outbox: at most `max_readings` pending readings and `max_alerts` pending alerts. Telemetry frames queue as
they come while they fit; once they would not, every pending reading is folded into one dict
sensor -> newest reading (by `ts`) and later readings merge into it until the client has caught up: a slow
client gets the latest value of each sensor, not a growing backlog. Alerts are never coalesced or dropped:
past `max_alerts` the outbox is marked overflowed and the connection is closed (code 1013) so the client
reconnects and resumes from the database (its sender task is cancelled, since it may be blocked in a send
to that very client).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho
import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import CollectorRegistry, Counter, Gauge

from dtwin_core.tracing import context_from_user_properties

log = structlog.get_logger("dtwin_api.live")

SITE_PLACEHOLDER = "{site}"


# --- topics ---------------------------------------------------------------------------------------------


def check_template(template: str) -> str:
    """`{site}` must be exactly one whole topic level, and no wildcards elsewhere."""
    levels = template.split("/")
    if levels.count(SITE_PLACEHOLDER) != 1 or any(
        lvl != SITE_PLACEHOLDER and ("{" in lvl or "+" in lvl or "#" in lvl or not lvl) for lvl in levels
    ):
        raise ValueError("the topic prefix template needs `{site}` as one whole level, e.g. `sites/{site}`")
    return template


def subscription(template: str) -> str:
    """`sites/{site}` -> `sites/+/events/#`."""
    return template.replace(SITE_PLACEHOLDER, "+") + "/events/#"


def parse_topic(template: str, topic: str) -> tuple[str, str] | None:
    """(site, kind) of `<prefix>/events/<kind>` with kind telemetry or alerts, else None."""
    levels, parts = template.split("/"), topic.split("/")
    if len(parts) != len(levels) + 2 or parts[-2] != "events" or parts[-1] not in ("telemetry", "alerts"):
        return None
    site = None
    for lvl, part in zip(levels, parts, strict=False):
        if lvl == SITE_PLACEHOLDER:
            site = part
        elif lvl != part:
            return None
    return (site, parts[-1]) if site else None


# --- events and filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    sensor: str
    asset: str | None
    metric: str | None
    ts: datetime
    doc: dict[str, Any]  # as published (or as replayed): sensor asset metric unit ts value


def readings_of(event: Any) -> list[Reading]:
    """The valid readings of a telemetry event (a reading without sensor or with a naive/invalid ts is skipped)."""
    out = []
    rows = event.get("readings") if isinstance(event, dict) else None
    for r in rows if isinstance(rows, list) else ():
        try:
            ts = datetime.fromisoformat(r["ts"])
            if ts.tzinfo is None or not isinstance(r["sensor"], str):
                continue
            out.append(Reading(r["sensor"], r.get("asset"), r.get("metric"), ts, r))
        except (KeyError, TypeError, ValueError):
            continue
    return out


@dataclass(frozen=True)
class Filter:
    assets: frozenset[str] | None = None  # None: every asset
    metrics: frozenset[str] | None = None
    alerts: bool = True

    def reading(self, r: Reading) -> bool:
        return (self.assets is None or r.asset in self.assets) and (self.metrics is None or r.metric in self.metrics)

    def alert(self, a: dict[str, Any]) -> bool:
        return self.alerts and (self.assets is None or a.get("asset") in self.assets)


# --- outbox ---------------------------------------------------------------------------------------------


@dataclass
class Outbox:
    max_readings: int
    max_alerts: int
    frames: deque[list[Reading]] = field(default_factory=deque)
    latest: dict[str, Reading] = field(default_factory=dict)  # coalesced telemetry, sensor -> newest
    alerts: deque[dict[str, Any]] = field(default_factory=deque)
    queued: int = 0  # readings in `frames`
    peak: int = 0  # most readings + alerts ever pending at once (tests assert the bound)
    coalesced: int = 0  # readings replaced by a newer one of their sensor
    dropped: int = 0  # readings of a sensor beyond `max_readings` distinct sensors
    overflowed: bool = False
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def size(self) -> int:
        return self.queued + len(self.latest) + len(self.alerts)

    def put_readings(self, readings: Sequence[Reading]) -> tuple[int, int]:
        """Queue readings; returns (coalesced, dropped) of this call."""
        if not readings:
            return 0, 0
        before = (self.coalesced, self.dropped)
        if not self.latest and self.queued + len(readings) <= self.max_readings:
            self.frames.append(list(readings))
            self.queued += len(readings)
        else:
            while self.frames:
                self._merge(self.frames.popleft())
            self.queued = 0
            self._merge(readings)
        self.peak = max(self.peak, self.size)
        self.ready.set()
        return self.coalesced - before[0], self.dropped - before[1]

    def _merge(self, readings: Iterable[Reading]) -> None:
        for r in readings:
            old = self.latest.get(r.sensor)
            if old is not None:
                self.coalesced += 1
                if r.ts >= old.ts:
                    self.latest[r.sensor] = r
            elif len(self.latest) < self.max_readings:
                self.latest[r.sensor] = r
            else:
                self.dropped += 1

    def put_alert(self, alert: dict[str, Any]) -> bool:
        """False (and overflowed) once the alert backlog is full: the connection must be closed."""
        if len(self.alerts) >= self.max_alerts:
            self.overflowed = True
        else:
            self.alerts.append(alert)
            self.peak = max(self.peak, self.size)
        self.ready.set()
        return not self.overflowed

    def take(self) -> tuple[str, Any] | None:
        """The next frame to send: ("alert", doc), ("telemetry", readings) or ("coalesced", readings)."""
        if self.alerts:
            return "alert", self.alerts.popleft()
        if self.frames:
            frame = self.frames.popleft()
            self.queued -= len(frame)
            return "telemetry", frame
        if self.latest:
            readings = sorted(self.latest.values(), key=lambda r: (r.ts, r.sensor))
            self.latest = {}
            return "coalesced", readings
        return None


# --- hub ------------------------------------------------------------------------------------------------


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge("dtwin_api_ws_connections", "Open WebSocket connections", registry=registry)
        self.sent = Counter("dtwin_api_ws_messages_sent", "WebSocket frames sent, by type", ["type"], registry=registry)
        self.coalesced = Counter(
            "dtwin_api_ws_messages_coalesced",
            "Readings replaced by a newer reading of their sensor in a slow client's outbox",
            registry=registry,
        )
        self.dropped = Counter(
            "dtwin_api_ws_messages_dropped",
            "Readings dropped: a slow client's outbox already held its limit of distinct sensors",
            registry=registry,
        )
        self.overflows = Counter(
            "dtwin_api_ws_alert_overflows", "Clients closed because their alert backlog was full", registry=registry
        )
        self.events = Counter(
            "dtwin_api_mqtt_events_received", "MQTT events received, by kind", ["kind"], registry=registry
        )


@dataclass(eq=False)
class Client:
    site: str
    filter: Filter
    outbox: Outbox
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    pump: asyncio.Task[None] | None = None  # the sender; cancelled when the alert backlog overflows


class Hub:
    """Clients by site; `dispatch` runs on the event loop (from the MQTT thread via call_soon_threadsafe)."""

    def __init__(self, template: str, metrics: LiveMetrics, tracer: trace.Tracer | None = None) -> None:
        self.template = check_template(template)
        self.metrics = metrics
        self.tracer = tracer or trace.get_tracer("dtwin_api.live")
        self.clients: dict[str, set[Client]] = {}
        self.received = 0  # events dispatched (tests wait on it)

    def add(self, client: Client) -> None:
        self.clients.setdefault(client.site, set()).add(client)

    def remove(self, client: Client) -> None:
        group = self.clients.get(client.site)
        if group is not None:
            group.discard(client)
            if not group:
                del self.clients[client.site]

    def dispatch(self, topic: str, payload: bytes | bytearray, parent: Context | None = None) -> None:
        self.received += 1
        parsed = parse_topic(self.template, topic)
        if parsed is None:
            return
        site, kind = parsed
        self.metrics.events.labels(kind).inc()
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("live_event_invalid", topic=topic, reason="not JSON")
            return
        if not isinstance(event, dict) or event.get("site", site) != site:
            log.warning("live_event_invalid", topic=topic, reason="not an object or names another site")
            return
        clients = self.clients.get(site)
        if not clients:
            return
        links = [trace.Link(trace.get_current_span(parent).get_span_context())] if parent is not None else []
        with self.tracer.start_as_current_span(
            f"ws deliver {kind}", context=parent, kind=trace.SpanKind.CONSUMER, links=links,
            attributes={"dtwin.site": site, "dtwin.event.kind": kind, "dtwin.ws.clients": len(clients),
                        "messaging.destination.name": topic},
        ):  # fmt: skip
            self._deliver(site, kind, event, clients)

    def _deliver(self, site: str, kind: str, event: dict[str, Any], clients: set[Client]) -> None:
        if kind == "telemetry":
            readings = readings_of(event)
            for c in list(clients):
                coalesced, dropped = c.outbox.put_readings([r for r in readings if c.filter.reading(r)])
                if coalesced:
                    self.metrics.coalesced.inc(coalesced)
                if dropped:
                    self.metrics.dropped.inc(dropped)
        else:
            for c in list(clients):
                if c.filter.alert(event) and not c.outbox.put_alert(event):
                    self.remove(c)  # no more events; the sender may be stuck in a send to this slow client
                    if c.pump is not None:
                        c.pump.cancel()
                    self.metrics.overflows.inc()
                    log.warning("ws_alert_backlog_full", client=c.id, site=site, limit=c.outbox.max_alerts)


class Subscriber:
    """The process's MQTT subscription: paho's network thread feeding `hub.dispatch` on the event loop."""

    def __init__(self, hub: Hub, host: str, port: int, loop: asyncio.AbstractEventLoop) -> None:
        self.hub, self.host, self.port, self.loop = hub, host, port, loop
        self.subscribed = threading.Event()
        self.filter = subscription(hub.template)
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"dtwin-api-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 30)

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt_connect_failed", reason=str(reason))
            return
        log.info("mqtt_connected", host=self.host, port=self.port, subscription=self.filter)
        client.subscribe(self.filter, qos=1)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.subscribed.clear()
        log.warning("mqtt_disconnected", reason=str(reason))

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        pairs = getattr(msg.properties, "UserProperty", None) or []
        parent = context_from_user_properties(pairs)
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self.loop.call_soon_threadsafe(self.hub.dispatch, msg.topic, msg.payload, parent)

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
