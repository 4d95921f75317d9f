"""SQL of the ML routes (the rest is in `repo`): predictions, energy recommendations, and the asset columns
derived from them and from maintenance (failure risk, maintenance due).

Same rules as `repo`: a site schema is only named after `site_access` admitted it, identifiers are quoted
with `dtwin_core.schema.qualified`, `dtwin_api` rows are keyed by site, transactions are the caller's.
The tables are written by the ML scorers (predictions, recommendations) and may be empty.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from dtwin_core.schema import qualified

Row = dict[str, Any]

PREDICTION_COLUMNS = "asset, model, version, task, ts, score, horizon_hours, rul_hours, explanation"
RECOMMENDATION_COLUMNS = (
    "id, asset, kind, title, detail, kwh_saved, cost_saved, currency, period_start, period_end, created_at, "
    "model, version, status, status_changed_at"
)


async def predictions(
    conn: asyncpg.Connection,
    schema: str,
    *,
    asset: str | None,
    task: str | None,
    model: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int,
) -> list[Row]:
    """Predictions in [start, end), newest first, at most `limit`."""
    rows = await conn.fetch(
        f"SELECT {PREDICTION_COLUMNS} FROM {qualified(schema, 'predictions')} "
        "WHERE ($1::text IS NULL OR asset = $1) AND ($2::text IS NULL OR task = $2) "
        "AND ($3::text IS NULL OR model = $3) "
        "AND ($4::timestamptz IS NULL OR ts >= $4) AND ($5::timestamptz IS NULL OR ts < $5) "
        "ORDER BY ts DESC, asset, model LIMIT $6",
        asset,
        task,
        model,
        start,
        end,
        limit,
    )
    return [dict(r) for r in rows]


async def latest_predictions(conn: asyncpg.Connection, schema: str, task: str | None, asset: str | None) -> list[Row]:
    """The newest prediction of every (asset, model)."""
    rows = await conn.fetch(
        f"SELECT DISTINCT ON (asset, model) {PREDICTION_COLUMNS} FROM {qualified(schema, 'predictions')} "
        "WHERE ($1::text IS NULL OR task = $1) AND ($2::text IS NULL OR asset = $2) ORDER BY asset, model, ts DESC",
        task,
        asset,
    )
    return [dict(r) for r in rows]


async def assets_ml(conn: asyncpg.Connection, schema: str, site: str) -> dict[str, Row]:
    """asset -> its latest failure prediction and its next due active work order (either may be NULL)."""
    rows = await conn.fetch(
        "SELECT a.name, fp.score AS risk_probability, fp.horizon_hours AS risk_horizon_hours, fp.ts AS risk_at, "
        "  fp.model AS risk_model, fp.version AS risk_version, due.id AS due_work_order_id, "
        "  due.scheduled_for AS due_date, due.scheduled_for < current_date AS due_overdue "
        f"FROM {qualified(schema, 'assets')} a "
        f"LEFT JOIN LATERAL (SELECT score, horizon_hours, ts, model, version FROM {qualified(schema, 'predictions')} p "
        "  WHERE p.task = 'failure' AND p.asset = a.name ORDER BY ts DESC LIMIT 1) fp ON true "
        "LEFT JOIN LATERAL (SELECT id, scheduled_for FROM dtwin_api.work_orders w WHERE w.site = $1 "
        "  AND w.asset = a.name AND w.state IN ('open', 'scheduled', 'in_progress') AND w.scheduled_for IS NOT NULL "
        "  ORDER BY scheduled_for, id LIMIT 1) due ON true",
        site,
    )
    return {r["name"]: dict(r) for r in rows}


async def recommendations(
    conn: asyncpg.Connection,
    schema: str,
    *,
    status: str | None,
    asset: str | None,
    kind: str | None,
    before_id: int | None,
    limit: int,
) -> list[Row]:
    rows = await conn.fetch(
        f"SELECT {RECOMMENDATION_COLUMNS} FROM {qualified(schema, 'energy_recommendations')} "
        "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR asset = $2) "
        "AND ($3::text IS NULL OR kind = $3) AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        status,
        asset,
        kind,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]


async def recommendation_for_update(conn: asyncpg.Connection, schema: str, rec_id: int) -> Row | None:
    row = await conn.fetchrow(
        f"SELECT {RECOMMENDATION_COLUMNS} FROM {qualified(schema, 'energy_recommendations')} WHERE id = $1 FOR UPDATE",
        rec_id,
    )
    return None if row is None else dict(row)


async def set_recommendation_status(conn: asyncpg.Connection, schema: str, rec_id: int, status: str) -> Row:
    row = await conn.fetchrow(
        f"UPDATE {qualified(schema, 'energy_recommendations')} SET status = $2, status_changed_at = now() "
        f"WHERE id = $1 RETURNING {RECOMMENDATION_COLUMNS}",
        rec_id,
        status,
    )
    assert row is not None  # the caller holds the row lock
    return dict(row)


async def site_namespace(conn: asyncpg.Connection, schema: str) -> str | None:
    """The namespace whose Site claimed this schema (the operator's claims table)."""
    value = await conn.fetchval("SELECT namespace FROM public.dtwin_schema_owners WHERE schema_name = $1", schema)
    return None if value is None else str(value)
