"""Parse one MQTT message into readings and rejects: the pure entry point of the bridge's ingest path.

`parse()` refuses oversized payloads before anything else, looks the topic up in the routing table, hands
the payload to the parser of each format bound on the topic (JSON, SenML, Sparkplug B), validates every
sample, and refuses a second value for the same (sensor, ts) within the message (the first valid one is
kept). It returns at least one item per message, so every message is accounted for by the batcher, and it
never raises on bad input: a parser bug is caught here and becomes a `parser_error` reject that keeps the
payload, because a payload that crashed the bridge would be redelivered and crash it again, forever.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from dtwin_bridge.model import Message, Reading, Reason, Reject, Route, RoutingTable, Sample
from dtwin_bridge.parse import json_payload, senml, sparkplug
from dtwin_bridge.validate import Limits, validate

__all__ = ["PARSERS", "Limits", "parse"]

Parser = Callable[[Message, tuple[Route, ...]], list[Sample | Reject]]
PARSERS: dict[str, Parser] = {"json": json_payload.parse, "senml": senml.parse, "sparkplugb": sparkplug.parse}
DEFAULT_LIMITS = Limits()


def _extract(msg: Message, groups: tuple[tuple[str, tuple[Route, ...]], ...], limits: Limits) -> list[Reading | Reject]:
    found: list[Reading | Reject] = []
    for fmt, group in groups:
        try:
            # Built whole before it is kept, so a bug halfway through leaves no half of the message behind.
            items = [validate(s, msg, limits) if isinstance(s, Sample) else s for s in PARSERS[fmt](msg, group)]
        except Exception as err:  # a bug, not bad input: keep the message and say where to look
            items = [msg.reject(Reason.PARSER_ERROR, f"{fmt} parser raised {type(err).__name__}: {err}"[:300])]
        found.extend(items)
    return found


def _first_per_key(msg: Message, items: list[Reading | Reject]) -> list[Reading | Reject]:
    if len(items) < 2:
        return items
    try:  # the common case in one C-speed pass: all readings, all keys distinct (a Reject has no `ts`)
        if len({(i.sensor, i.ts) for i in items}) == len(items):  # type: ignore[union-attr]
            return items
    except AttributeError:
        pass
    seen: set[tuple[str, datetime]] = set()
    out: list[Reading | Reject] = []
    for item in items:
        if isinstance(item, Reading):
            key = (item.sensor, item.ts)
            if key in seen:
                detail = f"another value at {item.ts.isoformat()} came first in this message; this one: {item.value}"
                out.append(msg.reject(Reason.DUPLICATE_IN_MESSAGE, detail, item.sensor))
                continue
            seen.add(key)
        out.append(item)
    return out


def parse(
    topic: str,
    payload: bytes,
    routes: RoutingTable,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Reading | Reject]:
    """Readings (canonical units, UTC) and rejects of one message; `received_at` must be tz-aware."""
    if received_at.tzinfo is not UTC:  # the bridge passes UTC: skip the conversion on the hot path
        if received_at.utcoffset() is None:
            raise ValueError("received_at must be timezone-aware")  # a caller bug, not bad input
        received_at = received_at.astimezone(UTC)
    msg = Message(topic, bytes(payload), received_at)
    if len(msg.payload) > limits.max_payload_bytes:
        # Only the first max_payload_bytes go to the dead-letter row: enough to tell what it was, and the limit
        # exists to keep such payloads out of memory and the database.
        detail = f"{len(msg.payload)} bytes, limit {limits.max_payload_bytes}; the payload kept here is cut there"
        return [Reject(Reason.PAYLOAD_TOO_LARGE, detail, topic, msg.payload[: limits.max_payload_bytes])]
    groups = routes.by_format(topic)
    if not groups:
        return [msg.reject(Reason.UNKNOWN_TOPIC, "no SensorBinding routes this topic")]
    return _first_per_key(msg, _extract(msg, groups, limits))
