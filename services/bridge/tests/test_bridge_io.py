"""The bridge end to end against real Mosquitto and PostgreSQL, run as a real subprocess (`python -m dtwin_bridge`).

The routing table is rendered by the operator's own renderer for a Site of ten JSON sensors, each on its own topic;
the site name is unique per test, so its topics, shared group and the broker's persistent sessions never meet
another test's. The publisher counts only messages the broker PUBACKed; after recovery every one of them must be
in `telemetry` exactly once. Every wait polls a condition with a deadline.
"""

from __future__ import annotations

import json
import os
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

from dtwin_localcp.bridge_harness import BridgeProcess, SiteUnderTest
from dtwin_localcp.kubeapi import wait_until

ROOT = Path(__file__).resolve().parents[3]
SENSORS = 10


def wait_for(what: str, cond: Callable[[], bool], timeout: float, proc: Bridge | None = None) -> None:
    wait_until(cond, timeout, what, interval=0.05, on_timeout=proc.tail if proc else None)


class Site(SiteUnderTest):
    """Ten JSON sensors, each on its own topic."""

    def bindings(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (f"{self.name}-s{i}", {"assetRef": "dev", "metric": f"m{i}", "topic": self.topic(i),
                                   "payloadFormat": "json", "field": "v", "unit": "degC",
                                   "validRange": {"min": -50, "max": 150}})
            for i in range(SENSORS)
        ]  # fmt: skip

    def topic(self, i: int) -> str:
        return f"sites/{self.name}/d{i}/telemetry"


class Bridge(BridgeProcess):
    def __init__(self, site: Site, tmp: Path, replica: str = "r0") -> None:
        super().__init__(site, tmp, replica)

    def forget_session(self, port: int) -> None:
        """Drop the replica's persistent session so the broker stops queuing for it."""
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"dtwin-bridge-{self.site.name}-{self.replica}",
                        protocol=paho.MQTTv5)  # fmt: skip
        c.connect("127.0.0.1", port, clean_start=True)
        c.disconnect()


class Publisher:
    """A QoS 1 publisher that remembers which messages the broker PUBACKed (by MQTT packet id) and how.

    Only reason code 0 (Success) counts as accepted. 0x10 (No matching subscribers) is a PUBACK too, but it says
    no session got the message: Mosquitto 2.0.11 does not restore `$share` subscriptions from its persistence
    file, so after a broker restart messages are answered so until the bridge has subscribed again.
    """

    def __init__(self, port: int) -> None:
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
        self.c.max_inflight_messages_set(1000)
        self.keys: dict[int, tuple[int, str]] = {}  # mid -> (sensor index, ts)
        self.acked: list[int] = []  # PUBACK, reason Success
        self.unrouted: list[int] = []  # PUBACK, reason No matching subscribers
        self.c.on_publish = self._on_publish
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        if rc.value == 0:
            self.acked.append(mid)
        elif not rc.is_failure:
            self.unrouted.append(mid)

    def answered(self) -> int:
        return len({m for m in self.acked + self.unrouted if m in self.keys})

    def send(self, topic: str, payload: bytes, key: tuple[int, str] | None = None) -> None:
        info = self.c.publish(topic, payload, qos=1)
        if key is not None:
            self.keys[info.mid] = key

    def acked_keys(self) -> set[tuple[int, str]]:
        return {self.keys[m] for m in list(self.acked) if m in self.keys}

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def reading(i: int) -> tuple[int, str, bytes]:
    ts = (BASE + timedelta(milliseconds=i)).isoformat()
    return i % SENSORS, ts, json.dumps({"ts": ts, "v": 20.0 + (i % 100) / 10}).encode()


