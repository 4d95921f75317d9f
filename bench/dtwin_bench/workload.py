"""What the ingest benchmark sends: message shapes, the SensorBindings that route them, timestamps, frames.

Pure: no clock (callers pass `now`), no I/O. A `Shape` is one kind of message stream: single-reading JSON on
one topic per device, or packs of 20 readings (SenML, Sparkplug B) on one topic per device, each reading a
sensor of its own. Message i goes to device k = i % devices in round r = i // devices, stamped
`t0 + r * step`, so (sensor, ts) never repeats within a run and rows in the database equal readings sent. The
Go publisher (tools/mqttload) builds JSON and SenML itself from the same rules; Sparkplug B and the anchors'
payloads are built here and handed to it as frames (`[u16 topic length][topic][u32 length][payload]`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dtwin_bridge.batch import Batch
from dtwin_bridge.model import Reading
from dtwin_bridge.parse import sparkplug

UNIT = "degC"
SENML_UNIT = "Cel"  # SenML's name for degC (RFC 8428), as the simulator sends it
EXPECTED_INTERVAL_S = 3600  # no sensor goes stale (and raises alerts) while the benchmark runs
PROBE = "probe"


@dataclass(frozen=True)
class Shape:
    key: str  # case name in the report
    fmt: str  # payloadFormat of the bindings: json, senml, sparkplugb
    devices: int  # topics; one device per topic
    readings: int  # readings per message, one sensor each

    def topic_template(self, site: str) -> str:
        """The devices' topic with `%d` for the device index (Go's fmt and Python's % agree on it)."""
        return f"sites/{site}/d%d/{self.fmt}"

    def topic(self, site: str, k: int) -> str:
        return self.topic_template(site) % k

    def field(self, j: int) -> str:
        return "v" if self.readings == 1 else f"f{j:02d}"

    def sensor(self, site: str, k: int, j: int) -> str:
        return f"{site}-d{k:04d}" if self.readings == 1 else f"{site}-d{k:04d}-f{j:02d}"


SINGLE = Shape("single", "json", devices=1000, readings=1)
SENML = Shape("senml", "senml", devices=50, readings=20)
SPARKPLUG = Shape("sparkplug", "sparkplugb", devices=50, readings=20)


def _binding(topic: str, fmt: str, field: str, asset: str, metric: str) -> dict[str, Any]:
    return {
        "assetRef": asset,
        "metric": metric,
        "topic": topic,
        "payloadFormat": fmt,
        "field": field,
        "unit": UNIT,
        "validRange": {"min": -50, "max": 150},
        "expectedIntervalSeconds": EXPECTED_INTERVAL_S,
    }


def probe_topic(site: str) -> str:
    return f"sites/{site}/{PROBE}/json"


def probe_sensor(site: str) -> str:
    return f"{site}-{PROBE}"


def bindings(site: str, shape: Shape) -> list[tuple[str, dict[str, Any]]]:
    """(SensorBinding name, spec) of every sensor of the shape, plus the JSON probe the readiness check uses."""
    out = [(probe_sensor(site), _binding(probe_topic(site), "json", "v", PROBE, "temp"))]
    for k in range(shape.devices):
        for j in range(shape.readings):
            metric = "temp" if shape.readings == 1 else shape.field(j)
            spec = _binding(shape.topic(site, k), shape.fmt, shape.field(j), f"d{k:04d}", metric)
            out.append((shape.sensor(site, k, j), spec))
    return out


def value(i: int, j: int = 0) -> float:
    """Reading j of message i: deterministic, 15.00 .. 24.99 (tools/mqttload/main.go has the same formula)."""
    return 15 + ((i * 20 + j) * 7919 % 1000) / 100


def rounds(n: int, devices: int) -> int:
    return math.ceil(n / devices)


def ts_start(now: float, n: int, devices: int, step: float = 1.0, margin: float = 60.0) -> float:
    """Round 0's timestamp (whole seconds): the last round still lies `margin` s before `now`, well inside
    the bridge's accepted window (no skew into the future, far from the 7-day age limit)."""
    return float(math.floor(now - rounds(n, devices) * step - margin))


def frame(topic: str, payload: bytes) -> bytes:
    t = topic.encode()
    return struct.pack(">H", len(t)) + t + struct.pack(">I", len(payload)) + payload


def frames(messages: Iterable[tuple[str, bytes]]) -> bytes:
    return b"".join(frame(t, p) for t, p in messages)


def sparkplug_messages(site: str, shape: Shape, n: int, t0: float, step: float = 1.0) -> Iterator[tuple[str, bytes]]:
    """Sparkplug B DDATA-like payloads: `readings` DOUBLE metrics, each with the message's timestamp (ms)."""
    for i in range(n):
        k, r = i % shape.devices, i // shape.devices
        t_ms = round((t0 + r * step) * 1000)
        metrics = [
            sparkplug.Metric(shape.field(j), value(i, j), sparkplug.DataType.DOUBLE, timestamp_ms=t_ms)
            for j in range(shape.readings)
        ]
        yield shape.topic(site, k), sparkplug.encode(metrics, timestamp_ms=t_ms, seq=i % 256)


def anchor_messages(payload: Callable[[int], tuple[str, bytes]], n: int) -> Iterator[tuple[str, bytes]]:
    """The anchors' own messages (`common.payload(i)`), so their bridges see exactly what they were built for."""
    return (payload(i) for i in range(n))


def copy_batches(site: str, shape: Shape, rows: int, batch: int, t0: float, step: float = 1.0) -> list[Batch]:
    """Pre-built `Batch`es of `rows` readings as the bridge would hand them to its `Writer`."""
    base = datetime.fromtimestamp(t0, UTC)
    out: list[Batch] = []
    for seq, lo in enumerate(range(0, rows, batch), start=1):
        readings = tuple(
            Reading(shape.sensor(site, i % shape.devices, 0), base + timedelta(seconds=(i // shape.devices) * step),
                    value(i))
            for i in range(lo, min(rows, lo + batch))
        )  # fmt: skip
        out.append(Batch(seq, readings, (), (), 0.0))
    return out
