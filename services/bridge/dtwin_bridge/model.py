"""The bridge's pure data: the routing table it loads, what a payload yields, and why a value is refused.

A `RoutingTable` is parsed from the operator's `routing.json` (see `dtwin_operator.render.routing.table`); every
MQTT message then becomes a list of `Reading` (one value of one sensor, in its quantity's canonical unit) and
`Reject` (a value or a whole payload refused, with a `Reason` from a closed set, bound for the dead-letter
table). `Sample` is the step in between: a value a format parser found for a route, not yet validated. All of
them are frozen, so they can be shared between the parser, the batcher and the writer without copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

FORMATS = ("json", "senml", "sparkplugb")


class Reason(StrEnum):
    """Why a payload or a value went to the dead-letter table; also the `reason` label of the reject metric."""

    UNKNOWN_TOPIC = "unknown_topic"  # no route on the message's topic
    PAYLOAD_TOO_LARGE = "payload_too_large"
    MALFORMED_JSON = "malformed_json"  # not UTF-8 JSON, or not an object
    MALFORMED_SENML = "malformed_senml"  # not a SenML pack, or a record that breaks RFC 8428
    MALFORMED_SPARKPLUG = "malformed_sparkplug"  # not a Sparkplug B Payload protobuf
    MISSING_FIELD = "missing_field"  # a route's value is absent (or null) where the format requires it
    UNKNOWN_FIELD = "unknown_field"  # a SenML/Sparkplug message whose names match no route at all
    NOT_A_NUMBER = "not_a_number"  # a string, object, list, or a bool for a non-bool unit
    NON_FINITE = "non_finite"  # NaN or ±Infinity, before or after unit conversion
    OUT_OF_RANGE = "out_of_range"  # outside the binding's validRange (or not 0/1 for a bool)
    UNIT_MISMATCH = "unit_mismatch"  # a SenML unit that is not convertible to the binding's unit
    BAD_TIMESTAMP = "bad_timestamp"  # unparseable, without a UTC offset, or out of datetime's range
    TIMESTAMP_SKEW = "timestamp_skew"  # further in the future than Limits.max_skew
    TIMESTAMP_TOO_OLD = "timestamp_too_old"  # older than Limits.max_age
    DUPLICATE_IN_MESSAGE = "duplicate_in_message"  # a second value for the same (sensor, ts) in one message
    PARSER_ERROR = "parser_error"  # a bug in the bridge, not in the payload: kept for replay after the fix


@dataclass(frozen=True, slots=True)
class Reading:
    """One accepted value: `ts` is tz-aware UTC, `value` is in the canonical unit of the sensor's quantity."""

    sensor: str
    ts: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Reject:
    """A refused payload (`sensor` None) or value (`sensor` set), kept whole (an oversized one cut at the limit)
    so it can be replayed after a fix."""

    reason: Reason
    detail: str
    topic: str
    payload: bytes = field(repr=False)
    sensor: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT message as the parsers see it; `received_at` (tz-aware UTC) stands in for a missing timestamp."""

    topic: str
    payload: bytes = field(repr=False)
    received_at: datetime

    def reject(self, reason: Reason, detail: str, sensor: str | None = None) -> Reject:
        return Reject(reason, detail, self.topic, self.payload, sensor)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Alert thresholds in the binding's unit; the rules engine reads them, the parser does not."""

    warning_high: float | None = None
    critical_high: float | None = None
    warning_low: float | None = None
    critical_low: float | None = None
    for_seconds: int = 0
    hysteresis: float = 0.0

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Thresholds:
        def opt(key: str) -> float | None:
            return None if d.get(key) is None else float(d[key])

        return cls(
            opt("warningHigh"),
            opt("criticalHigh"),
            opt("warningLow"),
            opt("criticalLow"),
            int(d.get("forSeconds", 0)),
            float(d.get("hysteresis", 0)),
        )


@dataclass(frozen=True, slots=True)
class Route:
    """One SensorBinding as the bridge sees it (one entry of routing.json's `routes`)."""

    sensor: str
    asset: str
    metric: str
    topic: str
    format: str
    field: str
    unit: str
    valid_range: tuple[float, float] | None = None
    thresholds: Thresholds = Thresholds()
    expected_interval_s: int = 60

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Route:
        """Raises KeyError/ValueError on a malformed entry: a bad table is refused whole, never half-loaded."""
        if d["format"] not in FORMATS:
            raise ValueError(f"route {d['sensor']}: unknown payload format {d['format']!r}")
        vr = d.get("validRange")
        return cls(
            sensor=str(d["sensor"]),
            asset=str(d["asset"]),
            metric=str(d["metric"]),
            topic=str(d["topic"]),
            format=str(d["format"]),
            field=str(d.get("field") or d["metric"]),
            unit=str(d["unit"]),
            valid_range=None if vr is None else (float(vr["min"]), float(vr["max"])),
            thresholds=Thresholds.from_dict(d.get("thresholds") or {}),
            expected_interval_s=int(d.get("expectedIntervalSeconds", 60)),
        )


@dataclass(frozen=True, slots=True)
class Sample:
    """A value a parser found for `route`, before validation; `unit` is set when the payload names its own."""

    route: Route
    ts: datetime
    value: object
    unit: str | None = None


@dataclass(frozen=True)
class RoutingTable:
    """All routes of one site, indexed by topic (every message needs that lookup, so it is a dict hit)."""

    routes: tuple[Route, ...]
    site: str = ""
    version: int = 1
    _by_topic: Mapping[str, tuple[Route, ...]] = field(init=False, repr=False, compare=False)
    _groups: Mapping[str, tuple[tuple[str, tuple[Route, ...]], ...]] = field(init=False, repr=False, compare=False)
    _by_sensor: Mapping[str, Route] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, list[Route]] = {}
        for r in self.routes:
            # The operator already leaves conflicting bindings out; a hand-made table must not smuggle one in.
            if any(o.field == r.field for o in index.get(r.topic, ())):
                raise ValueError(f"route {r.sensor}: another route already reads {r.field!r} on {r.topic}")
            index.setdefault(r.topic, []).append(r)
        object.__setattr__(self, "_by_topic", MappingProxyType({t: tuple(rs) for t, rs in index.items()}))
        groups = {
            t: tuple((f, g) for f in FORMATS if (g := tuple(r for r in rs if r.format == f))) for t, rs in index.items()
        }
        object.__setattr__(self, "_groups", MappingProxyType(groups))
        object.__setattr__(self, "_by_sensor", MappingProxyType({r.sensor: r for r in self.routes}))

    def on_topic(self, topic: str) -> tuple[Route, ...]:
        return self._by_topic.get(topic, ())

    @property
    def by_sensor(self) -> Mapping[str, Route]:
        return self._by_sensor

    def by_format(self, topic: str) -> tuple[tuple[str, tuple[Route, ...]], ...]:
        """The topic's routes grouped by payload format, in `FORMATS` order (computed once, at load)."""
        return self._groups.get(topic, ())

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._by_topic)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> RoutingTable:
        """Parse routing.json; raises ValueError on a version this bridge does not understand."""
        version = int(table.get("version", 1))
        if version != 1:
            raise ValueError(f"routing table version {version} is not supported (this bridge reads version 1)")
        routes = tuple(Route.from_dict(r) for r in table.get("routes", ()))
        return cls(routes=routes, site=str(table.get("site", "")), version=version)
