"""The schema manager against a real PostgreSQL 15 (fresh database per test, from the `pg_dsn` fixture).

Sessions run with a non-UTC TimeZone and a non-ISO DateStyle on purpose: bucket boundaries, partition
bounds and retention must not depend on the client's settings.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dtwin_core import migrate, schema
from dtwin_core.schema import Migration, StorageSpec

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SPEC = StorageSpec("site_hq", chunk_interval_hours=24, retention_days=2, compress_after_days=1)
VERSIONS = [m.version for m in schema.migrations(SPEC, "postgresql")]  # every migration, oldest first
LATEST = VERSIONS[-1]
SESSION = {"timezone": "America/New_York", "datestyle": "SQL, DMY"}


@asynccontextmanager
async def connect(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(dsn, server_settings=SESSION)
    try:
        yield conn
    finally:
        await conn.close()


def run(dsn: str, body: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
    async def main() -> None:
        async with connect(dsn) as conn:
            await body(conn)

    asyncio.run(main())


async def catalog(conn: asyncpg.Connection, name: str) -> dict[str, list[Any]]:
    """Everything a migration could change in one schema, as comparable data."""
    queries = {
        "relations": "SELECT relname, relkind::text FROM pg_class WHERE relnamespace = $1::regnamespace ORDER BY 1",
        "columns": """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                             pg_get_expr(d.adbin, d.adrelid)
                      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                      WHERE c.relnamespace = $1::regnamespace AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2""",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY 1",
        "constraints": """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
                          WHERE connamespace = $1::regnamespace ORDER BY 1, 2""",
        "triggers": """SELECT tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                       WHERE c.relnamespace = $1::regnamespace ORDER BY 1, 2""",
        "functions": "SELECT proname, md5(prosrc) FROM pg_proc WHERE pronamespace = $1::regnamespace ORDER BY 1",
        "migrations": f"SELECT version, name, backend, applied_at FROM {schema.qualified(name, 'schema_migrations')}",
    }
    out = {}
    for key, sql in queries.items():
        args = [] if key == "migrations" else [schema.ident(name) if "regnamespace" in sql else name]
        out[key] = [tuple(r) for r in await conn.fetch(sql, *args)]
    return out


async def write_batch(conn: asyncpg.Connection, spec: StorageSpec, rows: list[tuple[str, datetime, float]]) -> str:
    """The bridge's write path: COPY into the temp stage, then the ON CONFLICT merge, in one transaction."""
    target = schema.copy_target(spec.schema)
    await conn.execute(target.create_stage)
    async with conn.transaction():
        await conn.copy_records_to_table(
            target.stage_table, records=rows, columns=list(target.columns), schema_name=target.stage_schema
        )
        return str(await conn.execute(target.merge))


