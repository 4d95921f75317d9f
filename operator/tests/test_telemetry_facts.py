"""The health queries against a real PostgreSQL 15 and a site schema built by `dtwin_core.migrate`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from dtwin_core import migrate
from dtwin_core.schema import StorageSpec, copy_target
from dtwin_operator.db import telemetry_facts
from dtwin_operator.health import LastReading, OpenAlertCount, RejectCount

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SPEC = StorageSpec("site_hq", chunk_interval_hours=24, retention_days=30)


def run(dsn: str, body: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
    async def main() -> None:
        # A non-UTC session: timestamps must come back as the same instants whatever the client's zone.
        conn = await asyncpg.connect(dsn, server_settings={"timezone": "America/New_York"})
        try:
            await migrate.apply(conn, SPEC)
            await migrate.maintain(conn, SPEC, NOW)
            await body(conn)
        finally:
            await conn.close()

    asyncio.run(main())


async def insert_readings(conn: asyncpg.Connection, rows: list[tuple[str, datetime, float]]) -> None:
    target = copy_target(SPEC.schema)
    await conn.execute(target.create_stage)
    async with conn.transaction():
        await conn.copy_records_to_table(
            target.stage_table, records=rows, columns=list(target.columns), schema_name=target.stage_schema
        )
        await conn.execute(target.merge)


def test_newest_reading_per_sensor_recent_old_and_none(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        minutes = [NOW - timedelta(minutes=m) for m in range(0, 120)]
        await insert_readings(
            conn,
            [("fresh", ts, float(i)) for i, ts in enumerate(minutes)]
            # Only readings older than the lookback: found by the unrestricted second probe.
            + [("quiet", NOW - timedelta(days=5, minutes=m), 100.0 + m) for m in range(10)]
            + [("other", NOW, 7.0)],
        )
        rows = await telemetry_facts.read(conn, SPEC.schema, ["fresh", "quiet", "never"], [], NOW)
        assert sorted(rows.readings, key=lambda r: r.sensor) == [
            LastReading("fresh", NOW, 0.0),
            LastReading("quiet", NOW - timedelta(days=5), 100.0),
        ]
        assert rows.readings[0].ts.tzinfo is not None

    run(pg_dsn, body)


def test_newest_reading_probes_the_primary_key_not_the_table(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        start = NOW - timedelta(days=3)
        rows = [(f"s{k}", start + timedelta(seconds=30 * i), float(i)) for k in range(4) for i in range(8000)]
        await insert_readings(conn, rows)
        await conn.execute(f"ANALYZE {SPEC.schema}.telemetry")
        sql = telemetry_facts.last_readings_sql(SPEC.schema)
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}", ["s0", "s1", "s2", "s3"], NOW - timedelta(hours=6)
            )
        )
        assert "Seq Scan on telemetry" not in plan, plan
        assert "Index Scan Backward" in plan or "Index Only Scan Backward" in plan, plan
        # The lookback prunes partitions entirely older than it from the first probe: the oldest one (the
        # day before `since`) appears once, in the unrestricted probe, which is gated by a one-time filter
        # and never runs when every sensor reported within the lookback.
        assert plan.count("telemetry_p20260309t00_pkey") == 1, plan
        assert re.search(r"One-Time Filter: \(\w+\.ts IS NULL\)", plan), plan
        assert "never executed" in plan, plan

    run(pg_dsn, body)


def test_open_alerts_are_counted_by_sensor_asset_and_severity(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        rows = [
            ("t1", "pump", "threshold", "warning", "open", "t1:threshold"),
            ("t1", "pump", "stale", "critical", "acknowledged", "t1:stale"),
            ("t2", "pump", "threshold", "warning", "open", "t2:threshold"),
            ("t2", "pump", "stale", "warning", "open", "t2:stale"),
            (None, "pump", "offline", "critical", "open", "pump:offline"),
            ("t1", "pump", "threshold", "critical", "resolved", "t1:threshold"),
        ]
        await conn.executemany(
            f"INSERT INTO {SPEC.schema}.alerts (sensor, asset, kind, severity, state, dedup_key) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            rows,
        )
        got = await telemetry_facts.read(conn, SPEC.schema, ["t1", "t2"], [], NOW)
        assert sorted(got.alerts, key=lambda a: (a.sensor or "", a.severity)) == [
            OpenAlertCount(None, "pump", "critical", 1),
            OpenAlertCount("t1", "pump", "critical", 1),
            OpenAlertCount("t1", "pump", "warning", 1),
            OpenAlertCount("t2", "pump", "warning", 2),
        ]

    run(pg_dsn, body)


def test_dead_letters_in_the_window_by_sensor_or_topic(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        recent, old = NOW - timedelta(minutes=5), NOW - timedelta(minutes=16)
        rows = [
            (recent, "sites/hq/pump", "out_of_range", "t1"),
            (recent, "sites/hq/pump", "out_of_range", "t1"),
            (old, "sites/hq/pump", "out_of_range", "t1"),  # outside the 15 min window
            (recent, "sites/hq/pump", "malformed", None),  # payload refused before a sensor was known
            (recent, "sites/hq/unbound", "no_route", None),  # nobody's topic
            (recent, "sites/hq/fan", "out_of_range", "not-mine"),
        ]
        await conn.executemany(
            f"INSERT INTO {SPEC.schema}.dead_letters (received_at, topic, reason, sensor) VALUES ($1, $2, $3, $4)", rows
        )
        got = await telemetry_facts.read(conn, SPEC.schema, ["t1", "t2"], ["sites/hq/pump"], NOW)
        assert sorted(got.rejects, key=lambda r: r.sensor or "") == [
            RejectCount(None, "sites/hq/pump", 1),
            RejectCount("t1", "sites/hq/pump", 2),
        ]

    run(pg_dsn, body)


def test_a_schema_not_created_yet_raises_undefined_table(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        try:
            await telemetry_facts.read(conn, "site_nope", ["t1"], [], NOW)
        except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
            return
        raise AssertionError("expected an undefined-table error")

    run(pg_dsn, body)
