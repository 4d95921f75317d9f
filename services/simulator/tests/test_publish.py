"""Publishing: pacing by speed and rate (fake clock), and one run to a real Mosquitto at QoS 1 in which a real
subscriber receives exactly the messages the publisher got a PUBACK for."""

from __future__ import annotations

import dataclasses
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dtwin_localcp.kubeapi import wait_until
from dtwin_simulator import publish, stream


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_follows_speed() -> None:
    clock = FakeClock()
    pacer = publish.Pacer(sim_start_ms=0, speed=60.0, rate=None, clock=clock)
    assert pacer.wait(0) == 0.0
    assert pacer.wait(60_000) == pytest.approx(1.0)  # one simulated minute at 60x
    clock.now += 0.25
    assert pacer.wait(60_000) == pytest.approx(0.75)


def test_pacer_caps_the_rate() -> None:
    clock = FakeClock()
    pacer = publish.Pacer(sim_start_ms=0, speed=float("inf"), rate=100.0, clock=clock)
    waits = []
    for _ in range(3):
        waits.append(pacer.wait(0))
        pacer.sent()
    assert waits == pytest.approx([0.0, 0.01, 0.02])
    clock.now += 1.0  # the publisher fell behind: it may catch up by at most 50 ms, then 100/s again
    waits = []
    for _ in range(7):
        waits.append(pacer.wait(0))
        pacer.sent()
    assert [w < 1e-9 for w in waits] == [True] * 6 + [False]


def test_pacer_unbounded_never_waits() -> None:
    pacer = publish.Pacer(sim_start_ms=0, speed=float("inf"), rate=None, clock=FakeClock())
    assert pacer.wait(10**12) <= 0


def test_qos1_run_to_a_real_broker(mosquitto_server, demo, sim) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"  # our own topics, whatever else uses the broker
    part = dataclasses.replace(
        demo, sensors=tuple(dataclasses.replace(s, topic=f"{prefix}/{s.topic}") for s in demo.sensors)
    )
    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{prefix}-sub", protocol=mqtt.MQTTv5)
    sub.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
    sub.connect(mosquitto_server.host, mosquitto_server.port)
    sub.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK"
        acked: list[stream.Message] = []
        sink = publish.MqttSink(mosquitto_server.host, mosquitto_server.port, qos=1, window=200, on_ack=acked.append)
        sink.connect()
        msgs = list(stream.messages(part, seed=7, start_ms=sim.start, end_ms=sim.start + 3_600_000))
        # A last message after the run: the broker keeps one publisher's order, so once it has arrived,
        # everything else has, and the comparison below is exact without sleeping.
        end = stream.Message(msgs[-1].t_ms, f"{prefix}/end", b"end")
        counts = publish.run([*msgs, end], sink, publish.Pacer(sim.start, float("inf"), None), publish.Progress(None))
        assert counts.sent == len(msgs) + 1 == 2161
        assert counts.acked == counts.sent and counts.refused == 0
        wait_until(
            lambda: (end.topic, end.payload) in received, 30, "the last message at the subscriber", interval=0.01
        )
        assert sorted(received) == sorted((m.topic, m.payload) for m in acked)
        assert len(received) == counts.acked
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_sampled_messages_carry_their_producer_span_over_mqtt(mosquitto_server) -> None:
    """trace_every=2: every other message is published inside a PRODUCER span whose context reaches the
    subscriber as a W3C traceparent user property; the others carry none."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # the process's provider (set once; no other test sets one)
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    got: dict[str, list[tuple[str, str]]] = {}
    subscribed = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{prefix}-sub", protocol=mqtt.MQTTv5)
    sub.on_connect = lambda c, *_: c.subscribe(f"{prefix}/#", qos=1)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda _c, _u, m: got.__setitem__(m.topic, getattr(m.properties, "UserProperty", []))
    sub.connect(mosquitto_server.host, mosquitto_server.port)
    sub.loop_start()
    try:
        assert subscribed.wait(10), "no SUBACK"
        sink = publish.MqttSink(mosquitto_server.host, mosquitto_server.port, qos=1, trace_every=2)
        sink.connect()
        for i in range(4):
            sink.send(stream.Message(0, f"{prefix}/m{i}", b"{}"))
        assert sink.finish(10)
        wait_until(lambda: len(got) == 4, 10, "4 messages at the subscriber", interval=0.01)
    finally:
        sub.loop_stop()
        sub.disconnect()
    spans = {s.attributes["messaging.destination.name"]: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == [f"{prefix}/m0", f"{prefix}/m2"]
    for topic, span in spans.items():
        sc = span.get_span_context()
        assert span.kind == trace.SpanKind.PRODUCER
        assert got[topic] == [("traceparent", f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}")]
    assert got[f"{prefix}/m1"] == got[f"{prefix}/m3"] == []
