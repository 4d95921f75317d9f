"""Reads what health needs from a site's schema: newest reading per sensor, open alerts, recent dead letters.

Three queries in one read-only REPEATABLE READ transaction (one snapshot), each served by an index
the schema already has, so a refresh costs a few index probes per sensor however large the tables grow:

- newest reading: a LATERAL `ORDER BY ts DESC LIMIT 1` per sensor on the telemetry primary key
  (sensor, ts), first restricted to `ts >= now - lookback` so partitions (or chunks) older than that are
  pruned; only a sensor with nothing that recent takes a second, unrestricted probe (its LATERAL is
  gated by a one-time filter, so it costs nothing for the others);
- open alerts: `state <> 'resolved'` is exactly the predicate of the partial unique index
  `alerts_open_dedup_key`, so resolved history is never read;
- dead letters: `received_at >= since`, served by the BRIN index on `received_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from dtwin_core.schema import qualified
from dtwin_operator.health import REJECT_WINDOW, LastReading, OpenAlertCount, RejectCount

LOOKBACK = timedelta(hours=24)
STATEMENT_TIMEOUT_MS = 10_000


def last_readings_sql(schema: str) -> str:
    t = qualified(schema, "telemetry")
    return f"""SELECT s.name AS sensor, coalesce(recent.ts, older.ts) AS ts,
       coalesce(recent.value, older.value) AS value
FROM unnest($1::text[]) AS s(name)
LEFT JOIN LATERAL (
    SELECT ts, value FROM {t} WHERE sensor = s.name AND ts >= $2 ORDER BY ts DESC LIMIT 1
) recent ON true
LEFT JOIN LATERAL (
    SELECT ts, value FROM {t} WHERE recent.ts IS NULL AND sensor = s.name ORDER BY ts DESC LIMIT 1
) older ON true
WHERE coalesce(recent.ts, older.ts) IS NOT NULL"""


def open_alerts_sql(schema: str) -> str:
    return f"""SELECT sensor, asset, severity, count(*)::integer AS n
FROM {qualified(schema, "alerts")} WHERE state <> 'resolved'
GROUP BY sensor, asset, severity"""


def rejects_sql(schema: str) -> str:
    return f"""SELECT sensor, topic, count(*)::integer AS n
FROM {qualified(schema, "dead_letters")}
WHERE received_at >= $1 AND (sensor = ANY($2::text[]) OR (sensor IS NULL AND topic = ANY($3::text[])))
GROUP BY sensor, topic"""


@dataclass(frozen=True)
class SiteRows:
    readings: list[LastReading]
    alerts: list[OpenAlertCount]
    rejects: list[RejectCount]


async def read(
    conn: asyncpg.Connection,
    schema: str,
    sensors: Sequence[str],
    topics: Sequence[str],
    now: datetime,
    lookback: timedelta = LOOKBACK,
) -> SiteRows:
    """The rows health needs for `sensors` (binding names) and `topics` (their topics), as of `now`."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        last = await conn.fetch(last_readings_sql(schema), list(sensors), now - lookback)
        alerts = await conn.fetch(open_alerts_sql(schema))
        dead = await conn.fetch(rejects_sql(schema), now - REJECT_WINDOW, list(sensors), list(topics))
    return SiteRows(
        [LastReading(r["sensor"], r["ts"], r["value"]) for r in last],
        [OpenAlertCount(r["sensor"], r["asset"], r["severity"], r["n"]) for r in alerts],
        [RejectCount(r["sensor"], r["topic"], r["n"]) for r in dead],
    )
