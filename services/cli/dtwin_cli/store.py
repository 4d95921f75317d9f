"""The import's database side: the bridge's `Writer` on a pool the CLI opens, dead-letter dedup, rollup refresh.

Batches go through `dtwin_bridge.db.Writer` unchanged: readings COPYed into the per-connection stage, then
`INSERT ... ON CONFLICT (sensor, ts) DO NOTHING` into the site's telemetry (primary key (sensor, ts)), rejects
COPYed into `dead_letters`, one transaction per batch. DO NOTHING is what makes a re-import idempotent: a reading
already stored is not inserted again (first write wins), and the merge's row count tells new from known.
Dead letters have no key, so the writer would store a re-imported file's rejects again; the import skips the
ones whose topic (`csv:<file>@<content hash>#L<line>`) is already in `dead_letters`, read once at start.

Unlike the bridge, which must outlive a database restart, a command gives up: `Writer.open` would wait forever
for a wrong DSN, so the pool is opened here once, and the writer's retry hook aborts after `MAX_RETRIES`.
After the import, `refresh` brings the 1 min / 1 h / 1 d rollups up to date: on plain PostgreSQL the
telemetry triggers queued exactly the imported (sensor, minute) buckets, and `refresh_rollups()` (the function
the operator's maintenance calls) recomputes them; on TimescaleDB the continuous aggregates are refreshed from
the first imported timestamp on.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from dtwin_bridge.db import Writer
from dtwin_cli.errors import CliError
from dtwin_core import migrate, schema
from dtwin_core.schema import Backend, StorageSpec
from dtwin_core.schema_sql import timescale
from dtwin_core.schema_sql.base import ts_literal

MAX_RETRIES = 5


async def open_writer(dsn: str, spec: StorageSpec) -> tuple[Writer, Backend]:
    """A one-connection writer for the site schema; CliError when the database or the schema is not there."""
    stage = schema.copy_target(spec.schema).create_stage

    async def init(conn: asyncpg.Connection) -> None:
        await conn.execute(stage)

    try:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, init=init, command_timeout=300, timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
        raise CliError(f"cannot connect to the database ({_redact(dsn)}): {err}; pass --dsn") from None
    async with pool.acquire() as conn:
        known = await migrate.recorded(conn, spec.schema)
    if not known:
        await pool.close()
        raise CliError(f"schema {spec.schema} does not exist in {_redact(dsn)}: is the Site Ready (its storage "
                       "created by the operator), and is this its database?")  # fmt: skip
    writer = Writer(pool, spec.schema, max_backoff_s=2.0)
    attempts = [0]

    def give_up(err: BaseException) -> None:
        attempts[0] += 1
        if attempts[0] >= MAX_RETRIES:
            raise CliError(f"writing to {spec.schema} failed {attempts[0]} times, last: {err!r}") from err

    writer.on_retry = give_up
    return writer, next(iter(known.values()))


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    head, at, tail = dsn.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return dsn
    scheme, _, user = head.rpartition("//")
    return f"{scheme}//{user.split(':', 1)[0]}:***@{tail}"


async def dead_topics(writer: Writer, prefix: str) -> set[str]:
    """Topics of the dead letters an earlier import of this very file (same content hash) already stored."""
    sql = f"SELECT DISTINCT topic FROM {schema.qualified(writer.schema, 'dead_letters')} WHERE starts_with(topic, $1)"
    return {r["topic"] for r in await writer.pool.fetch(sql, prefix + "#")}


async def refresh(writer: Writer, spec: StorageSpec, backend: Backend, since: datetime | None) -> int:
    """Bring the rollups up to date for what was imported; returns the minute buckets recomputed (plain
    PostgreSQL) or 0 (TimescaleDB reports none)."""
    if backend == "timescaledb":
        if since is not None:
            async with writer.pool.acquire() as conn:
                for sql in timescale.refresh(spec, ts_literal(since)):  # CALLs: outside a transaction
                    await conn.execute(sql)
        return 0
    async with writer.pool.acquire() as conn, conn.transaction():
        # A backfill of months for a few sensors makes the dirty queue long; the planner then joins it to the raw
        # rows by sensor only (merge join, ts as a filter): O(readings x buckets), over 5 minutes for 130k readings.
        # Fresh statistics and no merge/hash joins, for this transaction only, leave the per-bucket index range
        # scan of the (sensor, ts) key: seconds. (The operator's periodic refresh sees short queues.)
        await conn.execute(f"ANALYZE {schema.qualified(spec.schema, 'telemetry')}")
        await conn.execute("SET LOCAL enable_mergejoin = off")
        await conn.execute("SET LOCAL enable_hashjoin = off")
        total = 0
        for sql in schema.refresh_rollups_sql(spec, backend, since or datetime.now().astimezone()):
            total += int(await conn.fetchval(sql) or 0)
        return total
