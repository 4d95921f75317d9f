"""DDL that is the same on both backends: the schema itself, the migration log, the registry and events.

Each function returns the SQL of one migration step. Every statement is `IF NOT EXISTS`, so a step
that was interrupted (or replayed by hand) converges. Indexes are only the ones a known query needs:
every extra index is paid on each insert.
"""

from __future__ import annotations

from dtwin_core.schema_sql.base import Backend, StorageSpec, ident, qualified

ALERT_KINDS = ("threshold", "stale", "offline", "predictive")
ALERT_SEVERITIES = ("warning", "critical")
ALERT_STATES = ("open", "acknowledged", "resolved")
RECOMMENDATION_STATUSES = ("open", "accepted", "dismissed")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def bootstrap(spec: StorageSpec, backend: Backend) -> str:
    """The schema and its migration log (which also records the backend the schema was built for)."""
    s = ident(spec.schema)
    # The extension is per database; it only exists when detect_backend() saw it installed or preloadable.
    extension = "CREATE EXTENSION IF NOT EXISTS timescaledb;\n" if backend == "timescaledb" else ""
    return f"""{extension}CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}."schema_migrations" (
    version integer PRIMARY KEY,
    name text NOT NULL,
    backend text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


def registry(spec: StorageSpec) -> str:
    """Assets and sensors as declared by the CRs; written only by the operator's registry sync."""
    return f"""CREATE TABLE IF NOT EXISTS {qualified(spec.schema, "assets")} (
    name text PRIMARY KEY,
    kind text NOT NULL,
    display_name text,
    floor text,
    zone text,
    x double precision,
    y double precision,
    z double precision,
    criticality text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- No foreign key to assets: a SensorBinding may name an Asset that does not exist yet, and the CRs
-- converge in any order.
CREATE TABLE IF NOT EXISTS {qualified(spec.schema, "sensors")} (
    name text PRIMARY KEY,
    asset text NOT NULL,
    metric text NOT NULL,
    unit text NOT NULL,
    canonical_unit text NOT NULL,
    topic text NOT NULL,
    format text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


def events(spec: StorageSpec) -> str:
    """Dead letters from the bridge, alerts from the rules engine, predictions from the models."""
    dead, alerts, predictions = (qualified(spec.schema, t) for t in ("dead_letters", "alerts", "predictions"))
    return f"""CREATE TABLE IF NOT EXISTS {dead} (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic text NOT NULL,
    payload bytea,
    reason text NOT NULL,
    detail text,
    sensor text
);
-- BRIN, not btree: rows arrive in received_at order, so a few pages of summary serve retention's
-- range delete at almost no insert cost.
CREATE INDEX IF NOT EXISTS "dead_letters_received_at" ON {dead} USING brin (received_at);
CREATE TABLE IF NOT EXISTS {alerts} (
    id bigserial PRIMARY KEY,
    sensor text,
    asset text,
    kind text NOT NULL CHECK (kind IN ({_in(ALERT_KINDS)})),
    severity text NOT NULL CHECK (severity IN ({_in(ALERT_SEVERITIES)})),
    state text NOT NULL DEFAULT 'open' CHECK (state IN ({_in(ALERT_STATES)})),
    opened_at timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    resolved_at timestamptz,
    last_value double precision,
    message text NOT NULL DEFAULT '',
    dedup_key text NOT NULL
);
-- At most one unresolved alert per dedup key: a repeat (or a second rules replica) cannot open a
-- duplicate; INSERT ... ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO UPDATE refreshes it.
CREATE UNIQUE INDEX IF NOT EXISTS "alerts_open_dedup_key" ON {alerts} (dedup_key) WHERE state <> 'resolved';
CREATE TABLE IF NOT EXISTS {predictions} (
    asset text NOT NULL,
    model text NOT NULL,
    version text NOT NULL,
    ts timestamptz NOT NULL,
    score double precision NOT NULL,
    horizon_hours integer,
    explanation jsonb,
    PRIMARY KEY (asset, model, ts)
);
"""


def ml(spec: StorageSpec) -> str:
    """What the ML scorers write and the API serves: prediction task and remaining useful life, the details of
    a predictive alert (probability, horizon, model, version, top features), and energy recommendations.

    `energy_recommendations.kind` is open-ended (after_hours, simultaneous_heat_cool, setpoint_drift, ...): new
    detectors must not need a migration. Only `status` is changed by people (through the API)."""
    predictions, alerts, recs = (qualified(spec.schema, t) for t in ("predictions", "alerts", "energy_recommendations"))
    return f"""ALTER TABLE {predictions} ADD COLUMN IF NOT EXISTS task text;
ALTER TABLE {predictions} ADD COLUMN IF NOT EXISTS rul_hours double precision;
-- "Latest failure prediction per asset" (asset lists) and per-site time ranges; predictions are few.
CREATE INDEX IF NOT EXISTS "predictions_task_asset_ts" ON {predictions} (task, asset, ts DESC);
ALTER TABLE {alerts} ADD COLUMN IF NOT EXISTS details jsonb;
CREATE TABLE IF NOT EXISTS {recs} (
    id bigserial PRIMARY KEY,
    asset text,
    kind text NOT NULL,
    title text NOT NULL,
    detail text,
    kwh_saved double precision,
    cost_saved double precision,
    currency text,
    period_start timestamptz,
    period_end timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    model text,
    version text,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ({_in(RECOMMENDATION_STATUSES)})),
    status_changed_at timestamptz,
    CHECK (period_end IS NULL OR period_start IS NULL OR period_end >= period_start)
);
"""
