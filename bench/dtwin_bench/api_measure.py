"""Pure helpers of `make bench-api`: latencies from what the clients received, percentiles, the pacing rate,
the dashboard's queries and the RESULT line. No I/O except `default_rate`'s read of an earlier ingest report."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

FALLBACK_INGEST_MSG_S = 20_000.0  # single-reading msg/s of `make bench-ingest` on the 2-core box (2 bridges)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "max_ms": max(values) if values else None,
    }


def ingest_capacity(bench_dir: Path) -> tuple[float, str]:
    """Single-reading msg/s the newest `.bench/ingest-*.json` measured, or the fallback; and where it came from."""
    for path in sorted(bench_dir.glob("ingest-*.json"), reverse=True):
        try:
            value = json.loads(path.read_text())["result"].get("single_msg_s")
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        if value:
            return float(value), path.name
    return FALLBACK_INGEST_MSG_S, "fallback constant"


def broker_latencies_ms(lines: Iterable[str], skip_topic: str) -> list[float]:
    """mosquitto_sub `-F '%U %t %p'` lines (receive time, topic, payload `{"ts": send time, ...}`) -> ms."""
    out = []
    for line in lines:
        parts = line.split(" ", 2)
        if len(parts) != 3 or parts[1] == skip_topic:
            continue
        try:
            out.append((float(parts[0]) - float(json.loads(parts[2])["ts"])) * 1000)
        except (ValueError, KeyError, TypeError):
            continue
    return out


def ws_latencies_ms(frame: dict[str, Any], received_at: float, skip_sensor: str) -> list[float]:
    """Per reading of a live telemetry frame: receive time minus the reading's ts (the publisher's send time)."""
    if frame.get("type") != "telemetry" or frame.get("replay"):
        return []
    return [
        (received_at - datetime.fromisoformat(r["ts"]).timestamp()) * 1000
        for r in frame.get("readings", ())
        if r.get("sensor") != skip_sensor
    ]


@dataclass(frozen=True)
class DashboardQuery:
    name: str
    bucket: str  # "1h" or "1d": the rollup the API reads; the raw variant computes the same from telemetry
    days: int


def dashboard_queries(days: int) -> list[DashboardQuery]:
    """What the dashboard asks for most: the whole range as hourly and as daily series, every sensor."""
    return [DashboardQuery(f"{days}d hourly", "1h", days), DashboardQuery(f"{days}d daily", "1d", days)]


def raw_grouped_sql(schema: str, bucket: str) -> str:
    """The rollup's answer (sensor, bucket, avg, min, max, count) computed from raw readings, UTC-aligned as the
    rollups are for a UTC site; `$1` sensors, `$2`/`$3` the range."""
    width = {"1m": "1 minute", "1h": "1 hour", "1d": "1 day"}[bucket]
    return (
        f"SELECT sensor, date_bin('{width}', ts, timestamptz '2000-01-01 00:00:00+00') AS ts, avg(value) AS avg, "
        f'min(value) AS min, max(value) AS max, count(*) AS count FROM "{schema}"."telemetry" '
        "WHERE sensor = ANY($1::text[]) AND ts >= $2 AND ts < $3 GROUP BY 1, 2 ORDER BY 1, 2"
    )


def backfill_rollups_sql(schema: str) -> list[str]:
    """The 1m/1h/1d rollups of a backfilled telemetry table, set-based, as `refresh_rollups()` defines them for a
    UTC site (1 min from raw readings, 1 h from 1 min, 1 d from 1 h; avg is a generated column)."""
    s = f'"{schema}"'
    minute = "date_bin('1 minute', ts, timestamptz '2000-01-01 00:00:00+00')"
    return [
        f"INSERT INTO {s}.telemetry_1m (bucket, sensor, count, min, max, sum) SELECT {minute}, sensor, count(*), "
        f"min(value), max(value), sum(value) FROM {s}.telemetry GROUP BY 1, 2",
        f"INSERT INTO {s}.telemetry_1h (bucket, sensor, count, min, max, sum) SELECT date_trunc('hour', bucket, "
        f"'UTC'), sensor, sum(count)::bigint, min(min), max(max), sum(sum) FROM {s}.telemetry_1m GROUP BY 1, 2",
        f"INSERT INTO {s}.telemetry_1d (bucket, sensor, count, min, max, sum) SELECT date_trunc('day', bucket, "
        f"'UTC'), sensor, sum(count)::bigint, min(min), max(max), sum(sum) FROM {s}.telemetry_1h GROUP BY 1, 2",
    ]


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def day_range(end: datetime, days: int) -> tuple[datetime, datetime]:
    """[end - days, end) with `end` floored to a whole UTC day (so both sources see whole buckets)."""
    hi = end.replace(hour=0, minute=0, second=0, microsecond=0)
    return hi - timedelta(days=days), hi


def speedup(raw_s: float | None, agg_s: float | None) -> float | None:
    if raw_s is None or not agg_s:
        return None
    return raw_s / agg_s


def fmt(value: float | None, digits: int = 1) -> str:
    return "na" if value is None else f"{value:.{digits}f}"


def result_line(ws: dict[str, Any], broker: dict[str, Any], aggregate_speedup: float | None) -> str:
    return (
        f"RESULT ws_p50_ms={fmt(ws.get('p50_ms'))} ws_p99_ms={fmt(ws.get('p99_ms'))} "
        f"broker_p99_ms={fmt(broker.get('p99_ms'))} aggregate_speedup={fmt(aggregate_speedup)}"
    )
