"""The I/O edge: pace the stream in wall-clock time and hand it to an MQTT broker or to stdout.

`MqttSink` drives paho-mqtt 2.x without its network thread, as the shared anchors' fastest publisher does
(`publish()` writes to the socket and the same thread reads PUBACKs in `pump()`; a loop thread costs a GIL
hand-off and a socketpair wake-up per message). At QoS 1 it keeps at most `window` messages unacknowledged and
counts every PUBACK: `acked` is exactly the set of messages the broker took responsibility for, which is what
zero-loss tests compare the database against; a PUBACK with a failure reason code counts as `refused`. If the
connection drops it reconnects with backoff, resuming its MQTT v5 session, and paho resends what was in flight.
`Pacer` maps simulated to wall time (`speed`x, or as fast as possible) under a `rate` cap in messages/s.
"""

from __future__ import annotations

import base64
import select
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any, Protocol

import paho.mqtt.client as mqtt
from opentelemetry import trace
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from dtwin_core import tracing
from dtwin_simulator import times
from dtwin_simulator.stream import Message

tracer = trace.get_tracer("dtwin.simulator")
Clock = Callable[[], float]
BURST_S = 0.05  # how far behind the rate cap may let the publisher catch up at once


@dataclass
class Counts:
    sent: int = 0
    acked: int = 0  # QoS 1: PUBACK with a success reason code; QoS 0: written to the socket
    refused: int = 0  # QoS 1: PUBACK with a failure reason code (e.g. not authorized)
    reconnects: int = 0


class Sink(Protocol):
    counts: Counts

    def send(self, msg: Message) -> None: ...

    def idle(self, seconds: float) -> None: ...

    def finish(self, timeout: float) -> bool: ...


class Pacer:
    """When each message may go: simulated time / `speed` after the first, and no faster than `rate`/s."""

    def __init__(self, sim_start_ms: int, speed: float, rate: float | None, clock: Clock = time.monotonic) -> None:
        self._sim0, self._speed, self._rate, self._clock = sim_start_ms, speed, rate, clock
        self._wall0 = clock()
        self._slot = self._wall0

    def wait(self, t_ms: int) -> float:
        """Seconds to wait before sending the message stamped `t_ms` (≤ 0: now)."""
        due = self._wall0 + (t_ms - self._sim0) / 1000.0 / self._speed if self._speed != float("inf") else 0.0
        return max(due, self._slot if self._rate else 0.0) - self._clock()

    def sent(self) -> None:
        if self._rate:
            # A token bucket: a message sent late lets the next ones catch up, but never more than BURST s worth.
            self._slot = max(self._slot, self._clock() - BURST_S) + 1.0 / self._rate


class Progress:
    """A line on `out` every `every` seconds of wall time: simulated time, messages, rate."""

    def __init__(self, out: IO[str] | None, every: float = 5.0, clock: Clock = time.monotonic) -> None:
        self._out, self._every, self._clock = out, every, clock
        self._last = self._start = clock()
        self._last_sent = 0

    def tick(self, t_ms: int, counts: Counts, force: bool = False) -> None:
        now = self._clock()
        if self._out is None or (now - self._last < self._every and not force):
            return
        rate = (counts.sent - self._last_sent) / max(now - self._last, 1e-9)
        self._out.write(
            f"sim {times.iso(t_ms)}  sent {counts.sent:,}  acked {counts.acked:,}  {rate:,.0f} msg/s"
            f"  ({now - self._start:.0f} s)\n"
        )
        self._out.flush()
        self._last, self._last_sent = now, counts.sent


