"""Simulated time as the CLI, the fault files and the payloads spell it: durations, start times, ISO stamps.

Every instant inside the simulator is an integer of epoch milliseconds, so schedules add up exactly and a
stream is byte-identical however long it runs (floats would drift after ~10^5 additions). Durations read
`90s`, `15m`, `1h30m`, `3d`, `1w` or a bare number of seconds; a start time is an ISO 8601 instant with an
offset, `now`, or `now` minus a duration (`-2d`, the form a replay that must end at the present uses).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration_ms(text: str | int | float) -> int:
    """Milliseconds in `text` (`1h30m`, `3d`, `45s`, `250ms`, or a number of seconds); raises ValueError."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return _non_negative(round(float(text) * 1000), str(text))
    spec = str(text).strip().lower().replace(" ", "")
    try:
        return _non_negative(round(float(spec) * 1000), spec)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(spec):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS_MS[match.group(2)]
        pos = match.end()
    if pos != len(spec) or not spec:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 15m, 1h30m, 3d or 1w")
    return _non_negative(round(total), spec)


def _non_negative(ms: int, text: str) -> int:
    if ms < 0:
        raise ValueError(f"duration {text!r} is negative")
    return ms


def parse_instant_ms(text: str, now_ms: int) -> int:
    """An instant: ISO 8601 with a UTC offset, `now`, or `-<duration>` before now; raises ValueError."""
    spec = text.strip()
    if spec == "now":
        return now_ms
    if spec.startswith("-"):
        return now_ms - parse_duration_ms(spec[1:])
    try:
        parsed = datetime.fromisoformat(spec)
    except ValueError:
        raise ValueError(f"{text!r} is not an instant; write e.g. 2026-01-05T00:00:00Z, now or -2d") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; write e.g. 2026-01-05T00:00:00Z")
    return round(parsed.timestamp() * 1000)


def iso(ms: int) -> str:
    """`ms` as an ISO 8601 UTC stamp with millisecond precision, e.g. 2026-01-05T08:00:00.000Z."""
    whole, frac = divmod(ms, 1000)
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:03d}Z"
