"""All SQL of the API: its own tables in `dtwin_api` and the site schemas the operator and bridge write.

Site schemas come from `public.dtwin_schema_owners` (the operator's claims table) and are only ever
looked up through a `SiteScope`, so a caller's reads reach exactly the schemas of the sites they hold a
grant on; identifiers are quoted with `dtwin_core.schema.qualified`. Functions take a connection and
leave transactions to the caller.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from dtwin_api.authz import Role, SiteScope
from dtwin_core.schema import qualified

Row = dict[str, Any]


async def init_connection(conn: asyncpg.Connection) -> None:
    """Pool `init`: jsonb in and out as Python values (datetimes as ISO 8601)."""
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: json.dumps(v, default=str), decoder=json.loads, schema="pg_catalog"
    )


# --- identity -----------------------------------------------------------------------------------------


async def create_user(conn: asyncpg.Connection, username: str, password_hash: str | None) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO dtwin_api.users (username, password_hash) VALUES ($1, $2) RETURNING id",
            username,
            password_hash,
        )
    )


async def set_identity(conn: asyncpg.Connection, user_id: int, oidc_subject: str | None, email: str | None) -> None:
    """The external identity (OpenID Connect `sub`, email) that maps to this local user."""
    await conn.execute(
        "UPDATE dtwin_api.users SET oidc_subject = $2, email = lower($3) WHERE id = $1", user_id, oidc_subject, email
    )


async def user_id_by_identity(conn: asyncpg.Connection, claim: str, value: str) -> int | None:
    """The active local user an OpenID Connect identity maps to (by `sub` or by email)."""
    column = {"sub": "oidc_subject", "email": "email"}[claim]
    found = await conn.fetchval(f"SELECT id FROM dtwin_api.users WHERE {column} = $1 AND active", value)
    return None if found is None else int(found)


async def set_grant(conn: asyncpg.Connection, user_id: int, site: str, role: Role) -> None:
    await conn.execute(
        "INSERT INTO dtwin_api.grants (user_id, site, role) VALUES ($1, $2, $3) "
        "ON CONFLICT (user_id, site) DO UPDATE SET role = EXCLUDED.role, granted_at = now()",
        user_id,
        site,
        role.name,
    )


async def admin_exists(conn: asyncpg.Connection) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dtwin_api.grants WHERE site = '*' AND role = 'admin')")
    )


async def login_row(conn: asyncpg.Connection, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, username, password_hash FROM dtwin_api.users WHERE username = $1 AND active", username
    )


async def active_user(conn: asyncpg.Connection, user_id: int) -> tuple[str, dict[str, Role]] | None:
    """(username, grants) of an active user, or None."""
    rows = await conn.fetch(
        "SELECT u.username, g.site, g.role FROM dtwin_api.users u "
        "LEFT JOIN dtwin_api.grants g ON g.user_id = u.id WHERE u.id = $1 AND u.active",
        user_id,
    )
    if not rows:
        return None
    return rows[0]["username"], {r["site"]: Role[r["role"]] for r in rows if r["site"] is not None}


async def insert_refresh(
    conn: asyncpg.Connection, token_hash: bytes, family: uuid.UUID, user_id: int, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO dtwin_api.refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        family,
        user_id,
        expires_at,
    )


async def refresh_for_update(conn: asyncpg.Connection, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT token_hash, family_id, user_id, expires_at, rotated_at, revoked_at, "
        "  EXISTS (SELECT 1 FROM dtwin_api.refresh_tokens f WHERE f.family_id = t.family_id "
        "          AND f.revoked_at IS NOT NULL) AS family_revoked "
        "FROM dtwin_api.refresh_tokens t WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )


async def mark_rotated(conn: asyncpg.Connection, token_hash: bytes) -> None:
    await conn.execute("UPDATE dtwin_api.refresh_tokens SET rotated_at = now() WHERE token_hash = $1", token_hash)


async def revoke_family(conn: asyncpg.Connection, family: uuid.UUID) -> int:
    status = await conn.execute(
        "UPDATE dtwin_api.refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family
    )
    return int(status.rsplit(" ", 1)[-1])


async def insert_api_key(conn: asyncpg.Connection, prefix: str, key_hash: bytes, user_id: int, name: str) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO dtwin_api.api_keys (prefix, key_hash, user_id, name) VALUES ($1, $2, $3, $4) RETURNING id",
            prefix,
            key_hash,
            user_id,
            name,
        )
    )


async def api_key_row(conn: asyncpg.Connection, prefix: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, key_hash, user_id FROM dtwin_api.api_keys "
        "WHERE prefix = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        prefix,
    )


async def user_id_by_name(conn: asyncpg.Connection, username: str) -> int | None:
    value = await conn.fetchval("SELECT id FROM dtwin_api.users WHERE username = $1", username)
    return None if value is None else int(value)


async def audit(
    conn: asyncpg.Connection,
    *,
    actor_user_id: int | None,
    actor: str,
    action: str,
    target: str,
    site: str | None = None,
    before: Row | None = None,
    after: Row | None = None,
    client: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO dtwin_api.audit_log (actor_user_id, actor, action, site, target, before, after, client) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        actor_user_id,
        actor,
        action,
        site,
        target,
        before,
        after,
        client,
    )


# --- sites --------------------------------------------------------------------------------------------

_CLAIMS_EXIST = (
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
    "WHERE schemaname = 'public' AND tablename = 'dtwin_schema_owners')"
)


async def sites(conn: asyncpg.Connection, scope: SiteScope) -> list[asyncpg.Record]:
    """Claimed site schemas the scope covers, by site name. None at all before the operator's first Site."""
    if not await conn.fetchval(_CLAIMS_EXIST):
        return []
    return await conn.fetch(
        "SELECT site, namespace, schema_name FROM public.dtwin_schema_owners "
        "WHERE $1 OR site = ANY($2::text[]) ORDER BY site, namespace",
        scope.everything,
        list(scope.sites),
    )


