"""SenML packs (RFC 8428, JSON): an array of records whose base fields carry forward to later records.

Each record is resolved as the RFC says: name = `bn` + `n`, time = `bt` + `t` (below 2**28 it is relative to
the arrival time, else epoch seconds), value = `bv` + `v` (or `vb`; `s` + `bs` when a record has only a sum),
unit = `u`, else `bu`. A record is bound to the route whose `field` equals its resolved name, or, failing
that, its own `n` (a device often prefixes `bn` with its URN, which a binding on its own topic need not
repeat). A pack may carry many records of one sensor at different times (a buffered series).

Decisions: a record whose name matches no route is ignored, because devices report more than is bound and a
dead-letter row per unbound record would drown the real faults; but when no record of a message matches
any route, one `unknown_field` reject keeps the message (a wrong `field` or a wrong device). A unit in the
record is translated from SenML's names (`Cel`, `%RH`, `l/s`, `1/min`, ...) or taken as a binding unit name
(`degF`, `kPa`); the validator converts it when it measures the binding's quantity and refuses it as
`unit_mismatch` otherwise. Structural faults (wrong field types, several values in one record, a version
above 10, an unknown must-understand field ending in `_`) make the whole pack `malformed_senml`, as the RFC
asks a receiver to refuse a pack it cannot fully understand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from dtwin_bridge.model import Message, Reason, Reject, Route, Sample
from dtwin_bridge.parse import timestamps

RELATIVE_LIMIT = 2**28  # RFC 8428 §4.5.3: smaller times are relative to "now"
SENML_VERSION = 10
# SenML unit names (RFC 8428 §12.1, RFC 8798) that mean exactly one SensorBinding unit.
SENML_UNITS = {
    "Cel": "degC",
    "%": "percent",
    "%RH": "percentRH",
    "l/s": "L/s",
    "1/min": "rpm",
    "Pa": "Pa",
    "K": "K",
    "W": "W",
    "kW": "kW",
    "Wh": "Wh",
    "kWh": "kWh",
    "A": "A",
    "V": "V",
    "Hz": "Hz",
    "m/s": "m/s",
    "ppm": "ppm",
    "count": "count",
}
_STRINGS = ("bn", "bu", "n", "u", "vs", "vd")
_NUMBERS = ("bt", "bv", "bs", "t", "v", "s", "ut")
_VALUES = ("v", "vs", "vb", "vd")


class _MalformedError(Exception):
    """Internal: the pack breaks RFC 8428; the message says where."""


@dataclass(frozen=True, slots=True)
class _Base:
    """Base fields in force at a record: set by a record, they carry forward until another sets them."""

    name: str = ""
    time: float | None = None
    unit: str | None = None
    value: float | None = None
    sum: float | None = None


def _check(i: int, rec: object) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise _MalformedError(f"record {i} is a {type(rec).__name__}, not an object")
    for key, value in rec.items():
        if key.endswith("_"):
            raise _MalformedError(f"record {i}: must-understand field {key!r} is not supported")
        if key in _STRINGS and not isinstance(value, str):
            raise _MalformedError(f"record {i}: {key} must be a string")
        if key in _NUMBERS and not timestamps.is_number(value):
            raise _MalformedError(f"record {i}: {key} must be a number")
    if "vb" in rec and not isinstance(rec["vb"], bool):
        raise _MalformedError(f"record {i}: vb must be true or false")
    bver = rec.get("bver", SENML_VERSION)
    if not isinstance(bver, int) or isinstance(bver, bool) or bver > SENML_VERSION:
        raise _MalformedError(f"record {i}: version {bver!r} is not understood (this bridge reads {SENML_VERSION})")
    if sum(k in rec for k in _VALUES) > 1:
        raise _MalformedError(f"record {i} has more than one of v, vs, vb, vd")
    return rec


def _carry(base: _Base, rec: dict[str, Any]) -> _Base:
    changes = {
        attr: rec[key]
        for key, attr in (("bn", "name"), ("bt", "time"), ("bu", "unit"), ("bv", "value"), ("bs", "sum"))
        if key in rec
    }
    return replace(base, **changes) if changes else base


def _plus(base: float | None, own: float | None) -> float | None:
    # Only add when both are there, so an unbased value reaches the reading bit for bit.
    if base is None:
        return own
    return base if own is None else base + own


def _value(base: _Base, rec: dict[str, Any]) -> object:
    if "v" in rec:
        return _plus(base.value, rec["v"])
    for key in ("vb", "vs", "vd"):
        if key in rec:
            return rec[key]
    return _plus(base.sum, rec["s"]) if "s" in rec else None


def _sample(msg: Message, base: _Base, rec: dict[str, Any], route: Route) -> Sample | Reject:
    value = _value(base, rec)
    if value is None:
        return msg.reject(Reason.MISSING_FIELD, f"record {route.field!r} has no value or sum", route.sensor)
    when = _plus(base.time, rec.get("t"))
    when = 0 if when is None else when
    try:
        ts = timestamps.after(msg.received_at, when) if when < RELATIVE_LIMIT else timestamps.from_epoch(when)
    except ValueError as err:
        return msg.reject(Reason.BAD_TIMESTAMP, str(err)[:200], route.sensor)
    unit = rec.get("u", base.unit)
    return Sample(route, ts, value, None if unit is None else SENML_UNITS.get(unit, unit))


def _resolve(payload: bytes) -> list[tuple[_Base, dict[str, Any], str]]:
    """Each record with the base fields in force at it and its resolved name; raises _MalformedError."""
    try:
        pack = json.loads(payload)
    except (ValueError, RecursionError) as err:
        raise _MalformedError(f"not JSON: {type(err).__name__}: {str(err)[:200]}") from None
    if not isinstance(pack, list):
        raise _MalformedError(f"a SenML pack is a JSON array, not a {type(pack).__name__}")
    if not pack:
        raise _MalformedError("the pack has no records")
    base, resolved = _Base(), []
    for i, item in enumerate(pack):
        rec = _check(i, item)
        base = _carry(base, rec)
        name = base.name + rec.get("n", "")
        if not name:
            raise _MalformedError(f"record {i} has no name (neither bn nor n)")
        resolved.append((base, rec, name))
    return resolved


def parse(msg: Message, routes: tuple[Route, ...]) -> list[Sample | Reject]:
    """A sample or reject per bound record; a single reject for a malformed pack or one that binds nothing."""
    try:
        records = _resolve(msg.payload)
    except _MalformedError as err:
        return [msg.reject(Reason.MALFORMED_SENML, str(err))]
    by_field = {r.field: r for r in routes}
    out: list[Sample | Reject] = []
    for base, rec, name in records:
        route = by_field.get(name) or (by_field.get(rec.get("n", "")) if base.name else None)
        if route is not None:
            out.append(_sample(msg, base, rec, route))
    if not out:
        names = ", ".join(sorted({name for _, _, name in records}))[:300]
        return [msg.reject(Reason.UNKNOWN_FIELD, f"no record names a bound sensor; names: {names}")]
    return out
