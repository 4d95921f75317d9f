"""Applies and maintains a Site's schema over asyncpg: the only module of the schema manager that does I/O.

Everything that changes a schema takes a transaction-scoped advisory lock keyed on the schema name
(`schema.lock_key`), so two operator replicas, or an operator restarted half-way through, serialise
instead of racing; each migration commits together with its `schema_migrations` row, so a crash
leaves either all of a step or none of it. The backend is detected once, when the schema is
created, and recorded with every migration: a schema built on plain PostgreSQL stays so even if
TimescaleDB is installed later. Upkeep (`maintain`) runs each part in its own short transaction
with a lock timeout, so partition DDL never holds up the bridge's inserts for long.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from dtwin_core import schema
from dtwin_core.schema import Backend, Migration, StorageSpec

Plan = Callable[[StorageSpec, Backend], list[Migration]]
COMPRESSION_SKIPPED = "skipped: TimescaleDB is not available; plain PostgreSQL has no native compression"


@dataclass(frozen=True)
class ApplyResult:
    backend: Backend
    applied: list[int]  # versions this call ran (empty when the schema was already current)
    current_version: int


@dataclass(frozen=True)
class MaintainResult:
    backend: Backend
    partitions_created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # partitions (plain) or chunks (TimescaleDB)
    rows_deleted: int = 0  # from the DEFAULT partition and dead_letters
    buckets_refreshed: int = 0  # (sensor, minute) buckets recomputed; 0 on TimescaleDB (jobs do it)
    compression: str = "policy"


async def detect_backend(conn: asyncpg.Connection) -> Backend:
    """TimescaleDB when the extension is installed in this database, or available and preloaded (so
    the bootstrap migration can CREATE it); plain PostgreSQL otherwise."""
    row = await conn.fetchrow(
        """SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') AS installed,
                  EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') AS available,
                  current_setting('shared_preload_libraries') AS preload"""
    )
    assert row is not None
    preloaded = "timescaledb" in [p.strip() for p in row["preload"].split(",")]
    return "timescaledb" if row["installed"] or (row["available"] and preloaded) else "postgresql"


async def _lock(conn: asyncpg.Connection, spec_schema: str, lock_timeout_s: float | None = None) -> None:
    if lock_timeout_s is not None:
        # Waiting behind a long reader for an exclusive lock would queue every insert behind us too.
        await conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", schema.lock_key(spec_schema))


async def recorded(conn: asyncpg.Connection, spec_schema: str) -> dict[int, Backend]:
    """Applied migration versions and the backend each ran on; empty when the schema does not exist."""
    # A plain MVCC query, not to_regclass(): after waiting on the advisory lock, name lookups may still
    # use the transaction's older catalog snapshot and miss a table another replica just created.
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = $1 AND tablename = 'schema_migrations')",
        spec_schema,
    )
    if not exists:
        return {}
    rows = await conn.fetch(f"SELECT version, backend FROM {schema.qualified(spec_schema, 'schema_migrations')}")
    return {r["version"]: r["backend"] for r in rows}


def _check_plan(steps: Sequence[Migration]) -> None:
    versions = [m.version for m in steps]
    if not versions or versions[0] != 1 or any(b <= a for a, b in itertools.pairwise(versions)):
        raise ValueError(f"migration versions must start at 1 and strictly increase: {versions}")


async def apply(conn: asyncpg.Connection, spec: StorageSpec, *, plan: Plan = schema.migrations) -> ApplyResult:
    """Create or upgrade the schema: run each missing migration in its own locked transaction, then
    bring spec-driven settings (TimescaleDB policies) up to date. Safe to call on every reconcile."""
    detected = await detect_backend(conn)
    async with conn.transaction():
        await _lock(conn, spec.schema)
        known = await recorded(conn, spec.schema)
    backend: Backend = next(iter(known.values()), detected)
    steps = plan(spec, backend)
    _check_plan(steps)
    applied: list[int] = []
    for step in steps:
        if step.version in known:  # already applied: a reconcile of a current schema costs two transactions
            continue
        async with conn.transaction():
            await _lock(conn, spec.schema)
            # Re-read under the lock: another replica may have applied it while we waited.
            if step.version in await recorded(conn, spec.schema):
                continue
            await conn.execute(step.sql)
            await conn.execute(
                f"INSERT INTO {schema.qualified(spec.schema, 'schema_migrations')} (version, name, backend) "
                "VALUES ($1, $2, $3)",
                step.version,
                step.name,
                backend,
            )
            applied.append(step.version)
    settings = schema.settings_sql(spec, backend)
    async with conn.transaction():
        await _lock(conn, spec.schema)
        for sql in settings:
            await conn.execute(sql)
        current = max(await recorded(conn, spec.schema))
    return ApplyResult(backend, applied, current)


def _affected(status: str) -> int:
    """Row count from a command tag such as 'DELETE 12'."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