async def site_schemas(conn: asyncpg.Connection, site: str, scope: SiteScope) -> list[str]:
    if not await conn.fetchval(_CLAIMS_EXIST):
        return []
    rows = await conn.fetch(
        "SELECT schema_name FROM public.dtwin_schema_owners WHERE site = $1 AND ($2 OR site = ANY($3::text[]))",
        site,
        scope.everything,
        list(scope.sites),
    )
    return [r["schema_name"] for r in rows]


async def open_alert_counts(conn: asyncpg.Connection, schema: str) -> Row:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE severity = 'critical') AS critical, "
        "count(*) FILTER (WHERE severity = 'warning') AS warning "
        f"FROM {qualified(schema, 'alerts')} WHERE state <> 'resolved'"
    )
    return dict(row) if row else {"critical": 0, "warning": 0}


async def assets(conn: asyncpg.Connection, schema: str, site: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT a.name, a.kind, a.display_name, a.floor, a.zone, a.x, a.y, a.z, a.criticality, a.updated_at, "
        f"  (SELECT count(*) FROM {qualified(schema, 'alerts')} al "
        "    WHERE al.asset = a.name AND al.state <> 'resolved') AS open_alerts, sv.last_service_at "
        f"FROM {qualified(schema, 'assets')} a "
        "LEFT JOIN dtwin_api.asset_service sv ON sv.site = $1 AND sv.asset = a.name ORDER BY a.name",
        site,
    )


ALERT_COLUMNS = (
    "id, sensor, asset, kind, severity, state, opened_at, acknowledged_at, resolved_at, last_value, message, details"
)


async def alerts(
    conn: asyncpg.Connection,
    schema: str,
    site: str,
    *,
    state: str | None,
    severity: str | None,
    asset: str | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ALERT_COLUMNS}, aa.assignee_user_id FROM {qualified(schema, 'alerts')} "
        "LEFT JOIN dtwin_api.alert_assignments aa ON aa.site = $6 AND aa.alert_id = id "
        "WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR severity = $2) "
        "AND ($3::text IS NULL OR asset = $3) AND ($4::bigint IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        state,
        severity,
        asset,
        before_id,
        limit,
        site,
    )


async def alert_for_update(conn: asyncpg.Connection, schema: str, alert_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {ALERT_COLUMNS} FROM {qualified(schema, 'alerts')} WHERE id = $1 FOR UPDATE", alert_id
    )


async def set_alert_state(conn: asyncpg.Connection, schema: str, alert_id: int, state: str) -> asyncpg.Record:
    stamp = {"acknowledged": "acknowledged_at", "resolved": "resolved_at"}[state]
    row = await conn.fetchrow(
        f"UPDATE {qualified(schema, 'alerts')} SET state = $2, {stamp} = now() WHERE id = $1 RETURNING {ALERT_COLUMNS}",
        alert_id,
        state,
    )
    assert row is not None  # the caller holds the row lock
    return row


