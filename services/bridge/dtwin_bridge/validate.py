"""Per-route checks that turn a parsed `Sample` into a `Reading` in canonical units, or a `Reject` saying why not.

The order is fixed so a value with several faults always gets the same reason: the value must be a finite
number (a JSON/SenML/Sparkplug boolean only for a `bool` binding, as 0/1), a unit the payload names itself must
be convertible to the binding's, the value must lie within the binding's validRange (checked in the binding's
own unit, as the person who wrote the YAML reads it), the timestamp must be neither too far in the future nor
too old relative to when the message arrived, and the canonical value must still be finite after conversion.
No clock is read here: `received_at` comes with the message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from dtwin_bridge.model import Message, Reading, Reason, Reject, Sample
from dtwin_core import units


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what the bridge accepts; the defaults suit devices with NTP and a day or so of buffering."""

    max_payload_bytes: int = 64 * 1024
    max_skew: timedelta = timedelta(minutes=5)  # how far ahead of the bridge a device clock may run
    max_age: timedelta = timedelta(days=7)  # older data is a replay the retention window may already have dropped


class _RefusedError(Exception):
    """Internal: one check failed; carries the reason and a detail for the dead-letter row."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _number(value: object, unit: str) -> float:
    # bool is a subclass of int, so it must be told apart first.
    if isinstance(value, bool):
        if unit == "bool":
            return float(value)
        raise _RefusedError(Reason.NOT_A_NUMBER, f"boolean {str(value).lower()} for a binding in {unit}")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise _RefusedError(Reason.NON_FINITE, "integer too large for a float") from None
    if isinstance(value, float):
        return value
    raise _RefusedError(Reason.NOT_A_NUMBER, f"{_kind(value)} {repr(value)[:60]}")


def _kind(value: object) -> str:
    """The payload's own name for a value's type (a JSON object is a dict subclass here)."""
    for kind, name in ((str, "string"), (dict, "object"), (list, "array"), (bytes, "bytes")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _finite(value: float, what: str | Callable[[], str]) -> float:
    """`what` names the value in the dead-letter detail; a callable when naming it costs (float formatting)."""
    if not math.isfinite(value):
        raise _RefusedError(Reason.NON_FINITE, f"{what if isinstance(what, str) else what()} is {value}")
    return value


def _in_binding_unit(value: float, sent: str | None, unit: str) -> float:
    """The value in the binding's unit, when the payload named another unit of the same quantity."""
    if sent is None or sent == unit:
        return value
    if sent not in units.UNITS or not units.convertible(sent, unit):
        raise _RefusedError(Reason.UNIT_MISMATCH, f"payload unit {sent!r} cannot be converted to {unit}")
    return _finite(units.from_canonical(units.to_canonical(value, sent), unit), lambda: f"{value} {sent} in {unit}")


def _in_range(value: float, sample: Sample) -> None:
    route = sample.route
    if route.unit == "bool" and value not in (0.0, 1.0):
        raise _RefusedError(Reason.OUT_OF_RANGE, f"{value} is not a boolean (0 or 1)")
    if route.valid_range is not None:
        lo, hi = route.valid_range
        if not lo <= value <= hi:
            raise _RefusedError(Reason.OUT_OF_RANGE, f"{value} {route.unit} outside validRange [{lo}, {hi}]")


def _in_time(sample: Sample, msg: Message, limits: Limits) -> None:
    ahead = sample.ts - msg.received_at
    if ahead > limits.max_skew:
        raise _RefusedError(Reason.TIMESTAMP_SKEW, f"{sample.ts.isoformat()} is {ahead} ahead of arrival")
    if -ahead > limits.max_age:
        raise _RefusedError(Reason.TIMESTAMP_TOO_OLD, f"{sample.ts.isoformat()} is {-ahead} older than arrival")


def validate(sample: Sample, msg: Message, limits: Limits) -> Reading | Reject:
    """One sample checked and converted; never raises on bad data."""
    # Fast path for the common case (a float or int in the binding's unit, in range, on time): the same checks
    # as below in one frame; anything unusual falls through to `_checked`, which names the first fault.
    route, value = sample.route, sample.value
    kind = type(value)
    if (kind is float or kind is int) and (sample.unit is None or sample.unit == route.unit) and route.unit != "bool":
        try:
            v = float(value)  # type: ignore[arg-type]
        except OverflowError:
            return _checked(sample, msg, limits)
        vr = route.valid_range
        ahead = sample.ts - msg.received_at
        if (
            math.isfinite(v)
            and (vr is None or vr[0] <= v <= vr[1])
            and ahead <= limits.max_skew
            and -ahead <= limits.max_age
        ):
            stored = units.to_canonical(v, route.unit)
            if math.isfinite(stored):
                return Reading(route.sensor, sample.ts, stored)
    return _checked(sample, msg, limits)


def _checked(sample: Sample, msg: Message, limits: Limits) -> Reading | Reject:
    route = sample.route
    try:
        value = _finite(_number(sample.value, route.unit), "value")
        value = _in_binding_unit(value, sample.unit, route.unit)
        _in_range(value, sample)
        _in_time(sample, msg, limits)
        stored = _finite(units.to_canonical(value, route.unit), lambda: f"{value} {route.unit} in canonical unit")
    except _RefusedError as refused:
        return msg.reject(refused.reason, refused.detail, route.sensor)
    return Reading(route.sensor, sample.ts, stored)
