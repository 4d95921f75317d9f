"""Payloads as real devices send them: one message per device and tick, in the binding's payload format.

JSON is one object: `ts` (epoch milliseconds) plus each reading at its binding's `field`, a dotted field
becoming nested objects (`temperature.supply` → `{"temperature": {"supply": 12.9}}`), the demo campus' shape;
a field that would both hold a value and an object stays a literal dotted key, which the bridge also reads.
SenML (RFC 8428) is a pack: the first record carries `bn` (`urn:dev:dtwin:<asset>:`, repeated when the asset
changes within a pack) and `bt` (epoch seconds), each record its `n` (the field) and `v`, plus `u` when the
unit has a registered SenML name. Sparkplug B uses the bridge's own encoder: DOUBLE metrics named by field,
each with the timestamp, and the device's message sequence number (0-255) in `seq`.
"""

from __future__ import annotations

import json
from typing import Any

from dtwin_bridge.parse import sparkplug
from dtwin_bridge.parse.senml import SENML_UNITS
from dtwin_simulator.fleet import Sensor

# Binding unit → SenML unit, for the units RFC 8428 / RFC 8798 register under another spelling or the same one.
SENML_NAME = {unit: name for name, unit in SENML_UNITS.items()}
Readings = tuple[tuple[Sensor, float], ...]


def _nest(doc: dict[str, Any], path: str, value: float) -> None:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            doc[path] = value  # `a` already holds a value: keep `a.b` literal
            return
        node = child
    if parts[-1] in node:
        doc[path] = value
    else:
        node[parts[-1]] = value


def as_json(t_ms: int, readings: Readings) -> bytes:
    doc: dict[str, Any] = {"ts": t_ms}
    for sensor, value in readings:
        _nest(doc, sensor.field, value)
    return json.dumps(doc, separators=(",", ":")).encode()


def as_senml(t_ms: int, readings: Readings) -> bytes:
    pack: list[dict[str, Any]] = []
    asset = None
    for sensor, value in readings:
        rec: dict[str, Any] = {}
        if sensor.asset != asset:
            asset = sensor.asset
            rec["bn"] = f"urn:dev:dtwin:{asset}:"
        if not pack:
            rec["bt"] = t_ms / 1000
        rec["n"] = sensor.field
        if sensor.unit in SENML_NAME:
            rec["u"] = SENML_NAME[sensor.unit]
        rec["v"] = value
        pack.append(rec)
    return json.dumps(pack, separators=(",", ":")).encode()


def as_sparkplug(t_ms: int, readings: Readings, seq: int) -> bytes:
    metrics = [sparkplug.Metric(s.field, float(v), sparkplug.DataType.DOUBLE, timestamp_ms=t_ms) for s, v in readings]
    return sparkplug.encode(metrics, timestamp_ms=t_ms, seq=seq % 256)


def payload(fmt: str, t_ms: int, readings: Readings, seq: int = 0) -> bytes:
    """The bytes one device publishes for `readings` taken at `t_ms`."""
    if fmt == "json":
        return as_json(t_ms, readings)
    if fmt == "senml":
        return as_senml(t_ms, readings)
    if fmt == "sparkplugb":
        return as_sparkplug(t_ms, readings, seq)
    raise ValueError(f"unknown payload format {fmt!r}")