async def telemetry(
    conn: asyncpg.Connection,
    schema: str,
    sensors: Sequence[str],
    start: datetime,
    end: datetime,
    bucket: str,
    limit: int,
) -> list[asyncpg.Record]:
    """Readings (bucket 'raw') or rollup rows of the sensors in [start, end), at most `limit` rows."""
    if bucket == "raw":
        sql = (
            f"SELECT sensor, ts, value FROM {qualified(schema, 'telemetry')} "
            "WHERE sensor = ANY($1::text[]) AND ts >= $2 AND ts < $3 ORDER BY sensor, ts LIMIT $4"
        )
    else:
        sql = (
            f"SELECT sensor, bucket AS ts, avg, min, max, count FROM {qualified(schema, 'telemetry_' + bucket)} "
            "WHERE sensor = ANY($1::text[]) AND bucket >= $2 AND bucket < $3 ORDER BY sensor, bucket LIMIT $4"
        )
    return await conn.fetch(sql, list(sensors), start, end, limit)


async def sensors_with_last(
    conn: asyncpg.Connection, schema: str, asset: str | None, since: datetime
) -> list[asyncpg.Record]:
    """Registry sensors with their newest reading: per sensor an `ORDER BY ts DESC LIMIT 1` probe of the
    telemetry key (sensor, ts), first restricted to `ts >= since` (older partitions/chunks pruned), then
    unrestricted only for a sensor with nothing that recent (as `dtwin_operator.db.telemetry_facts`)."""
    t = qualified(schema, "telemetry")
    return await conn.fetch(
        "SELECT s.name, s.asset, s.metric, s.unit, s.canonical_unit, "
        "  coalesce(recent.ts, older.ts) AS last_ts, coalesce(recent.value, older.value) AS last_value "
        f"FROM {qualified(schema, 'sensors')} s "
        f"LEFT JOIN LATERAL (SELECT ts, value FROM {t} WHERE sensor = s.name AND ts >= $2 "
        "  ORDER BY ts DESC LIMIT 1) recent ON true "
        f"LEFT JOIN LATERAL (SELECT ts, value FROM {t} WHERE recent.ts IS NULL AND sensor = s.name "
        "  ORDER BY ts DESC LIMIT 1) older ON true "
        "WHERE ($1::text IS NULL OR s.asset = $1) ORDER BY s.name",
        asset,
        since,
    )


async def open_alerts_by_sensor(conn: asyncpg.Connection, schema: str) -> dict[str, tuple[int, bool]]:
    """sensor -> (open alerts, whether one is a stale/offline alert). Reads only unresolved alerts."""
    rows = await conn.fetch(
        "SELECT sensor, count(*)::integer AS n, bool_or(kind IN ('stale', 'offline')) AS silent "
        f"FROM {qualified(schema, 'alerts')} WHERE state <> 'resolved' AND sensor IS NOT NULL GROUP BY sensor"
    )
    return {r["sensor"]: (r["n"], bool(r["silent"])) for r in rows}


# --- maintenance (dtwin_api tables keyed by site) ---------------------------------------------------------

_TECHNICIAN_OR_ABOVE = ["technician", "manager", "engineer", "admin"]


async def is_technician_at(conn: asyncpg.Connection, user_id: int, site: str) -> bool:
    """Whether `user_id` is an active user holding technician or higher at `site` (or at every site)."""
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM dtwin_api.users u JOIN dtwin_api.grants g ON g.user_id = u.id "
            "WHERE u.id = $1 AND u.active AND g.site IN ($2, '*') AND g.role = ANY($3::text[]))",
            user_id,
            site,
            _TECHNICIAN_OR_ABOVE,
        )
    )


async def asset_exists(conn: asyncpg.Connection, schema: str, asset: str) -> bool:
    return bool(
        await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {qualified(schema, 'assets')} WHERE name = $1)", asset)
    )


async def existing_alert_ids(conn: asyncpg.Connection, schema: str, ids: Sequence[int]) -> set[int]:
    rows = await conn.fetch(f"SELECT id FROM {qualified(schema, 'alerts')} WHERE id = ANY($1::bigint[])", list(ids))
    return {int(r["id"]) for r in rows}


