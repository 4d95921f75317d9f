"""Plain JSON telemetry: one object per message, each bound field a number at a key or a dotted path.

This is the shape of the demo campus (`{"supply": {"temp": 12.9}, "fan": {"speed": 61}}` on
`sites/hq/ahu-1/telemetry`, each field a different sensor) and of the seed's `assets/telemetry/<asset>`
(`{"asset_id": "hvac_unit_1", "timestamp": "2025-07-13T10:00:00Z", "temperature": 21.5}`). A route's `field`
is looked up as a literal key first, then as a dotted path into nested objects. The message's time is the
first of `timestamp`, `ts`, `time` present at top level (ISO 8601 with offset, or epoch s/ms), else the
arrival time. Keys not bound to any route (like `asset_id`) are ignored. A bound field that is absent is a
`missing_field` reject for its sensor: a JSON device sends its whole object every time, so absence means
the binding's `field` or the device is wrong, and the dead-letter row names the sensor to fix. A value behind
a key that occurs twice in one object is refused (`duplicate_in_message`): JSON parsers disagree on which
one wins, so any pick could store the wrong value. The non-standard tokens NaN and Infinity are read (and
then refused as `non_finite`, which says more than `malformed_json`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dtwin_bridge.model import Message, Reason, Reject, Route, Sample
from dtwin_bridge.parse import timestamps

TIME_KEYS = ("timestamp", "ts", "time")


class _Object(dict[str, Any]):
    """A JSON object that remembers which keys it saw more than once (the first value is kept)."""

    duplicates: frozenset[str] = frozenset()


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)  # C speed; but a repeated key keeps its last value here
    if len(obj) == len(pairs):
        return obj
    obj = _Object()
    dups: set[str] = set()
    for key, value in pairs:
        if key in obj:
            dups.add(key)
        else:
            obj[key] = value
    obj.duplicates = frozenset(dups)
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_object)


def load(payload: bytes) -> Any:
    """The decoded JSON document; raises ValueError (RecursionError for absurd nesting) when it is not JSON.

    JSON on the wire is UTF-8 (RFC 8259, 8.1); other bytes are a UnicodeDecodeError, which is a ValueError."""
    return _DECODER.decode(payload.decode())


class _AbsentError(Exception):
    """Internal: the route's path does not resolve to one value; carries the reject reason and detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _resolve(doc: _Object, path: str) -> Any:
    # JSON parsers disagree on which of two equal keys wins, so a value behind one is refused, not guessed.
    if path in doc:
        if path in doc.duplicates:
            raise _AbsentError(Reason.DUPLICATE_IN_MESSAGE, f"key {path!r} appears more than once")
        return doc[path]
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, _Object) or part not in node:
            raise _AbsentError(Reason.MISSING_FIELD, f"no {path!r} in the object")
        if part in node.duplicates:
            raise _AbsentError(Reason.DUPLICATE_IN_MESSAGE, f"key {part!r} appears more than once")
        node = node[part]
    return node


def message_time(doc: _Object, received_at: datetime) -> datetime:
    """The message's own timestamp, or the arrival time when it has none; raises ValueError when unusable."""
    for key in TIME_KEYS:
        if key in doc:
            if key in doc.duplicates:
                raise ValueError(f"key {key!r} appears more than once")
            return timestamps.from_json_value(doc[key])
    return received_at


def _sample(msg: Message, doc: _Object, route: Route, ts: datetime | str) -> Sample | Reject:
    try:
        value = _resolve(doc, route.field)
    except _AbsentError as absent:
        return msg.reject(absent.reason, absent.detail, route.sensor)
    if value is None:
        return msg.reject(Reason.MISSING_FIELD, f"{route.field!r} is null", route.sensor)
    if isinstance(ts, str):
        return msg.reject(Reason.BAD_TIMESTAMP, ts, route.sensor)
    return Sample(route, ts, value)


def parse(msg: Message, routes: tuple[Route, ...]) -> list[Sample | Reject]:
    """One sample or reject per route; a single reject when the payload is not a JSON object."""
    try:
        doc = load(msg.payload)
    except (ValueError, RecursionError) as err:
        return [msg.reject(Reason.MALFORMED_JSON, f"{type(err).__name__}: {str(err)[:200]}")]
    if not isinstance(doc, _Object):
        return [msg.reject(Reason.MALFORMED_JSON, f"expected a JSON object, got {type(doc).__name__}")]
    ts: datetime | str
    try:
        ts = message_time(doc, msg.received_at)
    except ValueError as err:
        ts = f"timestamp: {str(err)[:200]}"
    return [_sample(msg, doc, route, ts) for route in routes]