async def _run_all(conn: asyncpg.Connection, statements: Sequence[str]) -> tuple[list[str], int]:
    """Run statements; SELECTs contribute their first column (names), the rest their row counts."""
    names: list[str] = []
    count = 0
    for sql in statements:
        if sql.lstrip().upper().startswith("SELECT"):
            names.extend(str(r[0]) for r in await conn.fetch(sql) if r[0] is not None)
        else:
            count += _affected(await conn.execute(sql))
    return names, count


async def maintain(
    conn: asyncpg.Connection, spec: StorageSpec, now: datetime, *, lock_timeout_s: float = 5.0
) -> MaintainResult:
    """Periodic upkeep (e.g. every minute from the operator's Site timer): partitions ahead of time,
    rollup refresh, retention. Raises if the schema has not been applied yet."""
    known = await recorded(conn, spec.schema)
    if not known:
        raise LookupError(f"schema {spec.schema!r} has not been applied")
    backend: Backend = next(iter(known.values()))
    if backend == "timescaledb":
        return await _maintain_timescale(conn, spec, now, lock_timeout_s)
    async with conn.transaction():
        await _lock(conn, spec.schema, lock_timeout_s)
        created, _ = await _run_all(conn, [schema.ensure_partitions_sql(spec, now)])
    # Refresh before retention: readings that arrive already older than the cutoff are rolled up
    # before their raw rows go, so the rollups keep them as history.
    async with conn.transaction():
        await _lock(conn, spec.schema, lock_timeout_s)
        refreshed = [int(await conn.fetchval(sql)) for sql in schema.refresh_rollups_sql(spec, backend, now)]
    async with conn.transaction():
        await _lock(conn, spec.schema, lock_timeout_s)
        dropped, deleted = await _run_all(conn, schema.retention_sql(spec, backend, now))
    return MaintainResult(backend, created, dropped, deleted, sum(refreshed), COMPRESSION_SKIPPED)


async def _maintain_timescale(
    conn: asyncpg.Connection, spec: StorageSpec, now: datetime, lock_timeout_s: float
) -> MaintainResult:
    async with conn.transaction():
        await _lock(conn, spec.schema, lock_timeout_s)
        dropped, deleted = await _run_all(conn, schema.retention_sql(spec, "timescaledb", now))
    # refresh_continuous_aggregate refuses to run inside a transaction: hold a session lock instead.
    key = schema.lock_key(spec.schema)
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    try:
        for sql in schema.refresh_rollups_sql(spec, "timescaledb", now):
            await conn.execute(sql)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
    return MaintainResult("timescaledb", [], dropped, deleted, 0, "policy")


async def sync_registry(
    conn: asyncpg.Connection,
    spec_schema: str,
    assets: Sequence[Mapping[str, Any]],
    sensors: Sequence[Mapping[str, Any]],
) -> dict[str, tuple[int, int]]:
    """Make `assets` and `sensors` equal to the given rows (one mapping per CR, keys = column names,
    missing keys = NULL) in one transaction. Returns {table: (inserted or changed, deleted)}."""
    result: dict[str, tuple[int, int]] = {}
    async with conn.transaction():
        tables: tuple[tuple[schema.RegistryTable, Sequence[Mapping[str, Any]]], ...] = (
            ("assets", assets),
            ("sensors", sensors),
        )
        for table, rows in tables:
            sync = schema.upsert_registry_sql(spec_schema, table)
            arrays = [[row.get(col) for row in rows] for col in sync.columns]
            changed = _affected(await conn.execute(sync.upsert, *arrays))
            deleted = _affected(await conn.execute(sync.prune, arrays[0]))
            result[table] = (changed, deleted)
    return result


async def drop(conn: asyncpg.Connection, spec_schema: str) -> bool:
    """deletionPolicy Delete: drop the schema and everything in it. Returns whether it existed."""
    async with conn.transaction():
        await _lock(conn, spec_schema)
        existed = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", spec_schema)
        await conn.execute(schema.drop_schema_sql(spec_schema))
    return bool(existed)