async def alert_row(conn: asyncpg.Connection, schema: str, alert_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {ALERT_COLUMNS} FROM {qualified(schema, 'alerts')} WHERE id = $1", alert_id)


WORK_ORDER_COLUMNS = (
    "w.id, w.site, w.asset, w.title, w.description, w.priority, w.state, w.scheduled_for, w.assignee_user_id, "
    "w.notes, w.created_by, w.created_at, w.updated_by, w.updated_at, w.completed_at, w.completion_notes, "
    "coalesce((SELECT array_agg(l.alert_id ORDER BY l.alert_id) FROM dtwin_api.work_order_alerts l "
    "  WHERE l.work_order_id = w.id), '{}') AS alert_ids"
)


async def insert_work_order(
    conn: asyncpg.Connection, site: str, values: Row, alert_ids: Sequence[int], actor: int
) -> Row:
    wo_id = await conn.fetchval(
        "INSERT INTO dtwin_api.work_orders (site, asset, title, description, priority, state, scheduled_for, "
        "assignee_user_id, notes, created_by, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) "
        "RETURNING id",
        site,
        values["asset"],
        values["title"],
        values["description"],
        values["priority"],
        values["state"],
        values["scheduled_for"],
        values["assignee_user_id"],
        values["notes"],
        actor,
    )
    await conn.executemany(
        "INSERT INTO dtwin_api.work_order_alerts (work_order_id, site, alert_id) VALUES ($1, $2, $3)",
        [(wo_id, site, a) for a in sorted(set(alert_ids))],
    )
    row = await work_order(conn, site, int(wo_id))
    assert row is not None
    return row


async def work_order(conn: asyncpg.Connection, site: str, wo_id: int, *, lock: bool = False) -> Row | None:
    """One work order of `site` (another site's id is None: the site is part of the key)."""
    row = await conn.fetchrow(
        f"SELECT {WORK_ORDER_COLUMNS} FROM dtwin_api.work_orders w WHERE w.site = $1 AND w.id = $2"
        + (" FOR UPDATE OF w" if lock else ""),
        site,
        wo_id,
    )
    return None if row is None else dict(row)


async def work_orders(
    conn: asyncpg.Connection,
    site: str,
    *,
    state: str | None,
    asset: str | None,
    assignee: int | None,
    before_id: int | None,
    limit: int,
) -> list[Row]:
    rows = await conn.fetch(
        f"SELECT {WORK_ORDER_COLUMNS} FROM dtwin_api.work_orders w WHERE w.site = $1 "
        "AND ($2::text IS NULL OR w.state = $2) AND ($3::text IS NULL OR w.asset = $3) "
        "AND ($4::bigint IS NULL OR w.assignee_user_id = $4) AND ($5::bigint IS NULL OR w.id < $5) "
        "ORDER BY w.id DESC LIMIT $6",
        site,
        state,
        asset,
        assignee,
        before_id,
        limit,
    )
    return [dict(r) for r in rows]


_PATCHABLE = ("title", "description", "priority", "state", "scheduled_for", "assignee_user_id", "notes")


async def update_work_order(conn: asyncpg.Connection, site: str, wo_id: int, changes: Row, actor: int) -> Row:
    fields = [f for f in _PATCHABLE if f in changes]
    sets = ", ".join(f"{f} = ${i + 4}" for i, f in enumerate(fields))
    await conn.execute(
        f"UPDATE dtwin_api.work_orders SET {sets + ', ' if sets else ''}updated_by = $3, updated_at = now() "
        "WHERE site = $1 AND id = $2",
        site,
        wo_id,
        actor,
        *[changes[f] for f in fields],
    )
    row = await work_order(conn, site, wo_id)
    assert row is not None  # the caller holds the row lock
    return row


async def close_work_order(
    conn: asyncpg.Connection, site: str, wo_id: int, state: str, notes: str | None, actor: int
) -> Row:
    await conn.execute(
        "UPDATE dtwin_api.work_orders SET state = $3, completion_notes = $4, updated_by = $5, updated_at = now(), "
        "completed_at = CASE WHEN $3 = 'completed' THEN now() END WHERE site = $1 AND id = $2",
        site,
        wo_id,
        state,
        notes,
        actor,
    )
    row = await work_order(conn, site, wo_id)
    assert row is not None
    return row


async def record_service(conn: asyncpg.Connection, site: str, asset: str, wo_id: int) -> datetime:
    """The asset's last service date becomes now (never moves back)."""
    value = await conn.fetchval(
        "INSERT INTO dtwin_api.asset_service (site, asset, last_service_at, work_order_id) VALUES ($1, $2, now(), $3) "
        "ON CONFLICT (site, asset) DO UPDATE SET last_service_at = greatest(asset_service.last_service_at, "
        "EXCLUDED.last_service_at), work_order_id = EXCLUDED.work_order_id RETURNING last_service_at",
        site,
        asset,
        wo_id,
    )
    assert isinstance(value, datetime)
    return value


async def open_alerts_for_update(conn: asyncpg.Connection, schema: str, ids: Sequence[int]) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {ALERT_COLUMNS} FROM {qualified(schema, 'alerts')} "
        "WHERE id = ANY($1::bigint[]) AND state <> 'resolved' ORDER BY id FOR UPDATE",
        list(ids),
    )


