"""The ingest benchmark's arithmetic and text: rates, ratios, loss, CPU shares, the table and the RESULT line.

Pure functions over plain numbers and dicts, so the figures a reader sees are unit-tested. A case's rate is
rows committed divided by the time from the first publish to the last commit (for the COPY ceiling: from the
first write to the last commit); ratios compare readings (rows) per second, which for single-reading cases
equals messages per second. `lost` is what the broker acknowledged to the publisher but the database lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

REQUIRED = ("single_msg_s", "packed_readings_s", "naive_msg_s", "batched_msg_s", "copy_ceiling_rows_s", "lost")
CPU_ROLES = ("bridge", "publisher", "mosquitto", "postgres", "other")


def rate(count: float, t_start: float, t_end: float) -> float:
    """count / (t_end - t_start); 0 when the interval is empty or negative (nothing was measured)."""
    span = t_end - t_start
    return count / span if span > 0 else 0.0


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def lost(expected: int, stored: int) -> int:
    """Acknowledged readings missing from the database (never negative: a surplus is reported separately)."""
    return max(0, expected - stored)


def utilisation(cpu_s: Mapping[str, float], wall_s: float) -> dict[str, float]:
    """CPU seconds per role over a window -> cores used (1.0 = one core busy the whole window)."""
    return {k: (v / wall_s if wall_s > 0 else 0.0) for k, v in cpu_s.items()}


def other_cpu(box_busy_s: float, ours: Mapping[str, float]) -> float:
    """Busy CPU on the box not accounted to any of our processes (other work on a shared VM, kernel threads)."""
    return max(0.0, box_busy_s - sum(ours.values()))


@dataclass
class Row:
    """One line of the table."""

    case: str
    messages: int | None
    readings: int
    msg_s: float | None
    readings_s: float
    lost: int | None = None
    cores: dict[str, float] = field(default_factory=dict)


def _num(x: float | int | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _ratio_text(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table(rows: Sequence[Row], ceiling: float | None, naive: float | None, batched: float | None) -> str:
    """Aligned text table; ratios are readings/s over (a) the COPY ceiling and (b) the anchors' rates."""
    head = ["case", "messages", "readings", "msg/s", "readings/s", "/COPY", "/naive", "/batched", "lost"]
    head += [f"{r[:5]}" for r in CPU_ROLES]
    body = [
        [
            r.case,
            _num(r.messages),
            _num(r.readings),
            _num(r.msg_s),
            _num(r.readings_s),
            _ratio_text(ratio(r.readings_s, ceiling)),
            _ratio_text(ratio(r.readings_s, naive)),
            _ratio_text(ratio(r.readings_s, batched)),
            _num(r.lost),
            *[_num(r.cores.get(role), 2) if role in r.cores else "-" for role in CPU_ROLES],
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )

    rule = "-" * len(fmt(head))
    return "\n".join([fmt(head), rule, *map(fmt, body)])


def result_line(
    values: Mapping[str, float | int | None], extras: Mapping[str, float | int | str | None] | None = None
) -> str:
    """`RESULT k=v ...`: extras first, then the required keys in their fixed order; numbers as integers
    (latencies keep one decimal), a missing value as `na`."""

    def text(k: str, v: float | int | str | None) -> str:
        if v is None:
            return "na"
        if isinstance(v, str):
            return v
        return f"{v:.1f}" if k.endswith("_ms") else str(round(v))

    missing = [k for k in REQUIRED if k not in values]
    if missing:
        raise KeyError(f"RESULT needs {missing}")
    parts = [f"{k}={text(k, v)}" for k, v in (extras or {}).items() if k not in REQUIRED]
    parts += [f"{k}={text(k, values[k])}" for k in REQUIRED]
    return "RESULT " + " ".join(parts)
