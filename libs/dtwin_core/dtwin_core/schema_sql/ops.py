"""Day-to-day SQL against a Site schema: registry sync, the bridge's write path, upkeep, dropping.

All builders are pure. The write path is COPY into a per-connection temp staging table, then one
`INSERT ... SELECT ... ON CONFLICT (sensor, ts) DO NOTHING` into `telemetry`, both in the batch's
transaction. DO NOTHING rather than DO UPDATE: a reading re-sent after a crash or broker redelivery
carries the same value, so there is nothing to update; DO NOTHING also accepts a batch that holds
the same key twice (DO UPDATE aborts the whole batch with "cannot affect row a second time", which
would wedge the bridge in a retry loop), takes no row locks and leaves no dead tuples, and writes
nothing to the rollups' dirty queue for a duplicate. First write wins; a genuine correction of a
stored reading is an explicit UPDATE, which the rollups track too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from dtwin_core.schema_sql import timescale
from dtwin_core.schema_sql.base import Backend, StorageSpec, hours, ident, qualified, ts_literal

RegistryTable = Literal["assets", "sensors"]

# Column name -> PostgreSQL array element type, in table order; `name` is the key. updated_at is set here.
REGISTRY_COLUMNS: dict[RegistryTable, tuple[tuple[str, str], ...]] = {
    "assets": (
        ("name", "text"),
        ("kind", "text"),
        ("display_name", "text"),
        ("floor", "text"),
        ("zone", "text"),
        ("x", "float8"),
        ("y", "float8"),
        ("z", "float8"),
        ("criticality", "text"),
    ),
    "sensors": (
        ("name", "text"),
        ("asset", "text"),
        ("metric", "text"),
        ("unit", "text"),
        ("canonical_unit", "text"),
        ("topic", "text"),
        ("format", "text"),
    ),
}
STAGE_TABLE = "dtwin_telemetry_stage"
PARTITIONS_BEHIND, PARTITIONS_AHEAD = 1, 2


@dataclass(frozen=True)
class RegistrySync:
    """Two statements for one registry table; `$n` is a column's array, in `columns` order."""

    table: RegistryTable
    columns: tuple[str, ...]
    upsert: str  # INSERT ... SELECT FROM unnest($1..$n) ON CONFLICT (name) DO UPDATE (only when changed)
    prune: str  # DELETE rows whose name is not in $1


def upsert_registry_sql(schema: str, table: RegistryTable) -> RegistrySync:
    cols = REGISTRY_COLUMNS[table]
    names = tuple(c for c, _ in cols)
    target = qualified(schema, table)
    arrays = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(cols, start=1))
    rest = names[1:]
    # The WHERE keeps a re-sync of unchanged CRs a no-op, so updated_at means "last changed".
    upsert = (
        f"INSERT INTO {target} AS r ({', '.join(names)})\n"
        f"SELECT * FROM unnest({arrays})\n"
        f"ON CONFLICT (name) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in rest)}, updated_at = now()\n"
        f"WHERE ({', '.join(f'r.{c}' for c in rest)}) IS DISTINCT FROM ({', '.join(f'EXCLUDED.{c}' for c in rest)})"
    )
    prune = f"DELETE FROM {target} WHERE name <> ALL($1::text[])"
    return RegistrySync(table, names, upsert, prune)


@dataclass(frozen=True)
class CopyTarget:
    """How the bridge writes a batch: `create_stage` once per connection, then per batch in ONE
    transaction: `copy_records_to_table(stage_table, schema_name=stage_schema, columns=columns)`
    followed by `merge` (its status "INSERT 0 n" counts new rows; the rest were duplicates)."""

    stage_schema: str
    stage_table: str
    columns: tuple[str, ...]
    create_stage: str
    merge: str