def publish_all(site: Site, pub: Publisher, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        s, ts, body = reading(i)
        pub.send(site.topic(s), body, (s, ts))


def wait_ready(site: Site, pub: Publisher, bridge: Bridge) -> None:
    """The bridge has subscribed once a probe reading (sensor 0, far from the test's timestamps) is stored."""
    ts = (BASE - timedelta(minutes=1)).isoformat()
    probe = json.dumps({"ts": ts, "v": 1}).encode()
    last = 0.0

    def stored() -> bool:
        nonlocal last
        if time.monotonic() - last > 0.5:
            pub.send(site.topic(0), probe)
            last = time.monotonic()
        return site.count() > 0

    wait_for("the bridge to store a probe", stored, 30, bridge)


@pytest.fixture(params=[3], ids=["shared"])
def env(
    request: pytest.FixtureRequest, pg_dsn: str, mosquitto_server: Any, tmp_path: Path
) -> Iterator[tuple[Site, Bridge, Publisher]]:
    """A Site (its maxReplicas is the parameter: 1 subscribes exclusively, more share), one bridge, a publisher."""
    site = Site(pg_dsn, mosquitto_server.port, tmp_path, max_replicas=request.param)
    bridge, pub = Bridge(site, tmp_path), Publisher(mosquitto_server.port)
    bridge.start()
    wait_ready(site, pub, bridge)
    yield site, bridge, pub
    pub.close()
    if bridge.proc and bridge.proc.poll() is None:
        assert bridge.stop() == 0, bridge.tail()
    bridge.forget_session(mosquitto_server.port)


def stored_rows(site: Site) -> list[tuple[int, str]]:
    rows = site.query(f"SELECT sensor, ts FROM SCHEMA.telemetry WHERE ts >= '{BASE.isoformat()}'")
    return [(int(r["sensor"].rsplit("-s", 1)[1]), r["ts"].isoformat()) for r in rows]


def stored_exactly_once(site: Site, pub: Publisher) -> int:
    """Every Success-PUBACKed message is stored, once; nothing unpublished is. Returns the rows stored."""
    acked, published = pub.acked_keys(), set(pub.keys.values())
    rows = stored_rows(site)
    got = set(rows)
    assert len(rows) == len(got)
    assert acked <= got, f"{len(acked - got)} PUBACKed messages are not stored"
    assert got <= published
    return len(got)


def test_ingest_and_dead_letters(env: tuple[Site, Bridge, Publisher]) -> None:
    site, bridge, pub = env
    n, before = int(os.environ.get("DTWIN_BRIDGE_IO_N", "2000")), site.count()  # more for a throughput run
    started = time.monotonic()
    publish_all(site, pub, n)
    wait_for(f"{n} rows", lambda: site.count() - before >= n, 60, bridge)
    elapsed = time.monotonic() - started
    print(f"\nbridge ingest: {n} single-reading messages in {elapsed:.2f}s = {n / elapsed:.0f} msg/s")
    wait_for("all PUBACKs", lambda: len(pub.acked_keys()) == n, 10)
    assert stored_exactly_once(site, pub) == n

    bad = {
        "malformed_json": (site.topic(1), b"{not json"),
        "not_a_number": (site.topic(2), b'{"v": "warm"}'),
        "out_of_range": (site.topic(3), b'{"v": 1000}'),
        "non_finite": (site.topic(4), b'{"v": NaN}'),
        "missing_field": (site.topic(5), b'{"x": 1}'),
        "unknown_topic": (f"sites/{site.name}/nobody/telemetry", b'{"v": 1}'),
    }
    for topic, body in bad.values():
        pub.send(topic, body)
    count = "SELECT reason, count(*) FROM SCHEMA.dead_letters GROUP BY reason"
    wait_for("dead letters", lambda: len(site.query(count)) == len(bad), 30, bridge)
    assert {r["reason"]: r["count"] for r in site.query(count)} == dict.fromkeys(bad, 1)
    rows = site.query("SELECT reason, topic, payload FROM SCHEMA.dead_letters")
    assert {r["reason"]: (r["topic"], bytes(r["payload"])) for r in rows} == bad
    assert bridge.metric("dtwin_bridge_messages_received_total") >= n + len(bad)
    assert bridge.metric("dtwin_bridge_readings_rejected_total", reason="out_of_range") == 1

    # SIGTERM acks what it committed: a restart gets no redelivery (dead letters have no key, so would double).
    assert bridge.stop() == 0, bridge.tail()
    bridge.start()
    pub.send(site.topic(0), json.dumps({"v": 1}).encode())  # arrival-time reading: a fresh (sensor, ts)
    wait_for("the restarted bridge to store", lambda: site.count() - before >= n + 1, 30, bridge)
    assert {r["reason"]: r["count"] for r in site.query(count)} == dict.fromkeys(bad, 1)


def survive(site: Site, bridge: Bridge, pub: Publisher, fault: Callable[[], None], recover: Callable[[], None]) -> int:
    """Publish n readings; inject `fault` once 30% are committed, `recover` once all are sent; then check that
    every Success-PUBACKed one is stored exactly once. Returns how many were PUBACKed with no subscriber."""
    n = 6000
    sender = threading.Thread(target=publish_all, args=(site, pub, n))
    sender.start()
    wait_for("30% committed", lambda: site.count() >= 0.3 * n, 60, bridge)
    fault()
    sender.join(120)
    recover()
    wait_for(f"{n} PUBACKs", lambda: pub.answered() == n, 60)
    acked = pub.acked_keys()
    wait_for(f"{len(acked)} PUBACKed rows", lambda: acked <= set(stored_rows(site)), 90, bridge)
    stored_exactly_once(site, pub)
    return n - len(acked)


def test_sigkill_mid_stream_loses_nothing(env: tuple[Site, Bridge, Publisher]) -> None:
    site, bridge, pub = env
    killed_at: list[int] = []

    def kill() -> None:
        bridge.kill()
        killed_at.append(site.count())

    assert survive(site, bridge, pub, kill, bridge.start) == 0
    assert killed_at[0] < 6000, "the kill came too late to test anything"


def test_database_outage_loses_nothing(env: tuple[Site, Bridge, Publisher], postgres_server: Any) -> None:
    if not hasattr(postgres_server, "run_dir"):
        pytest.skip("PostgreSQL comes from DTWIN_PG_DSN: this test may not stop it")
    site, bridge, pub = env
    stopped = 0.0

    def down() -> None:
        nonlocal stopped
        postgres_server.stop()
        stopped = time.monotonic()

    def up() -> None:
        # Down for at least 30 s and until the bridge has failed a write (so the retry path really ran).
        wait_for("a failed write", lambda: "not stored" in bridge.log.read_text(), 60, bridge)
        wait_for("30 s of outage", lambda: time.monotonic() - stopped >= 30, 35)
        postgres_server.start()

    assert survive(site, bridge, pub, down, up) == 0
    assert bridge.proc is not None and bridge.proc.poll() is None, "the bridge died during the outage"


@pytest.mark.parametrize("env", [1], ids=["exclusive"], indirect=True)
def test_broker_restart_loses_nothing(env: tuple[Site, Bridge, Publisher], mosquitto_server: Any) -> None:
    """A one-replica Site subscribes without $share: Mosquitto restores that subscription from its persistence
    file and queues for the session until the bridge is back, so not a single publish goes unrouted."""
    site, bridge, pub = env
    assert survive(site, bridge, pub, mosquitto_server.restart, lambda: None) == 0
    assert [m for m in pub.unrouted if m in pub.keys] == []  # probes sent before the bridge subscribed aside
    assert bridge.proc is not None and bridge.proc.poll() is None, "the bridge died when the broker restarted"


def test_broker_restart_shared_mode(env: tuple[Site, Bridge, Publisher], mosquitto_server: Any) -> None:
    """Shared mode: every Success-PUBACKed message is stored once. Mosquitto 2.0 does not persist $share
    subscriptions, so until the bridge re-subscribes (it reconnects within ~0.1 s) the broker may answer
    "no matching subscribers": those are counted and printed, not stored (see `Publisher`)."""
    site, bridge, pub = env
    unrouted = survive(site, bridge, pub, mosquitto_server.restart, lambda: None)
    print(f"\nbroker restart, shared mode: {unrouted} of 6000 PUBACKed with 'no matching subscribers'")
    assert bridge.proc is not None and bridge.proc.poll() is None, "the bridge died when the broker restarted"


def test_two_replicas_one_killed_loses_nothing(
    env: tuple[Site, Bridge, Publisher], mosquitto_server: Any, tmp_path: Path
) -> None:
    """Two replicas share the subscription; one is SIGKILLed mid-stream and comes back under its name (as a
    StatefulSet pod does), so its session's unacked messages are redelivered to it; the other carries on."""
    site, first, pub = env
    second = Bridge(site, tmp_path, replica="r1")
    second.start()
    try:
        wait_for("the second replica to subscribe", lambda: "subscribed to" in second.log.read_text(), 30, second)

        def kill() -> None:
            second.kill()

        assert survive(site, first, pub, kill, second.start) == 0
        assert "session present: True" in second.log.read_text(), "the restarted replica did not resume its session"
        assert first.metric("dtwin_bridge_messages_received_total") > 0, "the survivor took no share of the load"
    finally:
        if second.proc and second.proc.poll() is None:
            assert second.stop() == 0, second.tail()
        second.forget_session(mosquitto_server.port)
