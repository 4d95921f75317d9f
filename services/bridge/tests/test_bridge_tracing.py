"""Traces join across MQTT and the database: a device's span context, sent as MQTT v5 user properties, is linked
from the bridge's commit span, whose child is the COPY into PostgreSQL (real broker, database and process).

The bridge runs with the SDK's own `OTEL_TRACES_EXPORTER=console`, so the spans are read from its stdout.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dtwin_localcp.bridge_harness import BridgeProcess, SiteUnderTest
from dtwin_localcp.kubeapi import wait_until


class OneSensor(SiteUnderTest):
    def bindings(self) -> list[tuple[str, dict[str, Any]]]:
        spec = {"assetRef": "dev", "metric": "t", "topic": f"sites/{self.name}/d/telemetry", "payloadFormat": "json",
                "field": "v", "unit": "degC"}  # fmt: skip
        return [(f"{self.name}-t", spec)]


def spans(text: str) -> list[dict[str, Any]]:
    """The JSON span objects ConsoleSpanExporter printed among the log lines."""
    found, dec, pos = [], json.JSONDecoder(), 0
    while (start := text.find('{\n    "name"', pos)) >= 0:
        obj, pos = dec.raw_decode(text, start)
        found.append(obj)
    return found


def test_commit_span_links_the_device_trace_and_parents_the_copy(
    pg_dsn: str, mosquitto_server: Any, tmp_path: Path
) -> None:
    site = OneSensor(pg_dsn, mosquitto_server.port, tmp_path)
    bridge = BridgeProcess(site, tmp_path, env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "bridge-t"})
    bridge.start()
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("traceparent", f"00-{trace_id}-{parent}-01")]
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{site.name}", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    try:
        body = json.dumps({"ts": datetime.now(UTC).isoformat(), "v": 21.5}).encode()

        def stored() -> bool:
            pub.publish(f"sites/{site.name}/d/telemetry", body, qos=1, properties=props)
            return site.count() > 0

        wait_until(stored, 30, "the traced reading to be stored", interval=0.5, on_timeout=bridge.tail)
    finally:
        pub.disconnect()
        pub.loop_stop()
        assert bridge.stop() == 0, bridge.tail()
    got = spans(bridge.log.read_text())
    commits = [s for s in got if s["name"] == "bridge.commit" and any(
        link["context"]["trace_id"] == f"0x{trace_id}" for link in s["links"])]  # fmt: skip
    assert commits, f"no commit span links trace {trace_id}: {[s['name'] for s in got]}"
    commit = commits[0]
    assert commit["resource"]["attributes"]["service.name"] == "bridge-t"
    assert commit["attributes"]["dtwin.site"] == site.name
    assert commit["attributes"]["dtwin.batch.traced_messages"] >= 1
    copies = [s for s in got if s["parent_id"] == commit["context"]["span_id"]]
    assert [s["name"] for s in copies] == [f"COPY {site.schema}.telemetry"]
    assert copies[0]["attributes"]["db.system"] == "postgresql"
    assert copies[0]["context"]["trace_id"] == commit["context"]["trace_id"]