def copy_target(schema: str) -> CopyTarget:
    # The staging table is per connection, not per schema: it only carries rows until the commit
    # (ON COMMIT DELETE ROWS, not WAL-logged), so one connection may write for several Sites.
    columns = ("sensor", "ts", "value")
    create = (
        f"CREATE TEMP TABLE IF NOT EXISTS {ident(STAGE_TABLE)} "
        "(sensor text NOT NULL, ts timestamptz NOT NULL, value double precision NOT NULL) ON COMMIT DELETE ROWS"
    )
    merge = (
        f"INSERT INTO {qualified(schema, 'telemetry')} (sensor, ts, value)\n"
        f"SELECT sensor, ts, value FROM pg_temp.{ident(STAGE_TABLE)}\n"
        "ON CONFLICT (sensor, ts) DO NOTHING"
    )
    return CopyTarget("pg_temp", STAGE_TABLE, columns, create, merge)


def cutoff(spec: StorageSpec, now: datetime) -> datetime:
    """Raw readings before this instant are past retention."""
    return now - timedelta(days=spec.retention_days)


def ensure_partitions_sql(spec: StorageSpec, now: datetime) -> str:
    """Plain PostgreSQL: partitions from one span behind `now` to two ahead, plus any retained slot that
    has rows waiting in DEFAULT. Returns the names of the partitions it created."""
    span = timedelta(hours=spec.chunk_interval_hours)
    lo, hi = now - PARTITIONS_BEHIND * span, now + PARTITIONS_AHEAD * span
    return (
        f'SELECT * FROM {ident(spec.schema)}."ensure_partitions"({ts_literal(lo)}, {ts_literal(hi)}, '
        f"{hours(spec.chunk_interval_hours)}, {ts_literal(cutoff(spec, now))})"
    )


def retention_sql(spec: StorageSpec, backend: Backend, now: datetime) -> list[str]:
    """Drop raw readings (and dead letters) older than retentionDays. Plain PostgreSQL drops whole
    partitions (a partition straddling the cutoff waits for the next run) and deletes from DEFAULT."""
    at = ts_literal(cutoff(spec, now))
    dead = f"DELETE FROM {qualified(spec.schema, 'dead_letters')} WHERE received_at < {at}"
    if backend == "timescaledb":
        return [timescale.drop_chunks(spec, at), dead]
    return [
        f'SELECT * FROM {ident(spec.schema)}."drop_partitions_before"({at})',
        f"DELETE FROM {qualified(spec.schema, 'telemetry_default')} WHERE ts < {at}",
        dead,
    ]


def refresh_rollups_sql(spec: StorageSpec, backend: Backend, now: datetime) -> list[str]:
    """Bring the 1 min / 1 h / 1 d rollups up to date. On TimescaleDB these are CALLs that must run
    outside a transaction block; on plain PostgreSQL one function call (returns the buckets redone)."""
    if backend == "timescaledb":
        return timescale.refresh(spec, ts_literal(cutoff(spec, now)))
    return [f'SELECT {ident(spec.schema)}."refresh_rollups"()']


def settings_sql(spec: StorageSpec, backend: Backend) -> list[str]:
    """Spec-driven settings re-checked on every apply (a migration runs once, the spec may change).
    Plain PostgreSQL reads chunk interval and retention from the spec at maintain() time instead."""
    return [timescale.settings(spec)] if backend == "timescaledb" else []


def grant_writer_sql(schema: str, role: str) -> list[str]:
    """Least privilege for a bridge's database role: write readings and dead letters, nothing else.
    ON CONFLICT (sensor, ts) needs SELECT on its target columns; the rollup queue needs no grant
    (its trigger runs as the schema owner)."""
    s, r = ident(schema), ident(role)
    return [
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT INSERT, SELECT (sensor, ts) ON {qualified(schema, 'telemetry')} TO {r}",
        f"GRANT INSERT ON {qualified(schema, 'dead_letters')} TO {r}",
        f"GRANT USAGE ON SEQUENCE {qualified(schema, 'dead_letters_id_seq')} TO {r}",
    ]


def drop_schema_sql(schema: str) -> str:
    """deletionPolicy: Delete. CASCADE takes the partitions, rollups, functions and (TimescaleDB) jobs."""
    return f"DROP SCHEMA IF EXISTS {ident(schema)} CASCADE"
