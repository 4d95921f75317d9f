"""The deterministic stream: every reading of every sensor in time order, grouped into device messages.

A device is the set of sensors sharing a topic and payload format; it first reports at the run's start plus a
phase drawn from (seed, topic) within its shortest interval, so a site's devices do not all fire on the same
second, and then each sensor every `expectedIntervalSeconds`; sensors of a device that are due together go in
one message. A JSON device publishes its whole object every cycle (its fastest binding's interval), because
the bridge reads a bound JSON field that is absent as a `missing_field` fault, not as "not due yet". A heap
orders devices by (time, device index), so equal seeds and configs give byte-identical streams. Each value is
the signal's reading, clamped to the binding's validRange (a transmitter saturates at its span), rounded to
four significant digits of that span, then passed through the sensor's faults (a spike may leave the range:
that is what spikes are for). Nothing here reads a clock, a file or the network.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from dtwin_simulator import encode
from dtwin_simulator.faults import Fault, SensorFaults
from dtwin_simulator.fleet import Fleet, Sensor
from dtwin_simulator.signals import catalog, roles
from dtwin_simulator.signals.model import AssetModel, SensorState, Signal
from dtwin_simulator.signals.noise import hash01, key, rng_for
from dtwin_simulator.signals.profile import Climate


class Message(NamedTuple):
    t_ms: int  # simulated time, epoch milliseconds
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Batch:
    """The readings one device reports at one instant (before encoding)."""

    t_ms: int
    topic: str
    format: str
    seq: int  # messages this device sent before this one
    readings: tuple[tuple[Sensor, float], ...]


class _Point:
    __slots__ = ("decimals", "faults", "interval_ms", "lo_hi", "next_ms", "rng", "sensor", "signal", "span", "state")

    def __init__(self, sensor: Sensor, signal: Signal, seed: object, faults: list[Fault]) -> None:
        self.sensor, self.signal, self.state = sensor, signal, SensorState()
        self.rng = rng_for(seed, "sensor", sensor.name)
        self.interval_ms = sensor.interval_s * 1000
        self.next_ms = 0
        self.lo_hi = sensor.valid_range
        self.span = (sensor.valid_range[1] - sensor.valid_range[0]) if sensor.valid_range else 100.0
        self.decimals = max(0, min(4, 4 - math.ceil(math.log10(self.span)))) if sensor.valid_range else 3
        mine = [f for f in faults if sensor in f.sensors]
        self.faults = SensorFaults(mine, seed, sensor.name) if any(f.effect == "" for f in mine) else None

    def read(self, t_ms: int) -> float | None:
        v = self.signal.value(t_ms / 1000.0, self.state, self.rng)
        if self.lo_hi is not None:
            v = min(max(v, self.lo_hi[0]), self.lo_hi[1])
        v = round(v, self.decimals)
        if self.faults is None:
            return v
        out = self.faults.observe(t_ms, v, self.span)
        return None if out is None else round(out, self.decimals)


class _Device:
    __slots__ = ("format", "next_ms", "points", "seq", "topic")

    def __init__(self, topic: str, fmt: str, points: list[_Point]) -> None:
        self.topic, self.format, self.points, self.seq, self.next_ms = topic, fmt, points, 0, 0


def _models(fleet: Fleet, faults: tuple[Fault, ...], seed: object) -> dict[str, tuple[AssetModel, frozenset[str]]]:
    climates = {s.name: Climate(s.timezone, s.latitude, seed, s.name) for s in fleet.sites}
    out = {}
    for a in fleet.assets:
        site = fleet.site(a.site)
        climate = climates.setdefault(a.site, Climate(site.timezone, site.latitude, seed, a.site))
        site_kw = sum(x.rated_power_kw or 0.0 for x in fleet.assets if x.site == a.site and x.kind != "Meter")
        tagged = [(s, roles.classify(s.metric, s.unit)) for s in fleet.sensors_of(a.name)]
        design = catalog.design(a, tagged, site_kw, seed)
        family = catalog.FAMILIES[a.kind]
        physical = [f for f in faults if f.asset == a.name and f.effect]
        model = AssetModel(family, design, climate, physical, key(seed, "wander", a.name))
        out[a.name] = (model, catalog.provided(family, design))
    return out


def devices(fleet: Fleet, faults: tuple[Fault, ...], seed: object) -> list[_Device]:
    """The fleet's devices, sorted by (topic, format), each with its sensors' value models."""
    models = _models(fleet, faults, seed)
    grouped: dict[tuple[str, str], list[_Point]] = {}
    for s in fleet.sensors:
        model, modelled = models[s.asset]
        sig = catalog.signal(s, roles.classify(s.metric, s.unit), model, model.design, modelled)
        grouped.setdefault((s.topic, s.format), []).append(_Point(s, sig, seed, list(faults)))
    for (_, fmt), pts in grouped.items():
        if fmt == "json":  # the bridge reads an absent JSON field as a fault: send the whole object each cycle
            cycle = min(p.interval_ms for p in pts)
            for p in pts:
                p.interval_ms = cycle
    return [_Device(topic, fmt, pts) for (topic, fmt), pts in sorted(grouped.items())]


def batches(fleet: Fleet, faults: Iterable[Fault] = (), *, seed: object, start_ms: int, end_ms: int) -> Iterator[Batch]:
    """Every device report in [start_ms, end_ms), in time order."""
    devs = devices(fleet, tuple(faults), seed)
    heap: list[tuple[int, int]] = []
    for i, dev in enumerate(devs):
        shortest = min(p.interval_ms for p in dev.points)
        dev.next_ms = start_ms + int(hash01(key(seed, "phase", dev.topic, dev.format), 0) * shortest)
        for p in dev.points:
            p.next_ms = dev.next_ms
        heap.append((dev.next_ms, i))
    heapq.heapify(heap)
    while heap:
        t, i = heapq.heappop(heap)
        if t >= end_ms:
            break
        dev = devs[i]
        readings = []
        for p in dev.points:
            if p.next_ms == t:
                p.next_ms += p.interval_ms
                value = p.read(t)
                if value is not None:
                    readings.append((p.sensor, value))
        if readings:
            yield Batch(t, dev.topic, dev.format, dev.seq, tuple(readings))
            dev.seq += 1
        dev.next_ms = min(p.next_ms for p in dev.points)
        heapq.heappush(heap, (dev.next_ms, i))


def messages(
    fleet: Fleet, faults: Iterable[Fault] = (), *, seed: object, start_ms: int, end_ms: int
) -> Iterator[Message]:
    """The stream as `(sim_time_ms, topic, payload)`, ready to publish."""
    for b in batches(fleet, faults, seed=seed, start_ms=start_ms, end_ms=end_ms):
        yield Message(b.t_ms, b.topic, encode.payload(b.format, b.t_ms, b.readings, b.seq))
