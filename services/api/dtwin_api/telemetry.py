"""Pure rules of telemetry queries: which bucket a time range gets, and the limits a query must respect.

`auto` picks the finest source that keeps one sensor's series to a few thousand points: raw readings up
to 2 hours, 1-minute rollups up to 2 days, 1-hour rollups up to 90 days, daily rollups beyond.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

Bucket = Literal["auto", "raw", "1m", "1h", "1d"]

_AUTO: tuple[tuple[timedelta, Bucket], ...] = (
    (timedelta(hours=2), "raw"),
    (timedelta(days=2), "1m"),
    (timedelta(days=90), "1h"),
)


def choose_bucket(start: datetime, end: datetime, asked: Bucket) -> Bucket:
    if asked != "auto":
        return asked
    span = end - start
    return next((bucket for limit, bucket in _AUTO if span <= limit), "1d")


def check_range(start: datetime, end: datetime) -> str | None:
    """Why the range is unusable, or None."""
    if start.tzinfo is None or end.tzinfo is None:
        return "from and to must carry a time zone (e.g. 2026-01-01T00:00:00Z)"
    if end <= start:
        return "to must be after from"
    return None