def test_detect_backend_is_plain_postgresql_here(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        assert await migrate.detect_backend(conn) == "postgresql"

    run(pg_dsn, body)


def test_create_then_rerun_changes_nothing(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        first = await migrate.apply(conn, SPEC)
        assert first == migrate.ApplyResult("postgresql", VERSIONS, LATEST)
        before = await catalog(conn, SPEC.schema)
        relations = dict(before["relations"])
        for name in schema.READER_RELATIONS:
            assert relations[name] in ("r", "p"), name
        assert relations["telemetry"] == "p"
        # Only the primary key indexes telemetry (RESULTS.md: a second index halves COPY speed).
        assert [i for i, _ in before["indexes"] if i.startswith("telemetry_") and "1" not in i] == [
            "telemetry_default_pkey",
            "telemetry_pkey",
        ]
        second = await migrate.apply(conn, SPEC)
        assert second == migrate.ApplyResult("postgresql", [], LATEST)
        assert await catalog(conn, SPEC.schema) == before

    run(pg_dsn, body)


def test_a_later_migration_applies_only_itself(pg_dsn: str) -> None:
    extra = Migration(
        LATEST + 1, "notes", f"CREATE TABLE IF NOT EXISTS {schema.qualified(SPEC.schema, 'notes')} (id int)"
    )

    def plan(spec: StorageSpec, backend: schema.Backend) -> list[Migration]:
        return [*schema.migrations(spec, backend), extra]

    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        assert await migrate.apply(conn, SPEC, plan=plan) == migrate.ApplyResult("postgresql", [LATEST + 1], LATEST + 1)
        assert await migrate.apply(conn, SPEC, plan=plan) == migrate.ApplyResult("postgresql", [], LATEST + 1)
        assert sorted(await migrate.recorded(conn, SPEC.schema)) == [*VERSIONS, LATEST + 1]

    run(pg_dsn, body)


def test_parallel_applies_end_with_one_set_of_migrations(pg_dsn: str) -> None:
    async def main() -> None:
        async with connect(pg_dsn) as a, connect(pg_dsn) as b, connect(pg_dsn) as c:
            results = await asyncio.gather(*(migrate.apply(conn, SPEC) for conn in (a, b, c)))
            assert sorted(v for r in results for v in r.applied) == VERSIONS
            assert {r.current_version for r in results} == {LATEST}
            rows = await a.fetch(f"SELECT version FROM {schema.qualified(SPEC.schema, 'schema_migrations')}")
            assert sorted(r["version"] for r in rows) == VERSIONS
            # Upkeep from several replicas at once serialises on the same lock.
            await asyncio.gather(*(migrate.maintain(conn, SPEC, NOW) for conn in (a, b, c)))

    asyncio.run(main())


def test_staged_upsert_keeps_one_row_per_key_and_never_rejects(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        result = await migrate.maintain(conn, SPEC, NOW)
        assert result.partitions_created == [f"telemetry_p202603{d:02d}t00" for d in (9, 10, 11, 12)]
        assert result.compression == migrate.COMPRESSION_SKIPPED
        t = NOW.replace(minute=5)
        far_past, far_future = datetime(1999, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
        batch = [("s1", t, 1.0), ("s1", t, 1.0), ("s2", t, 2.0), ("s1", far_past, 3.0), ("s1", far_future, 4.0)]
        assert await write_batch(conn, SPEC, batch) == "INSERT 0 4"
        # A resend after a crash (same values) and a conflicting value: first write wins, nothing added.
        assert await write_batch(conn, SPEC, [("s1", t, 1.0), ("s2", t, 9.0)]) == "INSERT 0 0"
        raw = schema.qualified(SPEC.schema, "telemetry")
        rows = await conn.fetch(f"SELECT sensor, ts, value, tableoid::regclass::text AS part FROM {raw}")
        where = {(r["sensor"], r["ts"]): (r["value"], r["part"].split(".")[-1]) for r in rows}
        assert len(rows) == 4
        assert where[("s1", t)] == (1.0, "telemetry_p20260310t00")
        assert where[("s2", t)] == (2.0, "telemetry_p20260310t00")
        assert where[("s1", far_past)] == (3.0, "telemetry_default")
        assert where[("s1", far_future)] == (4.0, "telemetry_default")

    run(pg_dsn, body)


def test_rows_waiting_in_default_move_into_their_partition(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        later = NOW + timedelta(days=5, hours=3)  # no partition yet: lands in DEFAULT
        await write_batch(conn, SPEC, [("s1", later, 1.0)])
        part = f"SELECT tableoid::regclass::text FROM {schema.qualified(SPEC.schema, 'telemetry')}"
        assert await conn.fetchval(part) == "site_hq.telemetry_default"
        result = await migrate.maintain(conn, SPEC, later)
        assert "telemetry_p20260315t00" in result.partitions_created
        assert await conn.fetchval(part) == "site_hq.telemetry_p20260315t00"
        # A smaller chunk interval later on: overlapping slots are skipped, new ones are 6 h wide.
        small = StorageSpec(SPEC.schema, chunk_interval_hours=6, retention_days=2)
        result = await migrate.maintain(conn, small, later + timedelta(days=1))
        assert result.partitions_created == []  # 16 and 17 March are still served by the 24 h partitions
        result = await migrate.maintain(conn, small, later + timedelta(days=3))
        assert result.partitions_created == [f"telemetry_p202603{h}" for h in ("18t06", "18t12", "18t18", "19t00")]

    run(pg_dsn, body)


def test_retention_drops_old_partitions_and_keeps_recent_data(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        start = NOW - timedelta(days=6)
        for day in range(3):  # partitions as the operator's timer would have made them back then
            await migrate.maintain(conn, SPEC, start + timedelta(days=day))
        rows = [(f"s{i % 3}", start + timedelta(hours=i), float(i)) for i in range(0, 24 * 7)]
        rows.append(("s1", datetime(1999, 1, 1, tzinfo=UTC), 0.5))
        await write_batch(conn, SPEC, rows)
        await conn.execute(
            f"INSERT INTO {schema.qualified(SPEC.schema, 'dead_letters')} (received_at, topic, reason) "
            "VALUES ($1, 't', 'old'), ($2, 't', 'new')",
            start,
            NOW,
        )
        result = await migrate.maintain(conn, SPEC, NOW)
        # cutoff = NOW - 2 days = 8 March 12:00: partitions ending at or before it go, 8 March straddles and stays.
        assert result.dropped == [f"telemetry_p202603{d:02d}t00" for d in (4, 5, 6, 7)]
        assert result.rows_deleted == 2  # the 1999 row in DEFAULT and the old dead letter
        left = await conn.fetch(f"SELECT ts FROM {schema.qualified(SPEC.schema, 'telemetry')}")
        assert min(r["ts"] for r in left) == datetime(2026, 3, 8, tzinfo=UTC)
        assert len(left) == len([r for r in rows if r[1] >= datetime(2026, 3, 8, tzinfo=UTC)])
        assert await conn.fetchval(f"SELECT count(*) FROM {schema.qualified(SPEC.schema, 'dead_letters')}") == 1
        # Rollups are the long-term history: retention leaves them alone.
        assert await conn.fetchval(f"SELECT min(bucket) FROM {schema.qualified(SPEC.schema, 'telemetry_1d')}") < start

    run(pg_dsn, body)


LEVELS = {"telemetry_1m": "date_bin('1 minute', ts, timestamptz '2000-01-01 00:00:00+00')"}


async def direct_vs_rollups(conn: asyncpg.Connection, spec: StorageSpec) -> None:
    """Every rollup equals a GROUP BY on the raw rows, bucket by bucket."""
    tz = schema.literal(spec.timezone)
    buckets = {
        "telemetry_1m": LEVELS["telemetry_1m"],
        "telemetry_1h": f"date_trunc('hour', ts, {tz})",
        "telemetry_1d": f"date_trunc('day', ts, {tz})",
    }
    raw = schema.qualified(spec.schema, "telemetry")
    for table, bucket in buckets.items():
        direct = await conn.fetch(
            f"SELECT {bucket} AS bucket, sensor, count(*) AS count, min(value) AS min, max(value) AS max, "
            f"sum(value) AS sum, avg(value) AS avg FROM {raw} GROUP BY 1, 2 ORDER BY 1, 2"
        )
        rollup = schema.qualified(spec.schema, table)
        stored = await conn.fetch(f"SELECT bucket, sensor, count, min, max, sum, avg FROM {rollup} ORDER BY 1, 2")
        assert [tuple(r) for r in stored] == [tuple(r) for r in direct], table


@pytest.mark.parametrize("timezone", ["UTC", "Europe/Paris", "Asia/Kolkata"])
def test_rollups_equal_a_direct_group_by_including_late_data(pg_dsn: str, timezone: str) -> None:
    spec = StorageSpec("site_hq", chunk_interval_hours=24, retention_days=30, timezone=timezone)
    rng = random.Random(7)
    # Values are multiples of 1/4, so every sum is exact whatever order it is added in; the span covers
    # the European DST change of 29 March 2026.
    start = datetime(2026, 3, 27, 20, 0, tzinfo=UTC)
    now = start + timedelta(days=3)

    def reading(lo: datetime, hours: float) -> tuple[str, datetime, float]:
        ts = lo + timedelta(seconds=rng.randrange(int(hours * 3600)), microseconds=rng.randrange(10**6))
        return (f"s{rng.randrange(4)}", ts, rng.randrange(-400, 400) / 4)

    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, spec)
        await migrate.maintain(conn, spec, now)
        await write_batch(conn, spec, [reading(start, 60) for _ in range(3000)])
        first = await migrate.maintain(conn, spec, now)
        assert first.buckets_refreshed > 1000
        await direct_vs_rollups(conn, spec)
        # Late data into old and new buckets (some keys already stored: ignored), a correction and a delete.
        await write_batch(conn, spec, [reading(start - timedelta(days=1), 40) for _ in range(500)])
        raw = schema.qualified(spec.schema, "telemetry")
        await conn.execute(f"UPDATE {raw} SET value = value + 100 WHERE sensor = 's1' AND ts < $1", start)
        await conn.execute(f"DELETE FROM {raw} WHERE sensor = 's2' AND ts > $1", start + timedelta(hours=30))
        await migrate.maintain(conn, spec, now)
        await direct_vs_rollups(conn, spec)
        # A refresh with nothing new does nothing.
        before = await catalog_rollups(conn, spec)
        assert (await migrate.maintain(conn, spec, now)).buckets_refreshed == 0
        assert await catalog_rollups(conn, spec) == before

    run(pg_dsn, body)


async def catalog_rollups(conn: asyncpg.Connection, spec: StorageSpec) -> list[list[tuple[Any, ...]]]:
    return [
        [
            tuple(r)
            for r in await conn.fetch(f"SELECT *, xmin::text FROM {schema.qualified(spec.schema, t)} ORDER BY 1, 2")
        ]
        for t in ("telemetry_1m", "telemetry_1h", "telemetry_1d")
    ]


def test_drop_removes_the_schema(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        await migrate.maintain(conn, SPEC, NOW)
        assert await migrate.drop(conn, SPEC.schema) is True
        assert await conn.fetchval("SELECT to_regnamespace('site_hq')") is None
        assert await migrate.drop(conn, SPEC.schema) is False
        with pytest.raises(LookupError):
            await migrate.maintain(conn, SPEC, NOW)
        # A Site re-created under the same name starts from scratch, on the same (pooled) connection.
        assert (await migrate.apply(conn, SPEC)).applied == VERSIONS
        assert (await migrate.maintain(conn, SPEC, NOW)).partitions_created

    run(pg_dsn, body)


def test_open_alerts_are_unique_per_dedup_key(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        alerts = schema.qualified(SPEC.schema, "alerts")
        insert = (
            f"INSERT INTO {alerts} (sensor, asset, kind, severity, dedup_key) "
            "VALUES ('s1', 'a1', 'threshold', 'warning', $1)"
        )
        await conn.execute(insert, "s1:high")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, "s1:high")
        await conn.execute(f"UPDATE {alerts} SET state = 'acknowledged', acknowledged_at = now()")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, "s1:high")
        # How the rules engine opens-or-refreshes without racing:
        upsert = insert + " ON CONFLICT (dedup_key) WHERE state <> 'resolved' DO UPDATE SET last_value = 42"
        assert await conn.execute(upsert, "s1:high") == "INSERT 0 1"
        assert await conn.fetchval(f"SELECT count(*) FROM {alerts}") == 1
        await conn.execute(f"UPDATE {alerts} SET state = 'resolved', resolved_at = now()")
        await conn.execute(insert, "s1:high")
        assert await conn.fetchval(f"SELECT count(*) FROM {alerts} WHERE dedup_key = 's1:high'") == 2
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(f"INSERT INTO {alerts} (kind, severity, dedup_key) VALUES ('bogus', 'warning', 'x')")

    run(pg_dsn, body)


def test_dashboard_query_uses_the_key_and_partition_pruning(pg_dsn: str) -> None:
    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        await migrate.maintain(conn, SPEC, NOW)
        raw = schema.qualified(SPEC.schema, "telemetry")
        await conn.execute(
            f"INSERT INTO {raw} SELECT 's' || (i % 50), $1::timestamptz + i * interval '5 seconds', i "
            "FROM generate_series(0, 60000) i",
            NOW - timedelta(days=1),
        )
        await conn.execute(f"ANALYZE {raw}")
        plan = await conn.fetchval(
            f"EXPLAIN (FORMAT JSON) SELECT ts, value FROM {raw} WHERE sensor = 's7' AND ts >= $1 AND ts < $2",
            NOW - timedelta(hours=2),
            NOW,
        )
        nodes: list[dict[str, Any]] = []

        def walk(node: dict[str, Any]) -> None:
            nodes.append(node)
            for child in node.get("Plans", []):
                walk(child)

        walk(json.loads(plan)[0]["Plan"])
        scans = [n for n in nodes if "Relation Name" in n]
        assert [n["Relation Name"] for n in scans] == ["telemetry_p20260310t00"]  # pruned to one partition
        assert scans[0]["Node Type"] in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
        assert any(n.get("Index Name") == "telemetry_p20260310t00_pkey" for n in nodes)

    run(pg_dsn, body)


def test_registry_sync_upserts_changes_and_prunes(pg_dsn: str) -> None:
    assets = [
        {"name": "ahu-1", "kind": "AHU", "floor": "roof", "x": 1.5, "criticality": "High"},
        {"name": "pump-1", "kind": "Pump", "floor": "b1"},
    ]
    sensors = [{"name": "ahu-1-sat", "asset": "ahu-1", "metric": "supply_air_temp", "unit": "degF",
                "canonical_unit": "degC", "topic": "sites/hq/ahu-1/telemetry", "format": "json"}]  # fmt: skip

    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        assert await migrate.sync_registry(conn, SPEC.schema, assets, sensors) == {
            "assets": (2, 0),
            "sensors": (1, 0),
        }
        assert await migrate.sync_registry(conn, SPEC.schema, assets, sensors) == {
            "assets": (0, 0),
            "sensors": (0, 0),
        }
        moved = [{**assets[0], "floor": "l3"}]
        assert await migrate.sync_registry(conn, SPEC.schema, moved, []) == {"assets": (1, 1), "sensors": (0, 1)}
        row = await conn.fetchrow(f"SELECT * FROM {schema.qualified(SPEC.schema, 'assets')}")
        assert (row["name"], row["floor"], row["x"], row["zone"]) == ("ahu-1", "l3", 1.5, None)

    run(pg_dsn, body)


def test_hostile_schema_name_is_quoted_everywhere(pg_dsn: str) -> None:
    spec = StorageSpec('site_o\'k "x"; drop', chunk_interval_hours=12, retention_days=1)

    async def body(conn: asyncpg.Connection) -> None:
        assert (await migrate.apply(conn, spec)).applied == VERSIONS
        result = await migrate.maintain(conn, spec, NOW)
        assert result.partitions_created == [
            "telemetry_p20260310t00",
            "telemetry_p20260310t12",
            "telemetry_p20260311t00",
        ]
        assert await write_batch(conn, spec, [("s1", NOW, 1.0)]) == "INSERT 0 1"
        later = await migrate.maintain(conn, spec, NOW + timedelta(days=3))
        assert later.buckets_refreshed == 1 and later.dropped == result.partitions_created
        assert await migrate.drop(conn, spec.schema) is True
        assert await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'site_%'") == 0

    run(pg_dsn, body)


def test_a_least_privilege_bridge_role_can_write(pg_dsn: str) -> None:
    role = f"bridge_{uuid.uuid4().hex[:8]}"

    async def body(conn: asyncpg.Connection) -> None:
        await migrate.apply(conn, SPEC)
        await migrate.maintain(conn, SPEC, NOW)
        await conn.execute(f"CREATE ROLE {role} LOGIN")
        try:
            for sql in schema.grant_writer_sql(SPEC.schema, role):
                await conn.execute(sql)
            bridge = await asyncpg.connect(pg_dsn, user=role)
            try:
                assert await write_batch(bridge, SPEC, [("s1", NOW, 1.0)]) == "INSERT 0 1"
                dead = schema.qualified(SPEC.schema, "dead_letters")
                await bridge.execute(f"INSERT INTO {dead} (topic, payload, reason) VALUES ('t', 'x', 'bad_json')")
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await bridge.execute(f"DELETE FROM {schema.qualified(SPEC.schema, 'telemetry')}")
            finally:
                await bridge.close()
            assert (await migrate.maintain(conn, SPEC, NOW)).buckets_refreshed == 1
        finally:
            await conn.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")

    run(pg_dsn, body)
