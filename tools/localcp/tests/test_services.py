"""Tests of the local PostgreSQL and Mosquitto: config rendering (pure) and the real processes.

The process tests use the fixtures of `services_plugin` (`pg_dsn`, `mosquitto_server`) or, where
a test restarts or kills the database, a server of its own, so that `DTWIN_PG_DSN` never points
them at someone else's. Every wait has a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import asyncio
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dtwin_localcp.mosquitto import Mosquitto, mqtt_connects, render_config
from dtwin_localcp.postgres import PgServer, Postgres, render_conf, render_hba

WAIT = 10.0  # seconds: the deadline of every wait below


def _settings(text: str, sep: str) -> dict[str, str]:
    """`key<sep>value` lines (comments stripped) as a dict; a repeated key keeps its last value."""
    pairs = (line.split("#", 1)[0].strip().split(sep, 1) for line in text.splitlines())
    return {p[0].strip(): p[1].strip() for p in pairs if len(p) == 2}


# ------------------------------------------------------------------ pure: rendering and parsing
def test_postgres_conf_listens_on_loopback_and_keeps_commits_durable() -> None:
    conf = _settings(render_conf(15432), "=")
    assert conf["listen_addresses"] == "'127.0.0.1'" and conf["port"] == "15432"
    assert conf["unix_socket_directories"] == "''"
    assert (conf["fsync"], conf["synchronous_commit"], conf["full_page_writes"]) == ("on", "on", "on")
    assert (conf["shared_buffers"], conf["max_connections"]) == ("256MB", "200")
    assert "shared_preload_libraries" not in conf


def test_postgres_conf_preloads_timescaledb_without_telemetry() -> None:
    conf = _settings(render_conf(5432, timescaledb=True), "=")
    assert conf["shared_preload_libraries"] == "'timescaledb'"
    assert conf["timescaledb.telemetry_level"] == "off"  # telemetry would dial out


def test_postgres_hba_trusts_tcp_from_loopback_only() -> None:
    rules = [line.split() for line in render_hba().splitlines() if line and not line.startswith("#")]
    assert rules and all(r[0] == "host" and r[3] == "127.0.0.1/32" and r[4] == "trust" for r in rules)


def test_mosquitto_config_persists_sessions_and_never_drops(tmp_path: Path) -> None:
    text = render_config(18830, tmp_path, "root")
    conf = _settings(text, " ")
    assert [line for line in text.splitlines() if line.startswith("listener")] == ["listener 18830 127.0.0.1"]
    assert (conf["persistence"], conf["persistence_location"]) == ("true", f"{tmp_path}/data/")
    assert (conf["max_queued_messages"], conf["max_queued_bytes"], conf["max_inflight_messages"]) == (
        "1000000",
        "0",
        "0",
    )
    assert conf["allow_anonymous"] == "true" and conf["user"] == "root" and conf["set_tcp_nodelay"] == "true"
    assert conf["log_dest"] == f"file {tmp_path}/logs/mosquitto.log"
    assert "persistent_client_expiration" not in conf and "0.0.0.0" not in text


def test_pg_server_from_dsn_is_loopback_only() -> None:
    server = PgServer.from_dsn("postgresql://app:s%40cret@127.0.0.1:15432/postgres")
    assert (server.port, server.user, server.password) == (15432, "app", "s@cret")
    assert server.dsn("t_1") == "postgresql://app:s%40cret@127.0.0.1:15432/t_1"
    with pytest.raises(RuntimeError, match="loopback"):
        PgServer.from_dsn("postgresql://postgres@db.example.com:5432/postgres")


def test_database_names_are_checked_before_any_sql() -> None:
    with pytest.raises(ValueError, match="invalid database name"):
        PgServer(1).create_database('x"; DROP DATABASE postgres; --')


# ------------------------------------------------------------------ PostgreSQL (real server)
async def _query(dsn: str, *statements: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn, timeout=WAIT)
    try:
        for sql in statements[:-1]:
            await conn.execute(sql)
        return await conn.fetch(statements[-1])
    finally:
        await conn.close()


def test_pg_dsn_is_a_fresh_database_for_asyncpg(pg_dsn: str, postgres_server: PgServer) -> None:
    rows = asyncio.run(
        _query(pg_dsn, "CREATE TABLE r (sensor text, value float8)", "INSERT INTO r VALUES ('t1', 21.5)",
               "SELECT current_database() AS db, sensor, value FROM r")
    )  # fmt: skip
    assert [tuple(r) for r in rows] == [(pg_dsn.rsplit("/", 1)[1], "t1", 21.5)]
    assert isinstance(postgres_server.timescaledb_available, bool)  # not installable here; must not matter


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[Postgres]:
    """A server only this module restarts and kills (in /tmp: the `postgres` user must reach it)."""
    run_dir = Path(tempfile.mkdtemp(prefix="dtwin-pg-own-", dir="/tmp"))
    server = Postgres(run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _fresh_db(server: PgServer) -> str:
    name = f"t_{uuid.uuid4().hex[:16]}"
    server.create_database(name)
    return server.dsn(name)


@pytest.mark.services
def test_restart_keeps_committed_rows(own_postgres: Postgres) -> None:
    dsn = _fresh_db(own_postgres)
    asyncio.run(_query(dsn, "CREATE TABLE r (i int)", "INSERT INTO r VALUES (1), (2)", "SELECT 1"))
    port = own_postgres.port
    own_postgres.restart()
    assert own_postgres.port == port  # clients keep their DSNs
    assert [r["i"] for r in asyncio.run(_query(dsn, "SELECT i FROM r ORDER BY i"))] == [1, 2]


@pytest.mark.services
def test_kill_then_start_recovers_every_committed_row(own_postgres: Postgres) -> None:
    assert own_postgres.sql("SHOW synchronous_commit") == "on" and own_postgres.sql("SHOW fsync") == "on"
    dsn = _fresh_db(own_postgres)
    inserts = [f"INSERT INTO r VALUES ({i})" for i in range(100)]  # 100 separate commits
    asyncio.run(_query(dsn, "CREATE TABLE r (i int)", *inserts, "SELECT 1"))
    own_postgres.kill()
    assert not own_postgres.is_ready()
    own_postgres.start()
    assert "not properly shut down" in own_postgres.log_path.read_text()  # it really crash-recovered
    assert asyncio.run(_query(dsn, "SELECT count(*) AS n FROM r"))[0]["n"] == 100


# ------------------------------------------------------------------ Mosquitto (real broker)
class _Client:
    """A paho MQTT v5 client with its network loop in a thread; received payloads land in `inbox`."""

    def __init__(self, broker: Mosquitto, client_id: str) -> None:
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.connected, self.subscribed = threading.Event(), threading.Event()
        self.session_present: bool | None = None
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.paho.on_connect = self._on_connect
        self.paho.on_subscribe = lambda *_: self.subscribed.set()
        self.paho.on_message = lambda _c, _u, msg: self.inbox.put(msg.payload)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # the session (and its queue) outlives the connection
        self.paho.connect(broker.host, broker.port, keepalive=30, clean_start=False, properties=props)
        self.paho.loop_start()
        assert self.connected.wait(WAIT), f"{client_id}: no CONNACK"

    def _on_connect(self, _c: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, reason: object, _p: object) -> None:
        self.session_present = flags.session_present
        self.connected.set()

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.paho.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT)
        assert info.is_published(), "no PUBACK"

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def broker(mosquitto_server: Mosquitto) -> Iterator[Mosquitto]:
    """The session broker, started again after the test if the test left it down."""
    yield mosquitto_server
    if not mosquitto_server.is_running():
        mosquitto_server.start()


def test_queued_qos1_message_survives_broker_restart_exactly_once(broker: Mosquitto) -> None:
    topic, sub_id = f"sites/test/{uuid.uuid4().hex[:8]}/telemetry", f"sub-{uuid.uuid4().hex[:8]}"
    subscriber = _Client(broker, sub_id)
    assert subscriber.session_present is False
    subscriber.paho.subscribe(topic, qos=1)
    assert subscriber.subscribed.wait(WAIT)
    subscriber.close()  # offline now; the broker queues for the session

    publisher = _Client(broker, f"pub-{uuid.uuid4().hex[:8]}")
    publisher.publish(topic, b"reading-1")
    publisher.close()
    broker.restart()

    subscriber = _Client(broker, sub_id)
    try:
        assert subscriber.session_present is True  # the session came back from the persistence file
        assert subscriber.inbox.get(timeout=WAIT) == b"reading-1"
        # Exactly once: a redelivery of reading-1 would come before anything published now.
        publisher = _Client(broker, f"pub-{uuid.uuid4().hex[:8]}")
        publisher.publish(topic, b"marker")
        publisher.close()
        assert subscriber.inbox.get(timeout=WAIT) == b"marker"
        assert subscriber.inbox.empty()
    finally:
        subscriber.close()


def test_broker_kill_then_start_accepts_clients_on_the_same_port(broker: Mosquitto) -> None:
    port = broker.port
    broker.kill()
    assert not broker.is_running() and not mqtt_connects(port, timeout=0.5)
    broker.start()
    assert broker.port == port and mqtt_connects(port)
