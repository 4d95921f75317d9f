"""All of the bridge's SQL: write one `Batch` in one transaction, and keep retrying until it is committed.

Readings go through `dtwin_core.schema.copy_target`: COPY into a per-connection temporary stage (created by the
pool's `init` on every new connection), then one INSERT ... SELECT ... ON CONFLICT (sensor, ts) DO NOTHING into the
site's telemetry table, so a redelivered message (the broker resends whatever was not acknowledged) adds nothing.
Rejects are COPYed straight into `dead_letters` in the same transaction, so a batch is stored whole or not at all
(a redelivered reject does add a second dead-letter row: they have no natural key, and a duplicate there is
harmless where a lost one is not). `write` never gives up: any error (server down, restarting, connection
reset, serialization failure, timeout) is logged and retried with exponential backoff capped at `max_backoff_s`.
While it retries, the runner stops taking messages, the queue fills and the MQTT thread stops reading.

Alerts (`write_alerts`): the rules engine's events for the site's `alerts` table, in one transaction, in the
order given. `AlertOpened` inserts with ON CONFLICT on the partial unique index `alerts_open_dedup_key`
(`(dedup_key) WHERE state <> 'resolved'`, so the conflict target repeats that predicate for inference) DO
NOTHING: a repeat while the alert is open (a restarted replica re-raising it) adds nothing. `AlertEscalated`
updates the severity and last value of the open row; `AlertResolved` sets it resolved. An update that finds no
open row does nothing. `write_alerts_retrying` retries like `write`, but is called from the alerts task only,
never from the ingest path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from opentelemetry import trace

from dtwin_bridge.batch import Batch
from dtwin_bridge.rules.events import AlertEscalated, AlertOpened, AlertResolved, Event
from dtwin_core.schema import copy_target

log = logging.getLogger(__name__)
T = TypeVar("T")
tracer = trace.get_tracer("dtwin.bridge.db")
DEAD_LETTER_COLUMNS = ("topic", "payload", "reason", "detail", "sensor")


@dataclass
class WriteResult:
    inserted: int  # new telemetry rows (the rest of the batch's readings were already stored)
    attempts: int


class Writer:
    """A small asyncpg pool bound to one site schema."""

    def __init__(self, pool: asyncpg.Pool, schema: str, max_backoff_s: float = 5.0) -> None:
        self.pool, self.schema, self.max_backoff_s = pool, schema, max_backoff_s
        self.target = copy_target(schema)
        self.dead_schema, self.dead_table = schema, "dead_letters"
        self.on_retry: Callable[[BaseException], None] | None = None

    @classmethod
    async def open(cls, dsn: str, schema: str, size: int = 2, max_backoff_s: float = 5.0) -> Writer:
        """Connect, retrying with backoff while the server is unreachable (the bridge may start first)."""
        stage = copy_target(schema).create_stage

        async def init(conn: asyncpg.Connection) -> None:
            await conn.execute(stage)

        delay = 0.1
        while True:
            try:
                pool = await asyncpg.create_pool(
                    dsn, min_size=1, max_size=size, init=init, command_timeout=60, timeout=10
                )
                return cls(pool, schema, max_backoff_s)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
                log.warning("database not reachable (%s); retrying in %.1fs", err, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_backoff_s)

    async def _write_once(self, batch: Batch) -> int:
        span = tracer.start_as_current_span(
            f"COPY {self.schema}.telemetry",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.namespace": self.schema, "db.operation.name": "COPY",
                        "db.operation.batch.size": batch.rows},
        )  # fmt: skip
        with span:
            return await self._copy(batch)

    async def _copy(self, batch: Batch) -> int:
        t = self.target
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = 0
            if batch.readings:
                rows = [(r.sensor, r.ts, r.value) for r in batch.readings]
                await conn.copy_records_to_table(
                    t.stage_table, schema_name=t.stage_schema, columns=t.columns, records=rows
                )
                status = await conn.execute(t.merge)
                inserted = int(status.rsplit(" ", 1)[-1])
            if batch.rejects:
                dead = [(j.topic, j.payload, j.reason.value, j.detail, j.sensor) for j in batch.rejects]
                await conn.copy_records_to_table(
                    self.dead_table, schema_name=self.dead_schema, columns=DEAD_LETTER_COLUMNS, records=dead
                )
            return inserted

    async def _until_done(self, what: Callable[[], str], op: Callable[[], Awaitable[T]]) -> tuple[T, int]:
        """`op()` until it succeeds, with backoff capped at `max_backoff_s`; (its result, attempts).
        Cancellation is the only way out: nothing the bridge took is ever dropped here."""
        delay, attempts = 0.05, 0
        while True:
            attempts += 1
            try:
                return await op(), attempts
            except asyncio.CancelledError:
                raise
            except Exception as err:  # server down, restarting, connection reset, serialization failure, timeout
                log.warning("%s: %r; retry in %.2fs", what(), err, delay)
                if self.on_retry:
                    self.on_retry(err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)

    async def write(self, batch: Batch) -> WriteResult:
        """Store the batch; returns only once it is committed."""
        inserted, attempts = await self._until_done(
            lambda: f"batch {batch.seq} ({batch.rows} rows) not stored", lambda: self._write_once(batch)
        )
        return WriteResult(inserted, attempts)

    async def write_alerts(self, events: Sequence[Event]) -> None:
        """Apply alert events in order, in one transaction (see the module docstring)."""
        a = f'"{self.schema}".alerts'
        open_ = (
            f"INSERT INTO {a} (sensor, asset, kind, severity, state, opened_at, last_value, message, dedup_key) "
            "VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8) "
            "ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO NOTHING"
        )
        escalate = (
            f"UPDATE {a} SET severity = $2, last_value = coalesce($3, last_value), message = $4 "
            "WHERE dedup_key = $1 AND state <> 'resolved'"
        )
        resolve = (
            f"UPDATE {a} SET state = 'resolved', resolved_at = $2, last_value = coalesce($3, last_value), "
            "message = $4 WHERE dedup_key = $1 AND state <> 'resolved'"
        )
        async with self.pool.acquire() as conn, conn.transaction():
            for e in events:
                if isinstance(e, AlertOpened):
                    await conn.execute(
                        open_, e.sensor, e.asset, e.kind, e.severity, e.at, e.value, e.message, e.dedup_key
                    )
                elif isinstance(e, AlertEscalated):
                    await conn.execute(escalate, e.dedup_key, e.severity, e.value, e.message)
                elif isinstance(e, AlertResolved):
                    await conn.execute(resolve, e.dedup_key, e.at, e.value, e.message)

    async def open_alerts(self) -> list[tuple[str, str | None, str, str]]:
        """(kind, sensor, asset, severity) of every alert still open: what a starting replica restores."""
        sql = (
            f"SELECT kind, sensor, asset, severity FROM \"{self.schema}\".alerts WHERE state <> 'resolved' ORDER BY id"
        )
        rows, _ = await self._until_done(lambda: "open alerts not read", lambda: self.pool.fetch(sql))
        return [(r["kind"], r["sensor"], r["asset"], r["severity"]) for r in rows]

    async def write_alerts_retrying(self, events: Sequence[Event]) -> int:
        """`write_alerts` until committed; returns the attempts (called from the alerts task only)."""
        _, attempts = await self._until_done(
            lambda: f"{len(events)} alert events not stored", lambda: self.write_alerts(events)
        )
        return attempts

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout=5)
        except TimeoutError:
            self.pool.terminate()
