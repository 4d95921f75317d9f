"""The bridge's only MQTT code: a paho-mqtt 2.x client in its own thread, handing messages to asyncio with backpressure.

The client is MQTT v5 with a stable client id, `clean_start=False` and a Session Expiry Interval, so the broker keeps
the session (subscriptions and every unacknowledged QoS 1 message) while the bridge is down or reconnecting, and
`manual_ack=True`, so a PUBACK leaves only when the runner says the message is committed (`ack`). The broker may
have up to Receive Maximum (65,535, the protocol's ceiling) unacknowledged messages in flight to us: the window
has to cover the queue, the open batch and the batch being written, or acks-after-commit would starve it.

Backpressure: paho's network thread calls `on_message` for every PUBLISH it reads. The callback first takes a slot
of a `threading.Semaphore` sized like the asyncio queue, blocking while none is free; the asyncio side gives the
slot back when it takes the message off the queue. A blocked callback blocks paho's loop thread, so it stops
reading the socket: the kernel buffer fills, TCP flow control stops the broker, and the broker queues the
messages in our persistent session. Nothing is dropped and nothing is read that there is no room for (not
acking alone would not do this: paho would keep reading and we would have to buffer or drop). The cost is that
keepalives stop while blocked; if that outlasts 1.5 x keepalive the broker drops the connection and redelivers
everything unacked on reconnect (with DUP set), which the idempotent writer absorbs.

Acks across reconnects: PUBACK carries only the packet id, which a new connection reuses, so an ack for a
message of an earlier connection must never be sent on a later one (it would vouch for a different, unstored
message). Every delivery carries the connection generation; `on_disconnect` bumps the generation under the same
lock `ack` holds while it checks it and queues the PUBACK, and paho clears its outgoing packet queue in
`reconnect()` (paho/mqtt/client.py, `self._out_packet.clear()`), so a stale PUBACK is either dropped with the old
socket or never queued. `Client.ack` itself is safe to call from another thread while `loop_start` runs: it
appends to a `collections.deque` (atomic) and wakes the loop through its socket pair; the loop thread does the
write (paho 2.2 `_packet_queue`: with a loop thread it never calls `loop_write` itself).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)
RECEIVE_MAXIMUM = 65535


@dataclass(frozen=True, slots=True)
class Delivery:
    """One received PUBLISH; `generation` is the connection it came on (see the module docstring)."""

    topic: str
    payload: bytes = field(repr=False)
    received_at: datetime
    mid: int
    qos: int
    generation: int


class Consumer:
    """A connected, subscribed paho client feeding `queue`; `start`, `ack` after commit, `close` at the end."""

    def __init__(
        self,
        client_id: str,
        host: str,
        port: int,
        filters: Iterable[str],
        queue: asyncio.Queue[Delivery],
        loop: asyncio.AbstractEventLoop,
        *,
        tls: bool = False,
        keepalive_s: int = 30,
        session_expiry_s: int = 7 * 24 * 3600,
        on_connected: Callable[[bool], None] | None = None,
    ) -> None:
        self.queue, self.loop, self.host, self.port = queue, loop, host, port
        self.keepalive_s, self.session_expiry_s = keepalive_s, session_expiry_s
        self.filters = tuple(filters)
        self.on_connected = on_connected
        self._slots = threading.Semaphore(queue.maxsize)
        self._lock = threading.Lock()
        self._generation = 0
        self._connected = False
        self._closing = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=True)
        if tls:
            c.tls_set()
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        self.client = c

    # --- paho's thread -----------------------------------------------------------------------------------------
    def _on_connect(self, client: paho.Client, _u: Any, flags: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            log.warning("MQTT connect refused: %s", rc)
            return
        with self._lock:
            self._generation += 1
            self._connected = True
        # Subscribing again is harmless with a present session and required when it expired.
        client.subscribe([(f, 1) for f in self.filters])
        log.info("MQTT connected (session present: %s), subscribed to %s", flags.session_present, self.filters)
        if self.on_connected:
            self.on_connected(bool(flags.session_present))

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        with self._lock:
            self._generation += 1  # acks queued from now on belong to no live connection
            self._connected = False
        log.warning("MQTT disconnected: %s", rc)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        while not self._slots.acquire(timeout=0.5):  # full: block paho's loop thread (see module docstring)
            if self._closing.is_set():
                return  # not acked: the broker redelivers it to the session
        if self._closing.is_set():
            self._slots.release()
            return
        d = Delivery(msg.topic, bytes(msg.payload), datetime.now(UTC), msg.mid, msg.qos, self._generation)
        self.loop.call_soon_threadsafe(self.queue.put_nowait, d)

    # --- the asyncio side --------------------------------------------------------------------------------------
    def taken(self) -> None:
        """Call once for every message taken off the queue: gives its slot back to the paho thread."""
        self._slots.release()

    def ack(self, deliveries: Iterable[Delivery]) -> int:
        """PUBACK committed messages (in the order given); returns how many were stale and skipped."""
        stale = 0
        with self._lock:
            for d in deliveries:
                if d.generation != self._generation or not self._connected:
                    stale += 1  # the broker redelivers it on the new connection
                elif d.qos > 0:
                    self.client.ack(d.mid, d.qos)
        return stale

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish (not retained) from the asyncio thread; paho queues it while disconnected (like `ack`)."""
        self.client.publish(topic, payload, qos=qos, retain=False)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive_s, clean_start=False, properties=props)
        self.client.loop_start()  # retries the first connection too, with reconnect_delay_set's backoff

    def resubscribe(self, filters: Iterable[str]) -> None:
        """Hot reload: subscribe to new filters, unsubscribe from dropped ones."""
        new = tuple(filters)
        gone, added = set(self.filters) - set(new), [f for f in new if f not in self.filters]
        self.filters = new
        if gone:
            self.client.unsubscribe(sorted(gone))
        if added:
            self.client.subscribe([(f, 1) for f in added])

    def close(self) -> None:
        """Unblock the paho thread, send the queued PUBACKs and a DISCONNECT (the session stays), stop the thread."""
        self._closing.set()
        self._slots.release()
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        self.client.disconnect(properties=props)  # queued after the PUBACKs, so they go out first
        self.client.loop_stop()