async def alert_assignment(conn: asyncpg.Connection, site: str, alert_id: int) -> Row | None:
    row = await conn.fetchrow(
        "SELECT site, alert_id, assignee_user_id, assigned_by, assigned_at FROM dtwin_api.alert_assignments "
        "WHERE site = $1 AND alert_id = $2",
        site,
        alert_id,
    )
    return None if row is None else dict(row)


async def assign_alert(conn: asyncpg.Connection, site: str, alert_id: int, assignee: int, actor: int) -> Row:
    row = await conn.fetchrow(
        "INSERT INTO dtwin_api.alert_assignments (site, alert_id, assignee_user_id, assigned_by) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (site, alert_id) DO UPDATE SET assignee_user_id = "
        "EXCLUDED.assignee_user_id, assigned_by = EXCLUDED.assigned_by, assigned_at = now() "
        "RETURNING site, alert_id, assignee_user_id, assigned_by, assigned_at",
        site,
        alert_id,
        assignee,
        actor,
    )
    assert row is not None
    return dict(row)


COMMENT_COLUMNS = "id, alert_id, author_user_id, author, body, created_at"


async def add_comment(conn: asyncpg.Connection, site: str, alert_id: int, user_id: int, author: str, body: str) -> Row:
    row = await conn.fetchrow(
        "INSERT INTO dtwin_api.alert_comments (site, alert_id, author_user_id, author, body) "
        f"VALUES ($1, $2, $3, $4, $5) RETURNING {COMMENT_COLUMNS}",
        site,
        alert_id,
        user_id,
        author,
        body,
    )
    assert row is not None
    return dict(row)


async def comments(conn: asyncpg.Connection, site: str, alert_id: int, after_id: int | None, limit: int) -> list[Row]:
    rows = await conn.fetch(
        f"SELECT {COMMENT_COLUMNS} FROM dtwin_api.alert_comments WHERE site = $1 AND alert_id = $2 "
        "AND ($3::bigint IS NULL OR id > $3) ORDER BY id LIMIT $4",
        site,
        alert_id,
        after_id,
        limit,
    )
    return [dict(r) for r in rows]


# --- WebSocket resume -------------------------------------------------------------------------------------


async def replay_readings(
    conn: asyncpg.Connection,
    schema: str,
    since: datetime,
    assets: Sequence[str] | None,
    metrics: Sequence[str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """The newest `limit` readings after `since` (labelled from the sensor registry), oldest first."""
    return await conn.fetch(
        "SELECT * FROM ("
        f"SELECT t.sensor, s.asset, s.metric, s.canonical_unit AS unit, t.ts, t.value "
        f"FROM {qualified(schema, 'telemetry')} t LEFT JOIN {qualified(schema, 'sensors')} s ON s.name = t.sensor "
        "WHERE t.ts > $1 AND ($2::text[] IS NULL OR s.asset = ANY($2)) AND ($3::text[] IS NULL OR s.metric = ANY($3)) "
        "ORDER BY t.ts DESC, t.sensor DESC LIMIT $4) newest ORDER BY ts, sensor",
        since,
        assets,
        metrics,
        limit,
    )


async def replay_alerts(
    conn: asyncpg.Connection, schema: str, since: datetime, assets: Sequence[str] | None, limit: int
) -> list[asyncpg.Record]:
    """Alerts still open, or opened/acknowledged/resolved after `since`, oldest first (at most `limit`)."""
    return await conn.fetch(
        f"SELECT * FROM (SELECT {ALERT_COLUMNS} FROM {qualified(schema, 'alerts')} "
        "WHERE (state <> 'resolved' OR opened_at > $1 OR acknowledged_at > $1 OR resolved_at > $1) "
        "AND ($2::text[] IS NULL OR asset = ANY($2)) ORDER BY id DESC LIMIT $3) newest ORDER BY id",
        since,
        assets,
        limit,
    )
