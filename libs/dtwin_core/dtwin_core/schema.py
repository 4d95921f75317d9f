"""The per-Site database schema as pure data: versioned migrations and the SQL to run against them.

A Site's schema (`site_<name>`) is built by an ordered list of `Migration`s whose version numbers are
the same on both backends; only their SQL differs (TimescaleDB hypertable and continuous aggregates,
or plain PostgreSQL partitions and trigger-maintained rollups). Readers see the same table and view
names either way. `dtwin_core.migrate` is the asyncpg code that applies them; everything here is
deterministic text with every identifier quoted, so it is unit-tested without a database.

Schema of a Site (both backends):
  schema_migrations(version pk, name, backend, applied_at)
  assets(name pk, ...), sensors(name pk, ...)                  registry, synced from the CRs
  telemetry(sensor, ts, value, pk (sensor, ts))                  the only index on the hot table
  telemetry_1m / _1h / _1d(bucket, sensor, count, min, max, sum, avg)
  dead_letters(id pk, received_at brin, ...), alerts(id pk, partial unique dedup_key, details jsonb),
  predictions(pk asset, model, ts; task, rul_hours), energy_recommendations(id pk, ..., status)
"""

from __future__ import annotations

from dtwin_core.schema_sql import partitions, rollups, tables, timescale
from dtwin_core.schema_sql.base import Backend, Migration, StorageSpec, ident, literal, lock_key, qualified
from dtwin_core.schema_sql.ops import (
    CopyTarget,
    RegistrySync,
    RegistryTable,
    copy_target,
    cutoff,
    drop_schema_sql,
    ensure_partitions_sql,
    grant_writer_sql,
    refresh_rollups_sql,
    retention_sql,
    settings_sql,
    upsert_registry_sql,
)

__all__ = [
    "READER_RELATIONS",
    "Backend",
    "CopyTarget",
    "Migration",
    "RegistrySync",
    "RegistryTable",
    "StorageSpec",
    "copy_target",
    "cutoff",
    "drop_schema_sql",
    "ensure_partitions_sql",
    "grant_writer_sql",
    "ident",
    "literal",
    "lock_key",
    "migrations",
    "qualified",
    "refresh_rollups_sql",
    "retention_sql",
    "settings_sql",
    "upsert_registry_sql",
]

# What the API, the rules engine and Grafana may read; identical on both backends.
READER_RELATIONS = (
    "assets",
    "sensors",
    "telemetry",
    "telemetry_1m",
    "telemetry_1h",
    "telemetry_1d",
    "dead_letters",
    "alerts",
    "predictions",
    "energy_recommendations",
)


def migrations(spec: StorageSpec, backend: Backend) -> list[Migration]:
    """Every migration of the schema, oldest first. Append new ones; never edit or renumber an old one
    (it has already run on existing Sites and will not run again)."""
    if backend == "timescaledb":
        telemetry, aggregates = timescale.telemetry(spec), timescale.rollups(spec)
    else:
        telemetry, aggregates = partitions.telemetry(spec), rollups.rollups(spec)
    return [
        Migration(1, "bootstrap", tables.bootstrap(spec, backend)),
        Migration(2, "registry", tables.registry(spec)),
        Migration(3, "telemetry", telemetry),
        Migration(4, "rollups", aggregates),
        Migration(5, "events", tables.events(spec)),
        Migration(6, "ml", tables.ml(spec)),
    ]
