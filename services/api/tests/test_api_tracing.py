"""OpenTelemetry spans and the per-user WebSocket rate limit, with the app served by uvicorn in a thread, real
Mosquitto and PostgreSQL, and an in-memory span exporter.

A reading published with a W3C `traceparent` in its MQTT v5 user properties (as the bridge does) yields the
API's delivery span in the same trace, a child of (and linked to) the publishing span; an HTTP request with a
`traceparent` header gets a server span in the caller's trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import uvicorn
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from dtwin_api.authz import Role
from dtwin_api.main import create_app
from dtwin_localcp.kubeapi import wait_until

TRACE_ID, PARENT_ID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@dataclass
class Served:
    app: FastAPI
    port: int
    spans: InMemorySpanExporter
    token: str

    def ws(self) -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.port}/api/v1/ws?token={self.token}", open_timeout=5)

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]


@contextlib.contextmanager
def served(world: Any, port: int, **overrides: Any) -> Iterator[Served]:
    from dtwin_api.settings import Settings

    user = asyncio.run(world.add_user(f"u-{uuid.uuid4().hex[:6]}", {"alpha": Role.viewer}))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    values = {"database_url": world.dsn, "jwt_secret": "t" * 40, "db_pool_max": 4, "mqtt_port": port,
              "kube_enabled": False, "rate_limit_per_ip": "10000/minute"} | overrides  # fmt: skip
    app = create_app(Settings(**values), tracer_provider=provider)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 15, "uvicorn to start", interval=0.02)
        wait_until(lambda: app.state.subscriber.subscribed.is_set(), 10, "the API's MQTT subscription", interval=0.02)
        token, _ = app.state.signer.issue(str(user), datetime.now(UTC))
        yield Served(app, sock.getsockname()[1], exporter, token)
    finally:
        server.should_exit = True
        thread.join(15)
        provider.shutdown()


def _subscribe(ws: ClientConnection, site: str = "alpha") -> dict[str, Any]:
    ws.send(json.dumps({"type": "subscribe", "site": site}))
    while True:
        doc: dict[str, Any] = json.loads(ws.recv(timeout=5))
        if doc["type"] != "heartbeat":
            return doc


def test_a_traced_reading_continues_its_trace_to_the_websocket(world: Any, mosquitto_server: Any) -> None:
    with served(world, mosquitto_server.port) as api, api.ws() as ws:
        assert _subscribe(ws)["type"] == "subscribed"
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}", protocol=paho.MQTTv5)
        pub.connect("127.0.0.1", mosquitto_server.port)
        pub.loop_start()
        try:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("traceparent", TRACEPARENT)]
            reading = {"sensor": "t1", "asset": "ahu-1", "metric": "supply", "unit": "degC",
                       "ts": datetime.now(UTC).isoformat(), "value": 1.5}  # fmt: skip
            body = json.dumps({"site": "alpha", "readings": [reading]}).encode()
            pub.publish("sites/alpha/events/telemetry", body, qos=1, properties=props).wait_for_publish(5)
            while (doc := json.loads(ws.recv(timeout=5)))["type"] != "telemetry":
                pass
            assert doc["readings"][0]["sensor"] == "t1"
        finally:
            pub.loop_stop()
            pub.disconnect()
        wait_until(lambda: api.named("ws deliver telemetry"), 5, "the delivery span", interval=0.02)
        span = api.named("ws deliver telemetry")[0]
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT_ID
        assert [f"{link.context.span_id:016x}" for link in span.links] == [PARENT_ID]
        assert span.attributes is not None and span.attributes["dtwin.site"] == "alpha"

        r = httpx.get(f"http://127.0.0.1:{api.port}/api/v1/sites/alpha/assets", headers={"traceparent": TRACEPARENT,
                      "Authorization": f"Bearer {api.token}"})  # fmt: skip
        assert r.status_code == 200
        route = "/api/v1/sites/{site}/assets"  # the span is named after the route template, not the path
        wait_until(lambda: api.named(f"GET {route}"), 5, "the HTTP server span", interval=0.02)
        server_span = api.named(f"GET {route}")[0]
        assert f"{server_span.context.trace_id:032x}" == TRACE_ID
        assert server_span.attributes is not None and server_span.attributes["http.route"] == route


def test_websocket_subscriptions_are_rate_limited_per_user(world: Any, mosquitto_server: Any) -> None:
    with served(world, mosquitto_server.port, rate_limit_ws_per_user="2/minute") as api:
        for _ in range(2):
            with api.ws() as ws:
                assert _subscribe(ws)["type"] == "subscribed"
        with api.ws() as ws:
            refusal = json.loads(ws.recv(timeout=5))
            assert (refusal["type"], refusal["status"], refusal["error"]) == ("error", 429, "rate_limited")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
            assert ws.close_code == 4429
