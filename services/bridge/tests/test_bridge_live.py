"""Committed readings come out on `<prefix>/events/telemetry` (real broker, database and bridge process), with
the asset, metric and canonical unit a live view needs; a rejected value never does."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from dtwin_localcp.bridge_harness import BridgeProcess, SiteUnderTest
from dtwin_localcp.kubeapi import wait_until


class TwoSensors(SiteUnderTest):
    def bindings(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (f"{self.name}-{m}", {"assetRef": "ahu-1", "metric": m, "topic": f"sites/{self.name}/ahu-1/telemetry",
                                  "payloadFormat": "json", "field": m, "unit": "degF",
                                  "validRange": {"min": -40, "max": 200}})
            for m in ("supply", "ret")
        ]  # fmt: skip


def test_committed_readings_are_published_as_live_events(pg_dsn: str, mosquitto_server: Any, tmp_path: Path) -> None:
    site = TwoSensors(pg_dsn, mosquitto_server.port, tmp_path)
    bridge = BridgeProcess(site, tmp_path)
    events: list[dict[str, Any]] = []
    subscribed = threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"live-{uuid.uuid4().hex[:6]}", protocol=paho.MQTTv5)
    sub.on_connect = lambda c, *_: c.subscribe(f"sites/{site.name}/events/telemetry", qos=0)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda _c, _u, m: events.append(json.loads(m.payload))
    sub.connect("127.0.0.1", mosquitto_server.port)
    sub.loop_start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:6]}", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    bridge.start()
    try:
        assert subscribed.wait(10)
        ts = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0)

        def stored() -> bool:
            body = {"ts": ts.isoformat(), "supply": 50.0, "ret": 900.0}  # ret is out of its valid range
            pub.publish(f"sites/{site.name}/ahu-1/telemetry", json.dumps(body).encode(), qos=1)
            return site.count() > 0

        wait_until(stored, 30, "the reading to be stored", interval=0.5, on_timeout=bridge.tail)
        wait_until(lambda: bool(events), 10, "a live event", on_timeout=bridge.tail)
    finally:
        pub.loop_stop()
        sub.loop_stop()
        assert bridge.stop() == 0, bridge.tail()
    readings = [r for e in events for r in e["readings"]]
    assert {e["site"] for e in events} == {site.name}
    assert readings[0] == {"sensor": f"{site.name}-supply", "asset": "ahu-1", "metric": "supply", "unit": "degC",
                           "ts": ts.isoformat(), "value": 10.0}  # fmt: skip
    assert all(r["metric"] == "supply" for r in readings)  # the refused `ret` value was never published
