"""`WebSocket /api/v1/ws` end to end: real Mosquitto, real PostgreSQL, the app served by uvicorn in a thread,
events published with paho in the bridge's JSON shapes, clients from `websockets`' sync client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
import uvicorn
from fastapi import FastAPI
from paho.mqtt.enums import CallbackAPIVersion
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from dtwin_api.authz import Role
from dtwin_api.live import Client
from dtwin_api.main import create_app
from dtwin_api.settings import Settings
from dtwin_localcp.kubeapi import wait_until

HEARTBEAT_S = 0.3
OUTBOX = 500


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(condition, timeout, what, interval=0.02)


@dataclass
class Live:
    app: FastAPI
    port: int
    pub: paho.Client
    users: dict[str, int]

    def token(self, user: str) -> str:
        token, _ = self.app.state.signer.issue(str(self.users[user]), datetime.now(UTC))
        return str(token)

    def connect(self, user: str | None, sock: socket.socket | None = None, **kw: Any) -> ClientConnection:
        query = f"?token={self.token(user)}" if user else ""
        return connect(f"ws://127.0.0.1:{self.port}/api/v1/ws{query}", sock=sock, open_timeout=5, **kw)

    @contextlib.contextmanager
    def subscribe(self, user: str, site: str, **fields: Any) -> Iterator[ClientConnection]:
        with self.connect(user) as ws:
            ws.send(json.dumps({"type": "subscribe", "site": site} | fields))
            assert frame(ws)["type"] == "subscribed"
            yield ws

    def publish(self, site: str, kind: str, doc: dict[str, Any], qos: int = 0) -> None:
        info = self.pub.publish(f"sites/{site}/events/{kind}", json.dumps(doc).encode(), qos=qos)
        if qos:
            info.wait_for_publish(5)

    def telemetry(self, site: str, *readings: tuple[str, str, str, datetime, float], qos: int = 0) -> None:
        rows = [{"sensor": s, "asset": a, "metric": m, "unit": "degC", "ts": ts.isoformat(), "value": v}
                for s, a, m, ts, v in readings]  # fmt: skip
        self.publish(site, "telemetry", {"site": site, "readings": rows}, qos)

    def clients(self, site: str) -> list[Client]:
        return list(self.app.state.hub.clients.get(site, ()))


def frame(ws: ClientConnection, timeout: float = 5, heartbeats: bool = False) -> dict[str, Any]:
    while True:
        doc: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        if heartbeats or doc["type"] != "heartbeat":
            return doc


def frames_until(ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 10) -> list[Any]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not done(out):
        out.append(frame(ws, timeout=max(0.01, deadline - time.monotonic())))
    return out


@pytest.fixture
def live(world: Any, mosquitto_server: Any, request: pytest.FixtureRequest) -> Iterator[Live]:
    users = {
        "alice": asyncio.run(world.add_user("alice", {"alpha": Role.viewer})),
        "bob": asyncio.run(world.add_user("bob", {"beta": Role.technician})),
    }
    values = {
        "database_url": world.dsn,
        "jwt_secret": "test-secret-" + "x" * 32,
        "db_pool_max": 4,
        "mqtt_port": mosquitto_server.port,
        "ws_heartbeat_s": HEARTBEAT_S,
        "ws_outbox_max_readings": OUTBOX,
        "ws_alert_backlog_max": 50,
        "rate_limit_per_ip": "10000/minute",
        "rate_limit_per_user": "10000/minute",
    } | getattr(request, "param", {})
    app = create_app(Settings(**values))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", mosquitto_server.port)
    pub.loop_start()
    try:
        wait_for(lambda: server.started, 15, "uvicorn to start")
        wait_for(lambda: app.state.subscriber.subscribed.is_set(), 10, "the API's MQTT subscription")
        yield Live(app, sock.getsockname()[1], pub, users)
    finally:
        pub.loop_stop()
        pub.disconnect()
        server.should_exit = True
        thread.join(15)


def test_a_reading_reaches_its_site_only_and_other_sites_are_refused(live: Live) -> None:
    now = datetime.now(UTC)
    with live.subscribe("alice", "alpha") as a, live.subscribe("bob", "beta") as b:
        live.telemetry("alpha", ("alpha-t", "ahu-1", "supply", now, 1.0))
        live.telemetry("beta", ("beta-t", "ahu-1", "supply", now, 2.0))
        got_a, got_b = frame(a), frame(b)
    assert got_a == {"type": "telemetry", "site": "alpha", "readings": [
        {"sensor": "alpha-t", "asset": "ahu-1", "metric": "supply", "unit": "degC", "ts": now.isoformat(), "value": 1.0}
    ]}  # fmt: skip
    assert got_b["readings"][0]["sensor"] == "beta-t"  # beta's client got beta's reading first, never alpha's

    for user, site, status in (("alice", "beta", 403), ("alice", "nowhere", 403), (None, "alpha", 401)):
        with live.connect(user) as ws:
            with contextlib.suppress(ConnectionClosed):  # without a token the refusal may come first
                ws.send(json.dumps({"type": "subscribe", "site": site}))
            refusal = frame(ws)
            assert (refusal["type"], refusal["status"]) == ("error", status)
            with pytest.raises(ConnectionClosed) as closed:
                frame(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000 + status
    wait_for(lambda: not live.clients("alpha") and not live.clients("beta"), 5, "closed clients to leave the hub")

    with live.connect("alice") as ws:
        ws.send(json.dumps({"type": "subscribe", "site": "alpha", "since": "2026-01-01T00:00:00"}))  # naive time
        assert frame(ws)["status"] == 400


def test_filters_by_asset_and_metric_and_alerts(live: Live) -> None:
    now = datetime.now(UTC)
    alert = {"site": "alpha", "transition": "opened", "kind": "threshold", "severity": "critical", "previous": None,
             "sensor": "s3", "asset": "pump-1", "at": now.isoformat(), "value": 9.0, "message": "hot"}  # fmt: skip
    with (
        live.subscribe("alice", "alpha", assets=["ahu-1"], metrics=["supply"]) as ws,
        live.subscribe("alice", "alpha", alerts=False) as quiet,
    ):
        live.telemetry("alpha", ("s1", "ahu-1", "supply", now, 1.0), ("s2", "ahu-1", "ret", now, 2.0),
                       ("s3", "pump-1", "supply", now, 3.0), ("s4", "ahu-1", "supply", now, 4.0))  # fmt: skip
        live.publish("alpha", "alerts", alert | {"dedupKey": "k"}, qos=1)
        live.publish("alpha", "alerts", alert | {"asset": "ahu-1", "sensor": "s1", "dedupKey": "k2"}, qos=1)
        assert [r["sensor"] for r in frame(ws)["readings"]] == ["s1", "s4"]
        got = frame(ws)
        assert got["type"] == "alert" and got["asset"] == "ahu-1" and got["transition"] == "opened"
        assert got["dedupKey"] == "k2" and got["site"] == "alpha"
        assert len(frame(quiet)["readings"]) == 4
        live.telemetry("alpha", ("s9", "x", "y", now, 0.0))
        assert frame(quiet)["readings"][0]["sensor"] == "s9"  # no alert frame came before it


def test_a_slow_client_gets_the_latest_value_per_sensor_within_a_bounded_outbox(live: Live) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the server's sends block soon
    sock.connect(("127.0.0.1", live.port))
    with live.connect("alice", sock=sock, max_queue=1) as ws:
        slow(live, ws)


def slow(live: Live, ws: ClientConnection) -> None:
    """The client reads nothing while 1,000 events x 100 sensors arrive, then catches up. 100,000 readings are
    ~11 MB of frames: more than any kernel socket buffer here (tcp_wmem max 4 MB), so the server's sends must
    block and the outbox must coalesce however fast or slow the machine is."""
    sensors, rounds = 100, 1000
    ws.send(json.dumps({"type": "subscribe", "site": "alpha"}))
    wait_for(lambda: len(live.clients("alpha")) == 1, 5, "the subscription")
    (client,) = live.clients("alpha")
    t0 = datetime.now(UTC)
    received_before = live.app.state.hub.received
    for i in range(rounds):  # 100,000 readings, nobody reading them
        rows = [(f"s{j:03}", "ahu-1", "supply", t0 + timedelta(seconds=i), float(i)) for j in range(sensors)]
        live.telemetry("alpha", *rows)
    live.publish("alpha", "telemetry", {"site": "alpha", "readings": []}, qos=1)  # a QoS 1 marker after them
    wait_for(lambda: live.app.state.hub.received >= received_before + rounds + 1, 30, "every event at the hub")
    assert client.outbox.peak <= OUTBOX and client.outbox.size <= OUTBOX
    assert client.outbox.coalesced > 0

    sock = ws.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # now read at full speed
    latest: dict[str, float] = {}
    count, coalesced_frames = 0, 0

    def caught_up(frames: list[dict[str, Any]]) -> bool:
        nonlocal count, coalesced_frames
        while frames:
            f = frames.pop()
            if f["type"] == "telemetry":
                count += len(f["readings"])
                coalesced_frames += bool(f.get("coalesced"))
                for r in f["readings"]:
                    latest[r["sensor"]] = max(r["value"], latest.get(r["sensor"], -1.0))
        return len(latest) == sensors and all(v == rounds - 1 for v in latest.values())

    frames_until(ws, caught_up, timeout=15)
    assert count < sensors * rounds and coalesced_frames > 0
    assert client.outbox.peak <= OUTBOX
    metrics = live.app.state.live_metrics
    assert metrics.coalesced._value.get() == client.outbox.coalesced > 0
    with httpx.Client(base_url=f"http://127.0.0.1:{live.port}") as http:
        text = http.get("/metrics").text
        assert "dtwin_api_ws_connections 1.0" in text and "dtwin_api_ws_messages_coalesced_total" in text
        assert 'dtwin_api_ws_messages_sent_total{type="telemetry"}' in text
        assert http.get("/ready").json()["checks"]["broker"] == "ok"


def test_heartbeats_arrive(live: Live) -> None:
    with live.subscribe("alice", "alpha") as ws:
        beats = [frame(ws, heartbeats=True) for _ in range(3)]
    assert {b["type"] for b in beats} == {"heartbeat"}
    stamps = [datetime.fromisoformat(b["at"]) for b in beats]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] >= timedelta(seconds=HEARTBEAT_S)


def test_resume_replays_stored_rows_then_live_ones_without_duplicates(live: Live, world: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    stored = [now - timedelta(seconds=s) for s in (30, 20, 10)]

    async def store() -> None:
        conn = await world.connect()
        try:
            await conn.execute(
                "INSERT INTO site_alpha.sensors (name, asset, metric, unit, canonical_unit, topic, format) "
                "VALUES ('alpha-x', 'ahu-1', 'supply', 'degF', 'degC', 'sites/alpha/ahu-1/telemetry', 'json')"
            )
            await conn.executemany(
                "INSERT INTO site_alpha.telemetry (sensor, ts, value) VALUES ('alpha-x', $1, $2)",
                [(ts, float(i + 1)) for i, ts in enumerate(stored)],
            )
        finally:
            await conn.close()

    asyncio.run(store())
    with live.connect("alice") as ws:
        resume(live, ws, now, stored)


def resume(live: Live, ws: ClientConnection, now: datetime, stored: list[datetime]) -> None:
    since = (now - timedelta(minutes=1)).isoformat()
    ws.send(json.dumps({"type": "subscribe", "site": "alpha", "assets": ["ahu-1"], "since": since}))
    replay = frames_until(ws, lambda fs: bool(fs) and fs[-1]["type"] == "replay_done")
    assert replay[0]["type"] == "subscribed"
    done = replay[-1]
    assert (done["readings"], done["truncated"]) == (3, False)
    alerts = [f for f in replay if f["type"] == "alert"]
    assert alerts and all(a["replay"] and a["asset"] == "ahu-1" and a["state"] == "open" for a in alerts)
    # live: the last stored reading again (published after its commit, as the bridge does), then new ones
    for ts, value in ((stored[-1], 3.0), (now, 4.0), (now + timedelta(seconds=1), 5.0)):
        live.telemetry("alpha", ("alpha-x", "ahu-1", "supply", ts, value), qos=1)
    rest = frames_until(ws, lambda fs: any(r["value"] == 5.0 for f in fs for r in f.get("readings", [])))
    seen = [(r["ts"], r["value"]) for f in replay + rest if f["type"] == "telemetry" for r in f["readings"]]
    assert [v for _, v in seen] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [datetime.fromisoformat(t) for t, _ in seen] == [*stored, now, now + timedelta(seconds=1)]


def test_a_stalled_client_with_too_many_alerts_is_closed_and_its_backlog_stays_bounded(live: Live) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", live.port))
    with live.connect("alice", sock=sock, max_queue=1, compression=None) as ws:
        ws.send(json.dumps({"type": "subscribe", "site": "alpha"}))
        wait_for(lambda: len(live.clients("alpha")) == 1, 5, "the subscription")
        (client,) = live.clients("alpha")
        alert = {"site": "alpha", "transition": "opened", "kind": "threshold", "severity": "warning", "previous": None,
                 "sensor": "s1", "asset": "ahu-1", "at": datetime.now(UTC).isoformat(), "value": 1.0,
                 "message": "m" * 1000}  # fmt: skip
        overflows = live.app.state.live_metrics.overflows
        for i in range(3000):  # ~3.6 MB of alerts, nobody reading them
            live.publish("alpha", "alerts", alert | {"dedupKey": f"k{i}"})
            if overflows._value.get():
                break
        wait_for(lambda: overflows._value.get() == 1, 10, "the alert backlog to overflow")
        assert not live.clients("alpha")  # out of the hub before the overflow is counted
        assert len(client.outbox.alerts) <= 50 and client.outbox.peak <= 50
        received: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            read_all(ws, received)
        assert received[-1]["type"] == "error" and received[-1]["error"] == "alert_backlog_full"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


def read_all(ws: ClientConnection, into: list[dict[str, Any]]) -> None:
    while True:
        into.append(frame(ws))


@pytest.mark.parametrize("live", [{"rate_limit_per_ip": "2/minute"}], indirect=True)
def test_the_per_ip_rate_limit_applies_to_the_handshake(live: Live) -> None:
    with live.connect("alice"), live.connect("alice"):
        pass
    with pytest.raises(InvalidStatus) as refused:
        live.connect("alice")
    assert refused.value.response.status_code == 403
