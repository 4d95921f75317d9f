"""Timestamps as devices send them — ISO 8601 strings, epoch seconds or milliseconds — turned into UTC datetimes.

Shared by the JSON and SenML parsers. Every function raises ValueError on a value it cannot turn into a UTC
datetime (OverflowError included, re-raised as ValueError), so a caller maps one exception to `bad_timestamp`.
Float epochs are split into whole and fractional parts before scaling, so a timestamp sent with microsecond
digits comes back with exactly those microseconds (a float near 1.7e9 resolves 0.24 µs).
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch numbers at or above this are milliseconds: 1e11 s is the year 5138, 1e11 ms is March 1973.
MS_THRESHOLD = 1e11


def is_number(value: object) -> bool:
    """A JSON number: int or float, but not bool (which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _delta(value: float, micros_per_unit: int) -> timedelta:
    if isinstance(value, int):
        return timedelta(microseconds=value * micros_per_unit)
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a time")
    whole = math.floor(value)
    return timedelta(microseconds=whole * micros_per_unit + round((value - whole) * micros_per_unit))


@functools.lru_cache(maxsize=4096)  # a pack's readings share their time; datetimes are immutable
def from_epoch(value: float, micros_per_unit: int = 1_000_000) -> datetime:
    """`value` seconds (or other units of `micros_per_unit` µs, e.g. 1000 for ms) after the Unix epoch."""
    try:
        return EPOCH + _delta(value, micros_per_unit)
    except OverflowError:
        raise ValueError(f"{value} is outside the representable time range") from None


def from_json_number(value: float) -> datetime:
    """An epoch number of unknown unit: seconds, or milliseconds when it is too large to be seconds."""
    return from_epoch(value, 1000 if abs(value) >= MS_THRESHOLD else 1_000_000)


def from_iso(text: str) -> datetime:
    """An ISO 8601 string with a UTC offset ('Z' or ±hh:mm); a local time without one is ambiguous, so refused."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the representable time range") from None


def from_json_value(value: object) -> datetime:
    """A JSON timestamp value: an ISO 8601 string or an epoch number."""
    if isinstance(value, str):
        return from_iso(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_json_number(value)
    raise ValueError(f"a timestamp must be a string or a number, not {type(value).__name__}")


def after(base: datetime, seconds: float) -> datetime:
    """`base` plus a possibly fractional, possibly negative number of seconds (SenML relative time)."""
    try:
        return base + _delta(seconds, 1_000_000)
    except OverflowError:
        raise ValueError(f"{seconds} s from {base.isoformat()} is outside the representable time range") from None