class DryRunSink:
    """Writes `<iso time> <topic> <payload>` lines; binary (Sparkplug) payloads as `b64:<base64>`."""

    def __init__(self, out: IO[str]) -> None:
        self.counts = Counts()
        self._out = out

    def send(self, msg: Message) -> None:
        body = msg.payload
        text = body.decode() if body[:1] in (b"{", b"[") else "b64:" + base64.b64encode(body).decode()
        self._out.write(f"{times.iso(msg.t_ms)} {msg.topic} {text}\n")
        self.counts.sent += 1
        self.counts.acked += 1

    def idle(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def finish(self, timeout: float) -> bool:
        self._out.flush()
        return True


class MqttSink:
    """Publishes to a broker (MQTT v5) and accounts for every PUBACK."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        qos: int = 1,
        client_id: str | None = None,
        window: int = 1000,
        keepalive: int = 60,
        on_ack: Callable[[Message], None] | None = None,
        trace_every: int = 0,
    ) -> None:
        self.counts = Counts()
        self.trace_every = trace_every
        self.host, self.port, self.qos, self.window, self.keepalive = host, port, qos, window, keepalive
        self._on_ack = on_ack
        self._pending: dict[int, Message] = {}
        self._connected = False
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"dtwin-simulator-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(window)
        self.client.max_queued_messages_set(0)  # unlimited: our own window bounds what is outstanding
        self.client.on_connect = self._connected_cb
        self.client.on_disconnect = self._disconnected_cb
        self.client.on_publish = self._published_cb

    def _connected_cb(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connected = not reason.is_failure

    def _disconnected_cb(self, *_args: Any) -> None:
        self._connected = False

    def _published_cb(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        if self.qos and reason.is_failure:
            self.counts.refused += 1
            self._pending.pop(mid, None)
            return
        self.counts.acked += 1
        msg = self._pending.pop(mid, None)
        if msg is not None and self._on_ack is not None:
            self._on_ack(msg)

    def connect(self, timeout: float = 10.0) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600  # keep in-flight QoS 1 messages across a reconnect
        self.client.connect(
            self.host, self.port, self.keepalive, clean_start=mqtt.MQTT_CLEAN_START_FIRST_ONLY, properties=props
        )
        deadline = time.monotonic() + timeout
        while not self._connected:
            if time.monotonic() > deadline:
                raise ConnectionError(f"no CONNACK from {self.host}:{self.port} within {timeout} s")
            self.pump(0.05)

    def _reconnect(self) -> None:
        delay = 0.1
        deadline = time.monotonic() + 120.0
        while True:
            try:
                self.client.reconnect()
                self.counts.reconnects += 1
                return
            except OSError as err:
                if time.monotonic() > deadline:
                    raise ConnectionError(f"broker {self.host}:{self.port} unreachable for 120 s: {err}") from err
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def pump(self, timeout: float) -> None:
        """Wait up to `timeout` s for socket events and process them (PUBACKs in, queued packets out)."""
        sock = self.client.socket()
        if sock is None:
            self._reconnect()
            return
        want = [sock] if self.client.want_write() else []
        readable, writable, _ = select.select([sock], want, [], timeout)
        rc = self.client.loop_read() if readable else mqtt.MQTT_ERR_SUCCESS
        if rc == mqtt.MQTT_ERR_SUCCESS and (writable or self.client.want_write()):
            rc = self.client.loop_write()
        if rc == mqtt.MQTT_ERR_SUCCESS:
            rc = self.client.loop_misc()
        if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            self._connected = False
            self._reconnect()

    def outstanding(self) -> int:
        return self.counts.sent - self.counts.acked - self.counts.refused if self.qos else 0

    def send(self, msg: Message) -> None:
        while self.qos and self.outstanding() >= self.window:
            self.pump(0.05)
        if self.trace_every and self.counts.sent % self.trace_every == 0:
            info = self._traced_publish(msg)
        else:
            info = self.client.publish(msg.topic, msg.payload, qos=self.qos)
        self.counts.sent += 1
        if self._on_ack is not None:
            self._pending[info.mid] = msg
        if self.counts.sent % 64 == 0 or self.client.want_write():
            self.pump(0.0)

    def _traced_publish(self, msg: Message) -> mqtt.MQTTMessageInfo:
        """A sampled message: publish inside a PRODUCER span and carry its context in user properties."""
        attributes = {
            "messaging.system": "mqtt",
            "messaging.destination.name": msg.topic,
            "messaging.operation": "publish",
        }
        with tracer.start_as_current_span(f"publish {msg.topic}", kind=trace.SpanKind.PRODUCER, attributes=attributes):
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = tracing.user_properties()
            return self.client.publish(msg.topic, msg.payload, qos=self.qos, properties=props)

    def idle(self, seconds: float) -> None:
        self.pump(max(0.0, seconds))

    def finish(self, timeout: float) -> bool:
        """Wait until every QoS 1 message is acknowledged and the socket is drained; True if so."""
        deadline = time.monotonic() + timeout
        while (self.outstanding() or self.client.want_write()) and time.monotonic() < deadline:
            self.pump(0.05)
        done = not self.outstanding()
        self.client.disconnect()
        for _ in range(20):
            if not self.client.want_write():
                break
            self.pump(0.05)
        return done


def run(
    messages: Iterable[Message], sink: Sink, pacer: Pacer, progress: Progress, finish_timeout: float = 60.0
) -> Counts:
    """Send every message when the pacer allows; then wait for the outstanding acknowledgements."""
    last = 0
    for msg in messages:
        wait = pacer.wait(msg.t_ms)
        while wait > 0:
            sink.idle(min(wait, 0.2))
            progress.tick(msg.t_ms, sink.counts)
            wait = pacer.wait(msg.t_ms)
        sink.send(msg)
        pacer.sent()
        progress.tick(msg.t_ms, sink.counts)
        last = msg.t_ms
    sink.finish(finish_timeout)
    progress.tick(last, sink.counts, force=True)
    return sink.counts
