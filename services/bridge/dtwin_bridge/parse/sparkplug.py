"""Sparkplug B payloads: a protobuf `Payload` of `metrics`, each with a name, a timestamp and one typed value.

No protoc runs here, so the message classes are built at import time from a FileDescriptorProto written
below: the subset of Eclipse Tahu's sparkplug_b.proto (proto2, package org.eclipse.tahu.protobuf) the bridge
reads, with the official field numbers, so real payloads decode; fields left out (metadata, properties,
dataset/template values, extensions) are kept as unknown fields and never fail a decode. A metric is bound
to the route whose `field` equals its name; its time is its own timestamp, else the payload's, else the
arrival time (all epoch milliseconds). Signed integer types travel as two's complement in uint32/uint64;
only the datatype's own low bits are read, so both sign-extended and truncated encoders decode right.

Decisions: a metric whose name matches no route is ignored, and a DDATA metric sent by alias only cannot be
bound (aliases are defined in a DBIRTH the stateless parser never sees); when nothing in the message matches,
one `unknown_field` reject keeps it. A null metric (`is_null`) or one without a scalar value is a
`missing_field` reject for its sensor. `encode()` builds payloads for tests and the simulator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from dtwin_bridge.model import Message, Reason, Reject, Route, Sample
from dtwin_bridge.parse import timestamps


class DataType(IntEnum):
    """Sparkplug B `DataType` values of the scalar types (sparkplug_b.proto)."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14
    UUID = 15
    BYTES = 17


_F = descriptor_pb2.FieldDescriptorProto
_PAYLOAD_FIELDS = (("timestamp", 1, _F.TYPE_UINT64), ("seq", 3, _F.TYPE_UINT64), ("uuid", 4, _F.TYPE_STRING))
_METRIC_FIELDS = (
    ("name", 1, _F.TYPE_STRING),
    ("alias", 2, _F.TYPE_UINT64),
    ("timestamp", 3, _F.TYPE_UINT64),
    ("datatype", 4, _F.TYPE_UINT32),
    ("is_historical", 5, _F.TYPE_BOOL),
    ("is_transient", 6, _F.TYPE_BOOL),
    ("is_null", 7, _F.TYPE_BOOL),
)
_VALUE_FIELDS = (
    ("int_value", 10, _F.TYPE_UINT32),
    ("long_value", 11, _F.TYPE_UINT64),
    ("float_value", 12, _F.TYPE_FLOAT),
    ("double_value", 13, _F.TYPE_DOUBLE),
    ("boolean_value", 14, _F.TYPE_BOOL),
    ("string_value", 15, _F.TYPE_STRING),
    ("bytes_value", 16, _F.TYPE_BYTES),
)


def _build() -> tuple[Any, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="dtwin/sparkplug_b.proto", package="org.eclipse.tahu.protobuf", syntax="proto2"
    )
    payload = fdp.message_type.add(name="Payload")
    for name, number, kind in _PAYLOAD_FIELDS:
        payload.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    payload.field.add(
        name="metrics",
        number=2,
        type=_F.TYPE_MESSAGE,
        label=_F.LABEL_REPEATED,
        type_name=".org.eclipse.tahu.protobuf.Payload.Metric",
    )
    payload.field.add(name="body", number=5, type=_F.TYPE_BYTES, label=_F.LABEL_OPTIONAL)
    metric = payload.nested_type.add(name="Metric")
    for name, number, kind in _METRIC_FIELDS:
        metric.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    metric.oneof_decl.add(name="value")
    for name, number, kind in _VALUE_FIELDS:
        metric.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL, oneof_index=0)
    # A private pool: another library registering the official file in the default pool cannot clash.
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    find = pool.FindMessageTypeByName
    return (
        message_factory.GetMessageClass(find("org.eclipse.tahu.protobuf.Payload")),
        message_factory.GetMessageClass(find("org.eclipse.tahu.protobuf.Payload.Metric")),
    )


Payload, PayloadMetric = _build()
_SIGNED_BITS = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >> (bits - 1) else raw


def _value(metric: Any) -> object:
    """The metric's scalar value as a Python object; None when it carries none."""
    kind = metric.WhichOneof("value")
    if kind is None:
        return None
    raw = getattr(metric, kind)
    bits = _SIGNED_BITS.get(metric.datatype)
    if kind in ("int_value", "long_value") and bits is not None:
        return _signed(raw, bits)
    return raw


