"""The bridge's MQTT session: an asyncio MQTT v5 client that hands messages over in bulk and acknowledges in bulk.

Why not paho: paho reads one packet per `select()` on its own thread and writes one PUBACK per `send()`; with
the hand-off to asyncio that costs ~100 us of CPU per message, which caps a Python subscriber near 8,600 msg/s at
QoS 1 on the reference 2-core box (shared/anchors RESULTS, test 1) — below what one bridge must carry. Here the
socket belongs to the event loop: `data_received` decodes every packet in the chunk the kernel handed over
(`dtwin_bridge.mqttwire.codec`) and passes all of its PUBLISHes to `on_messages` in one call, on the loop thread;
acknowledgements for a committed batch go out as one write of concatenated PUBACKs.

Session: a stable client id, Clean Start 0 and a Session Expiry Interval, so the broker keeps the subscriptions
and every unacknowledged QoS 1 message while the bridge is down; Receive Maximum 65,535 (the protocol's ceiling),
because acks leave only after commit and the window must cover the queue, the open batch and the batch being
written. Subscribing again on every connect is harmless with a present session and needed without one.

Backpressure: `pause()` stops reading the socket (the runner calls it while too many messages are unacked), so
the kernel buffer fills, TCP stops the broker and the broker queues for our session; `resume()` reads again.
Keepalive continues while paused — PINGREQs are writes — so a long database outage does not cost the connection.

Acks across reconnects: a PUBACK carries only the packet id, which the next connection reuses, so an ack for a
message of an earlier connection must never be sent on a later one. Each connection has a generation number;
`on_messages` is told it, the runner keeps it with each message, and `ack` drops (and counts) acks whose
generation is not the live one: the broker redelivers those messages on the new connection, with DUP set, and
the idempotent writer absorbs them.

Outgoing PUBLISH (the rules' alert events) is QoS 1 with the client's own packet ids; unacknowledged ones are
resent with DUP on the next connection, and at most `max_outgoing` wait (the oldest go first: the alert rows
themselves are in the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from dtwin_bridge.mqttwire import codec

log = logging.getLogger(__name__)
RECEIVE_MAXIMUM = 65535
CONNECT_TIMEOUT_S = 10.0


class Ack(NamedTuple):
    """What acknowledging one received message takes: its connection, packet id and QoS."""

    generation: int
    packet_id: int
    qos: int


OnMessages = Callable[[list[codec.Publish], int, datetime], None]


class ConnectRefusedError(ConnectionError):
    """CONNACK or SUBACK said no (bad credentials, not authorised, ...)."""


async def _answer(fut: asyncio.Future[codec.Packet], wire: _Wire) -> codec.Packet:
    """The broker's answer, or ConnectionError when the connection goes first, TimeoutError when neither comes."""
    waits: set[asyncio.Future[object]] = {fut, wire.lost}  # type: ignore[arg-type]
    done, _ = await asyncio.wait(waits, timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if fut in done:
        return fut.result()
    if wire.lost in done:
        raise ConnectionError("connection closed while waiting for the broker's answer")
    raise TimeoutError(f"no answer from the broker in {CONNECT_TIMEOUT_S:.0f}s")


class _Wire(asyncio.Protocol):
    """One TCP connection; forwards everything to the `Consumer`."""

    def __init__(self, owner: Consumer) -> None:
        self.owner = owner
        self.decoder = codec.Decoder()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            packets = self.decoder.feed(data)
        except codec.ProtocolError as err:
            log.error("MQTT protocol error, dropping the connection: %s", err)
            assert self.transport is not None
            self.transport.abort()
            return
        self.owner._packets(self, packets)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.owner._lost(self, exc)


class Consumer:
    """A subscribed MQTT v5 session; `run()` keeps it connected until `close()`."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        filters: Iterable[str],
        on_messages: OnMessages,
        *,
        tls: bool = False,
        keepalive_s: int = 30,
        session_expiry_s: int = 7 * 24 * 3600,
        username: str | None = None,
        password: str | None = None,
        max_outgoing: int = 10_000,
        on_connected: Callable[[bool], None] | None = None,
    ) -> None:
        self.client_id, self.host, self.port, self.tls = client_id, host, port, tls
        self.filters = tuple(filters)
        self.on_messages = on_messages
        self.keepalive_s, self.session_expiry_s = keepalive_s, session_expiry_s
        self.username, self.password = username, password
        self.max_outgoing = max_outgoing
        self.on_connected = on_connected
        self.generation = 0
        self.connected = False
        self.paused = False
        self.dropped_outgoing = 0
        self._wire: _Wire | None = None
        self._connack: asyncio.Future[codec.Packet] | None = None
        self._acks: dict[int, asyncio.Future[codec.Packet]] = {}  # SUBACK/UNSUBACK by packet id
        self._outgoing: dict[int, bytes] = {}  # our unacked QoS 1 PUBLISHes by packet id (insertion = age)
        self._next_id = 0
        self._last_read = time.monotonic()
        self._closing = False

    # --- the connection loop -----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect, subscribe, keep alive, reconnect with backoff (0.1 s doubling to 5 s); returns after `close`."""
        delay = 0.1
        while not self._closing:
            try:
                wire = await self._connect()
                delay = 0.1
                await self._keepalive(wire)
            except (OSError, codec.ProtocolError, TimeoutError, ConnectRefusedError) as err:
                log.warning("MQTT %s:%d: %s; reconnecting in %.1fs", self.host, self.port, err, delay)
            finally:
                if self._wire is not None and self._wire.transport is not None and not self._closing:
                    self._wire.transport.abort()
            if self._closing:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _connect(self) -> _Wire:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self.tls else None
        _t, wire = await asyncio.wait_for(
            loop.create_connection(lambda: _Wire(self), self.host, self.port, ssl=context), CONNECT_TIMEOUT_S
        )
        self._wire = wire
        self._connack = loop.create_future()
        self._write(
            codec.connect(
                self.client_id,
                keepalive=self.keepalive_s,
                clean_start=False,
                session_expiry=self.session_expiry_s,
                receive_maximum=RECEIVE_MAXIMUM,
                username=self.username,
                password=self.password,
            )
        )
        connack = await _answer(self._connack, wire)
        if connack.reasons[0] >= 0x80:
            raise ConnectRefusedError(f"CONNACK reason 0x{connack.reasons[0]:02x} {connack.properties}")
        server_keepalive = connack.properties.get(codec.SERVER_KEEP_ALIVE)
        if isinstance(server_keepalive, int):
            self.keepalive_s = server_keepalive  # the server's word wins (MQTT 5.0, 3.2.2.3.14)
        self.generation += 1
        self.connected = True
        if self.paused and wire.transport is not None:
            wire.transport.pause_reading()
        for packet in self._outgoing.values():
            self._write(bytes((packet[0] | 0x08,)) + packet[1:])  # resent: DUP set
        suback = await self._request(codec.SUBSCRIBE, lambda pid: codec.subscribe(pid, self.filters))
        refused = [f for f, rc in zip(self.filters, suback.reasons, strict=False) if rc >= 0x80]
        if refused:
            raise ConnectRefusedError(f"subscription refused for {refused}: {suback.reasons}")
        log.info("MQTT connected (session present: %s), subscribed to %s", connack.session_present, self.filters)
        if self.on_connected:
            self.on_connected(connack.session_present)
        return wire

    async def _keepalive(self, wire: _Wire) -> None:
        """PINGREQ every half keepalive; a silent broker (while we read) for 1.5 keepalives is a dead one."""
        period = max(self.keepalive_s / 2, 0.5)
        self._last_read = time.monotonic()
        while not wire.lost.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(wire.lost), period)
            if wire.lost.done():
                return
            self._write(codec.PINGREQ_BYTES)
            if not self.paused and time.monotonic() - self._last_read > 1.5 * self.keepalive_s:
                raise TimeoutError(f"no packet from the broker for {1.5 * self.keepalive_s:.0f}s")

    def _new_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._outgoing and self._next_id not in self._acks:
                return self._next_id
        raise RuntimeError("all 65,535 packet ids are in use")

    async def _request(self, kind: int, build: Callable[[int], bytes]) -> codec.Packet:
        pid = self._new_id()
        fut: asyncio.Future[codec.Packet] = asyncio.get_running_loop().create_future()
        self._acks[pid] = fut
        try:
            self._write(build(pid))
            assert self._wire is not None
            return await _answer(fut, self._wire)
        finally:
            self._acks.pop(pid, None)

    def _write(self, data: bytes) -> None:
        if self._wire is not None and self._wire.transport is not None and not self._wire.transport.is_closing():
            self._wire.transport.write(data)

    # --- called by _Wire, on the loop thread -------------------------------------------------------------------
    def _packets(self, wire: _Wire, packets: list[codec.Publish | codec.Packet]) -> None:
        if wire is not self._wire:
            return  # a connection we already gave up on
        self._last_read = time.monotonic()
        publishes: list[codec.Publish] = []
        for p in packets:
            if isinstance(p, tuple):
                publishes.append(p)
            elif p.type == codec.PUBACK:
                self._outgoing.pop(p.packet_id, None)
            elif p.type == codec.CONNACK:
                if self._connack is not None and not self._connack.done():
                    self._connack.set_result(p)
            elif p.type in (codec.SUBACK, codec.UNSUBACK):
                fut = self._acks.get(p.packet_id)
                if fut is not None and not fut.done():
                    fut.set_result(p)
            elif p.type == codec.DISCONNECT:
                log.warning("MQTT broker disconnected us: reason 0x%02x %s", p.reasons[0], p.properties)
        if publishes:
            self.on_messages(publishes, self.generation, datetime.now(UTC))

    def _lost(self, wire: _Wire, exc: Exception | None) -> None:
        if wire is not self._wire:
            return
        if self.connected:
            log.warning("MQTT connection lost: %s", exc or "closed by the broker")
        self.connected = False
        self.generation += 1  # acks from now on belong to no live connection

    # --- the runner's side ---------------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop reading (backpressure); idempotent."""
        if not self.paused:
            self.paused = True
            if self._wire is not None and self._wire.transport is not None and self.connected:
                self._wire.transport.pause_reading()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._last_read = time.monotonic()  # silence while paused says nothing about the broker
            if self._wire is not None and self._wire.transport is not None and self.connected:
                self._wire.transport.resume_reading()

    def ack(self, acks: Iterable[Ack]) -> int:
        """PUBACK committed messages, in the order given, in one write; returns how many were stale and skipped."""
        stale, ids, live = 0, [], self.generation if self.connected else -1
        for a in acks:
            if a.generation != live:
                stale += 1  # the broker redelivers it on the new connection
            elif a.qos:
                ids.append(a.packet_id)
        if ids:
            self._write(codec.pubacks(ids))
        return stale

    def publish(
        self, topic: str, payload: bytes, user_properties: Iterable[tuple[str, str]] = (), qos: int = 1
    ) -> None:
        """Not retained. QoS 1 is kept and resent until the broker acknowledges it (see the module docstring);
        QoS 0 is written if connected and otherwise dropped (live views)."""
        if qos == 0:
            if self.connected:
                self._write(codec.publish(topic, payload, qos=0, user_properties=user_properties))
            return
        while len(self._outgoing) >= self.max_outgoing:
            del self._outgoing[next(iter(self._outgoing))]
            self.dropped_outgoing += 1
        pid = self._new_id()
        packet = codec.publish(topic, payload, qos=1, packet_id=pid, user_properties=user_properties)
        self._outgoing[pid] = packet
        if self.connected:
            self._write(packet)

    def resubscribe(self, filters: Iterable[str]) -> None:
        """Hot reload: subscribe to new filters, unsubscribe from dropped ones (the next connect uses the new set)."""
        new = tuple(filters)
        gone, added = sorted(set(self.filters) - set(new)), [f for f in new if f not in self.filters]
        self.filters = new
        if not self.connected:
            return
        if gone:
            self._write(codec.unsubscribe(self._new_id(), gone))
        if added:
            self._write(codec.subscribe(self._new_id(), added))

    async def close(self) -> None:
        """DISCONNECT keeping the session (queued PUBACKs go first: same socket, in order), then stop `run`."""
        self._closing = True
        wire = self._wire
        if wire is None or wire.transport is None or wire.transport.is_closing():
            return
        if self.connected:
            wire.transport.write(codec.disconnect(0, self.session_expiry_s))
        wire.transport.close()  # flushes the write buffer first
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(wire.lost), 5.0)
