"""The rules engine wired into the running bridge: threshold alerts stored in `alerts` and published on MQTT.

Against real Mosquitto and PostgreSQL, with the bridge as a subprocess (`dtwin_localcp.bridge_harness`).
One binding has warningHigh 30, criticalHigh 40, hysteresis 2 and forSeconds 2; readings carry explicit
timestamps one second apart, near now (so the stale check, with a one-hour expected interval, stays quiet).
Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from dtwin_bridge.alerts import Pending, is_own_event, topic_prefix
from dtwin_bridge.rules.events import AlertEscalated, AlertOpened, AlertResolved
from dtwin_localcp.bridge_harness import BridgeProcess, SiteUnderTest
from dtwin_localcp.kubeapi import wait_until

ROOT = Path(__file__).resolve().parents[3]


class Site(SiteUnderTest):
    """One thresholded JSON sensor."""

    def __init__(self, pg_dsn: str, broker_port: int, tmp: Path) -> None:
        super().__init__(pg_dsn, broker_port, tmp, flush_ms=50)

    @property
    def sensor(self) -> str:
        return f"{self.name}-temp"

    def bindings(self) -> list[tuple[str, dict[str, Any]]]:
        return [(self.sensor, {
            "assetRef": "dev", "metric": "temp", "topic": self.topic, "payloadFormat": "json", "field": "v",
            "unit": "degC", "validRange": {"min": -50, "max": 150}, "expectedIntervalSeconds": 3600,
            "thresholds": {"warningHigh": 30, "criticalHigh": 40, "hysteresis": 2, "forSeconds": 2},
        })]  # fmt: skip

    @property
    def topic(self) -> str:
        return f"sites/{self.name}/dev/telemetry"

    @property
    def events_topic(self) -> str:
        return f"sites/{self.name}/events/alerts"


Bridge = BridgeProcess


def wait_for(what: str, cond: Callable[[], bool], timeout: float, bridge: Bridge) -> None:
    wait_until(cond, timeout, what, interval=0.05, on_timeout=bridge.tail)


class Listener:
    """A client subscribed to the site's alert events, collecting their JSON documents."""

    def __init__(self, port: int, topic: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
        self.c.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.c.on_subscribe = lambda *_: self.subscribed.set()
        self.c.on_message = lambda _c, _u, msg: self.events.append(json.loads(msg.payload))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def env(pg_dsn: str, mosquitto_server: Any, tmp_path: Path) -> Iterator[tuple[Site, Bridge, paho.Client, Listener]]:
    site = Site(pg_dsn, mosquitto_server.port, tmp_path)
    listener = Listener(mosquitto_server.port, site.events_topic)
    assert listener.subscribed.wait(10)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    bridge = Bridge(site, tmp_path)
    bridge.start()
    yield site, bridge, pub, listener
    pub.disconnect()
    pub.loop_stop()
    listener.close()
    if bridge.proc and bridge.proc.poll() is None:
        assert bridge.stop() == 0, bridge.tail()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"dtwin-bridge-{site.name}-r0", protocol=paho.MQTTv5)
    c.connect("127.0.0.1", mosquitto_server.port, clean_start=True)
    c.disconnect()


def test_threshold_alert_lifecycle(env: tuple[Site, Bridge, paho.Client, Listener]) -> None:
    site, bridge, pub, listener = env
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    clock = iter(range(1000))

    def send(*values: float) -> None:
        for v in values:
            ts = (t0 + timedelta(seconds=next(clock))).isoformat()
            pub.publish(site.topic, json.dumps({"timestamp": ts, "v": v}).encode(), qos=1)

    def count() -> int:
        return int(site.query("SELECT count(*) FROM SCHEMA.telemetry")[0][0])

    def alerts() -> list[Any]:
        return site.query("SELECT * FROM SCHEMA.alerts ORDER BY id")

    # Wait until the bridge has subscribed: a normal reading is stored (and opens nothing).
    last = [0.0]

    def ready() -> bool:
        if time.monotonic() - last[0] > 0.5:
            send(20)
            last[0] = time.monotonic()
        return count() > 0

    wait_for("the bridge to store a reading", ready, 30, bridge)

    send(35, 35, 35, 35)  # warning for 3 s of reading time > forSeconds 2
    wait_for("a warning alert", lambda: len(alerts()) == 1, 20, bridge)
    row = alerts()[0]
    assert (row["kind"], row["severity"], row["state"], row["sensor"]) == ("threshold", "warning", "open", site.sensor)
    assert row["dedup_key"] == f"{site.sensor}:threshold"

    send(45, 45, 45, 45)  # critical for 3 s
    wait_for("escalation", lambda: alerts()[0]["severity"] == "critical", 20, bridge)
    assert len(alerts()) == 1 and alerts()[0]["last_value"] == 45

    send(20, 20, 20, 20)  # below 30 - 2 for 3 s
    wait_for("resolution", lambda: alerts()[0]["state"] == "resolved", 20, bridge)
    rows = alerts()
    assert len(rows) == 1 and rows[0]["resolved_at"] is not None

    wait_for("three published events", lambda: len(listener.events) >= 3, 20, bridge)
    got = [(e["transition"], e["severity"], e["dedupKey"]) for e in listener.events]
    key = f"{site.sensor}:threshold"
    assert got == [("opened", "warning", key), ("escalated", "critical", key), ("resolved", "critical", key)]
    # The bridge received its own events through sites/<site>/# and neither parsed nor dead-lettered them.
    assert site.query("SELECT count(*) FROM SCHEMA.dead_letters")[0][0] == 0
    for severity, transition in (("warning", "opened"), ("critical", "escalated"), ("critical", "resolved")):
        labels = {"kind": "threshold", "severity": severity, "transition": transition}
        assert bridge.metric("dtwin_bridge_alerts_total", **labels) == 1


def test_pending_coalesces_per_key() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    o = AlertOpened("s", "a", "threshold", "warning", at, 35.0, "open", "s:threshold")
    e1 = AlertEscalated("s", "a", "threshold", "critical", "warning", at, 45.0, "up", "s:threshold")
    e2 = AlertEscalated("s", "a", "threshold", "warning", "critical", at, 36.0, "down", "s:threshold")
    r = AlertResolved("s", "a", "threshold", at, 20.0, "clear", "s:threshold")
    other = AlertOpened(None, "a", "offline", "critical", at, None, "offline", "a:offline")
    p = Pending()
    for ev in (o, e1, other, e2, r, o):
        p.add(ev)
    assert p.take() == [AlertOpened("s", "a", "threshold", "warning", at, 36.0, "down", "s:threshold"), r, o, other]
    p.add(e1)
    p.put_back([o])
    assert p.take() == [AlertOpened("s", "a", "threshold", "critical", at, 45.0, "up", "s:threshold")]


def test_own_event_topics() -> None:
    assert topic_prefix("x", ["plant/x/#", "other/t"]) == "plant/x"
    assert topic_prefix("x", []) == "sites/x"
    assert is_own_event("sites/x/events/alerts", "sites/x")
    assert not is_own_event("sites/x/dev/telemetry", "sites/x")