def _time(metric: Any, payload: Any, received_at: datetime) -> datetime:
    for holder in (metric, payload):
        if holder.HasField("timestamp"):
            return timestamps.from_epoch(holder.timestamp, 1000)
    return received_at


def _sample(msg: Message, payload: Any, metric: Any, route: Route) -> Sample | Reject:
    if metric.is_null:
        return msg.reject(Reason.MISSING_FIELD, f"metric {route.field!r} is null", route.sensor)
    value = _value(metric)
    if value is None:
        return msg.reject(Reason.MISSING_FIELD, f"metric {route.field!r} has no scalar value", route.sensor)
    try:
        ts = _time(metric, payload, msg.received_at)
    except ValueError as err:
        return msg.reject(Reason.BAD_TIMESTAMP, str(err)[:200], route.sensor)
    return Sample(route, ts, value)


def parse(msg: Message, routes: tuple[Route, ...]) -> list[Sample | Reject]:
    """A sample or reject per bound metric; a single reject for an undecodable or unbound payload."""
    try:
        payload = Payload.FromString(msg.payload)
    except DecodeError as err:
        return [msg.reject(Reason.MALFORMED_SPARKPLUG, f"not a Sparkplug B payload: {str(err)[:200]}")]
    by_field = {r.field: r for r in routes}
    out: list[Sample | Reject] = []
    for metric in payload.metrics:
        route = by_field.get(_name(metric) or "")
        if route is not None:
            out.append(_sample(msg, payload, metric, route))
    if not out:
        return [msg.reject(Reason.UNKNOWN_FIELD, _unbound(payload))]
    return out


def _name(metric: Any) -> str | None:
    # upb hands a proto2 string that is not valid UTF-8 back as bytes; such a name cannot match a route.
    name = metric.name if metric.HasField("name") else None
    return name if isinstance(name, str) else None


def _unbound(payload: Any) -> str:
    if not payload.metrics:
        return "the payload carries no metrics"
    names = sorted({_name(m) or f"alias {m.alias} (name {m.name!r})" for m in payload.metrics})
    return f"no metric names a bound sensor; metrics: {', '.join(names)[:300]}"


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric to encode; `datatype` defaults from the value's Python type (int -> Int64, float -> Double)."""

    name: str | None
    value: int | float | bool | str | bytes | None
    datatype: DataType | None = None
    timestamp_ms: int | None = None
    alias: int | None = None


_FIELD_OF = {
    DataType.INT8: "int_value",
    DataType.INT16: "int_value",
    DataType.INT32: "int_value",
    DataType.UINT8: "int_value",
    DataType.UINT16: "int_value",
    DataType.UINT32: "int_value",
    DataType.INT64: "long_value",
    DataType.UINT64: "long_value",
    DataType.DATETIME: "long_value",
    DataType.FLOAT: "float_value",
    DataType.DOUBLE: "double_value",
    DataType.BOOLEAN: "boolean_value",
    DataType.STRING: "string_value",
    DataType.TEXT: "string_value",
    DataType.UUID: "string_value",
    DataType.BYTES: "bytes_value",
}


def _datatype(value: object) -> DataType:
    for kind, dt in ((bool, DataType.BOOLEAN), (int, DataType.INT64), (float, DataType.DOUBLE)):
        if isinstance(value, kind):
            return dt
    return DataType.BYTES if isinstance(value, bytes) else DataType.STRING


def _fill(out: Any, m: Metric) -> None:
    for attr in ("name", "alias"):
        if getattr(m, attr) is not None:
            setattr(out, attr, getattr(m, attr))
    if m.timestamp_ms is not None:
        out.timestamp = m.timestamp_ms
    if m.value is None:
        out.is_null = True
        if m.datatype is not None:
            out.datatype = m.datatype
        return
    dt = m.datatype or _datatype(m.value)
    out.datatype = dt
    field = _FIELD_OF[dt]
    value = m.value
    if field in ("int_value", "long_value"):
        value = int(value) & ((1 << (32 if field == "int_value" else 64)) - 1)  # two's complement on the wire
    setattr(out, field, value)


def encode(metrics: Iterable[Metric], *, timestamp_ms: int | None = None, seq: int | None = None) -> bytes:
    """A serialized Sparkplug B Payload, as an edge node would publish it."""
    payload = Payload()
    if timestamp_ms is not None:
        payload.timestamp = timestamp_ms
    if seq is not None:
        payload.seq = seq
    for m in metrics:
        _fill(payload.metrics.add(), m)
    return bytes(payload.SerializeToString())
