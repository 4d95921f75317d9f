"""The scorer's SQL: read bucketed telemetry, write predictions and predictive alerts, per site schema.

Telemetry is only read (the bridge owns it); a pass writes one transaction per schema. Predictions upsert on
their key (asset, model, ts), so scoring a bucket again (a restart, a retried write) replaces rather than
duplicates. Alerts go through the partial unique index `alerts_open_dedup_key` exactly like the bridge's rules
engine: INSERT ... ON CONFLICT (dedup_key) WHERE state <> 'resolved' — here DO UPDATE, so a repeated prediction
refreshes the open alert (its severity, message, details and last value; an acknowledged one stays acknowledged).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import pandas as pd

from dtwin_core.schema import qualified
from dtwin_scorer import windows
from dtwin_scorer.results import ALERT_KIND, AlertChange, PredictionRow


async def read_buckets(
    pool: asyncpg.Pool, schema: str, assets: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
) -> list[Any]:
    return list(await pool.fetch(windows.query(schema), start.to_pydatetime(), end.to_pydatetime(), list(assets)))


def _stream_time(schema: str) -> str:
    # Each sensor's newest reading through the telemetry primary key (sensor, ts): a few index probes, not a scan.
    return f"""SELECT max(l.ts) FROM {qualified(schema, "sensors")} s CROSS JOIN LATERAL (
    SELECT t.ts FROM {qualified(schema, "telemetry")} t WHERE t.sensor = s.name ORDER BY t.ts DESC LIMIT 1) l"""


async def stream_time(pool: asyncpg.Pool, schema: str) -> pd.Timestamp | None:
    """The newest reading time of the schema: where a replayed or backfilled stream is (see `Settings.clock`)."""
    value = await pool.fetchval(_stream_time(schema))
    return None if value is None else pd.Timestamp(value)


def _upsert_prediction(schema: str) -> str:
    return (
        f"INSERT INTO {qualified(schema, 'predictions')} "
        "(asset, model, version, ts, score, horizon_hours, explanation, task, rul_hours) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) ON CONFLICT (asset, model, ts) DO UPDATE SET "
        "version = EXCLUDED.version, score = EXCLUDED.score, horizon_hours = EXCLUDED.horizon_hours, "
        "explanation = EXCLUDED.explanation, task = EXCLUDED.task, rul_hours = EXCLUDED.rul_hours"
    )


def _open_alert(schema: str) -> str:
    # xmax = 0 only on a row this statement inserted: tells an opening from a refresh.
    return (
        f"INSERT INTO {qualified(schema, 'alerts')} "
        "(sensor, asset, kind, severity, state, last_value, message, dedup_key, details) "
        f"VALUES (NULL, $1, '{ALERT_KIND}', $2, 'open', $3, $4, $5, $6::jsonb) "
        "ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO UPDATE SET severity = EXCLUDED.severity, "
        "last_value = EXCLUDED.last_value, message = EXCLUDED.message, details = EXCLUDED.details "
        "RETURNING (xmax = 0) AS opened"
    )


def _resolve_alert(schema: str) -> str:
    return (
        f"UPDATE {qualified(schema, 'alerts')} SET state = 'resolved', resolved_at = now(), last_value = $2, "
        "message = $3 WHERE dedup_key = $1 AND state <> 'resolved'"
    )


async def write(
    pool: asyncpg.Pool, schema: str, rows: Sequence[PredictionRow], alerts: Sequence[AlertChange]
) -> dict[str, int]:
    """Write one schema's rows and alert changes in one transaction; counts per alert transition."""
    counts = {"opened": 0, "refreshed": 0, "resolved": 0}
    async with pool.acquire() as conn, conn.transaction():
        if rows:
            await conn.executemany(_upsert_prediction(schema), [r.args() for r in rows])
        for a in alerts:
            if a.open:
                opened = await conn.fetchval(
                    _open_alert(schema), a.asset, a.severity, a.score, a.message, a.dedup_key, a.details
                )
                counts["opened" if opened else "refreshed"] += 1
            else:
                status = await conn.execute(_resolve_alert(schema), a.dedup_key, a.score, a.message)
                counts["resolved"] += int(status.split()[-1])
    return counts
