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
