"""Unit tests of the pure schema builders: versions, idempotent DDL, quoting, and the upkeep SQL."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest

from dtwin_core import schema
from dtwin_core.schema import StorageSpec

SPEC = StorageSpec("site_hq", chunk_interval_hours=24, retention_days=365, compress_after_days=7)
NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
BACKENDS: tuple[schema.Backend, ...] = ("postgresql", "timescaledb")


@pytest.mark.parametrize("backend", BACKENDS)
def test_versions_start_at_one_and_strictly_increase(backend: schema.Backend) -> None:
    versions = [m.version for m in schema.migrations(SPEC, backend)]
    assert versions[0] == 1
    assert all(b > a for a, b in itertools.pairwise(versions))


def test_both_backends_share_versions_and_names() -> None:
    plain, ts = (schema.migrations(SPEC, b) for b in BACKENDS)
    assert [(m.version, m.name) for m in plain] == [(m.version, m.name) for m in ts]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_create_is_idempotent(backend: schema.Backend) -> None:
    for m in schema.migrations(SPEC, backend):
        code = re.sub(r"--[^\n]*", "", m.sql)
        # Statements built at run time inside plpgsql ('CREATE TABLE %I...') are preceded by a quote.
        for stmt in re.findall(r"(?<!')\bCREATE\b[^(;$]*", code):
            assert re.match(r"CREATE (OR REPLACE|(UNIQUE )?INDEX IF NOT EXISTS|\w+( \w+)? IF NOT EXISTS)", stmt), (
                m.name,
                stmt,
            )


@pytest.mark.parametrize("backend", BACKENDS)
def test_telemetry_gets_no_index_besides_its_key(backend: schema.Backend) -> None:
    ddl = "\n".join(m.sql for m in schema.migrations(SPEC, backend))
    assert "PRIMARY KEY (sensor, ts)" in ddl
    indexes = re.findall(r"CREATE (?:UNIQUE )?INDEX[^;]*", ddl)
    assert indexes and not [i for i in indexes if '"telemetry"' in i]


def test_reader_relations_are_created_on_both_backends() -> None:
    for backend in BACKENDS:
        ddl = "\n".join(m.sql for m in schema.migrations(SPEC, backend))
        for name in schema.READER_RELATIONS:
            assert f'"site_hq"."{name}"' in ddl, (backend, name)


def test_alerts_dedup_index_is_partial() -> None:
    ddl = next(m.sql for m in schema.migrations(SPEC, "postgresql") if m.name == "events")
    assert 'ON "site_hq"."alerts" (dedup_key) WHERE state <> \'resolved\'' in ddl


def test_timescale_uses_spec_values() -> None:
    spec = StorageSpec(
        "site_hq", chunk_interval_hours=6, retention_days=30, compress_after_days=3, timezone="Europe/Paris"
    )
    ddl = "\n".join(m.sql for m in schema.migrations(spec, "timescaledb"))
    assert "chunk_time_interval => interval '6 hours'" in ddl
    assert "create_default_indexes => false" in ddl
    assert "CREATE EXTENSION IF NOT EXISTS timescaledb" in ddl
    assert "time_bucket(interval '1 minute', ts)" in ddl
    assert "time_bucket(interval '1 day', ts, timezone => 'Europe/Paris')" in ddl
    # start_offset capped by retention (30 days = 720 hours) for the daily aggregate
    assert "start_offset => interval '720 hours'" in ddl
    (settings,) = schema.settings_sql(spec, "timescaledb")
    assert "add_retention_policy('\"site_hq\".\"telemetry\"'::regclass, interval '30 days')" in settings
    assert "add_compression_policy('\"site_hq\".\"telemetry\"'::regclass, interval '3 days')" in settings
    assert schema.settings_sql(spec, "postgresql") == []


def test_quoting() -> None:
    assert schema.ident('we"ird') == '"we""ird"'
    assert schema.literal("o'clock") == "'o''clock'"
    assert schema.qualified("a b", "t") == '"a b"."t"'
    assert (
        schema.drop_schema_sql('site_x"; DROP TABLE y; --')
        == 'DROP SCHEMA IF EXISTS "site_x""; DROP TABLE y; --" CASCADE'
    )
    hostile = StorageSpec("site_o'k\"x")
    ddl = "\n".join(m.sql for m in schema.migrations(hostile, "postgresql"))
    assert 'CREATE SCHEMA IF NOT EXISTS "site_o\'k""x";' in ddl
    assert "sch constant text := 'site_o''k\"x';" in ddl


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schema": "s" * 64}, "1..63 bytes"),
        ({"schema": ""}, "1..63 bytes"),
        ({"schema": "a$fn$b"}, "must not contain"),
        ({"schema": "s", "chunk_interval_hours": 0}, ">= 1"),
        ({"schema": "s", "timezone": "Europe/Paris'; --"}, "IANA"),
    ],
)
def test_spec_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        StorageSpec(**kwargs)  # type: ignore[arg-type]


def test_lock_key_is_stable_signed_bigint_per_schema() -> None:
    assert schema.lock_key("site_hq") == schema.lock_key("site_hq")
    assert schema.lock_key("site_hq") != schema.lock_key("site_plant")
    assert -(2**63) <= schema.lock_key("site_hq") < 2**63


def test_copy_target_stages_then_merges_with_do_nothing() -> None:
    target = schema.copy_target("site_hq")
    assert (target.stage_schema, target.stage_table, target.columns) == (
        "pg_temp",
        "dtwin_telemetry_stage",
        ("sensor", "ts", "value"),
    )
    assert target.create_stage.startswith("CREATE TEMP TABLE IF NOT EXISTS")
    assert target.create_stage.endswith("ON COMMIT DELETE ROWS")
    assert target.merge == (
        'INSERT INTO "site_hq"."telemetry" (sensor, ts, value)\n'
        'SELECT sensor, ts, value FROM pg_temp."dtwin_telemetry_stage"\n'
        "ON CONFLICT (sensor, ts) DO NOTHING"
    )


def test_registry_sync_sql() -> None:
    assets = schema.upsert_registry_sql("site_hq", "assets")
    assert assets.columns[0] == "name" and len(assets.columns) == 9
    assert 'INSERT INTO "site_hq"."assets"' in assets.upsert
    assert "unnest($1::text[], $2::text[]" in assets.upsert and "$6::float8[]" in assets.upsert
    assert "ON CONFLICT (name) DO UPDATE" in assets.upsert and "IS DISTINCT FROM" in assets.upsert
    assert assets.prune == 'DELETE FROM "site_hq"."assets" WHERE name <> ALL($1::text[])'
    sensors = schema.upsert_registry_sql("site_hq", "sensors")
    assert sensors.columns == ("name", "asset", "metric", "unit", "canonical_unit", "topic", "format")


def test_ensure_partitions_window() -> None:
    assert schema.ensure_partitions_sql(SPEC, NOW) == (
        'SELECT * FROM "site_hq"."ensure_partitions"('
        "timestamptz '2026-03-14T12:00:00+00:00', timestamptz '2026-03-17T12:00:00+00:00', "
        "interval '24 hours', timestamptz '2025-03-15T12:00:00+00:00')"
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        schema.ensure_partitions_sql(SPEC, datetime(2026, 3, 15))


def test_retention_sql() -> None:
    cutoff = "timestamptz '2025-03-15T12:00:00+00:00'"
    assert schema.retention_sql(SPEC, "postgresql", NOW) == [
        f'SELECT * FROM "site_hq"."drop_partitions_before"({cutoff})',
        f'DELETE FROM "site_hq"."telemetry_default" WHERE ts < {cutoff}',
        f'DELETE FROM "site_hq"."dead_letters" WHERE received_at < {cutoff}',
    ]
    assert schema.retention_sql(SPEC, "timescaledb", NOW)[0] == (
        f'SELECT drop_chunks(\'"site_hq"."telemetry"\'::regclass, older_than => {cutoff})'
    )


def test_refresh_rollups_sql() -> None:
    assert schema.refresh_rollups_sql(SPEC, "postgresql", NOW) == ['SELECT "site_hq"."refresh_rollups"()']
    calls = schema.refresh_rollups_sql(SPEC, "timescaledb", NOW)
    assert [c.split("(")[1].split(",")[0] for c in calls] == [
        '\'"site_hq"."telemetry_1m"\'',
        '\'"site_hq"."telemetry_1h"\'',
        '\'"site_hq"."telemetry_1d"\'',
    ]
    assert all(c.startswith("CALL refresh_continuous_aggregate(") for c in calls)


def test_plain_rollups_follow_the_site_time_zone() -> None:
    utc = schema.migrations(SPEC, "postgresql")[3].sql
    kolkata = schema.migrations(StorageSpec("site_hq", timezone="Asia/Kolkata"), "postgresql")[3].sql
    assert "date_trunc('hour', bucket, 'UTC')" in utc and "interval '1 hour'" in utc
    assert "date_trunc('day', bucket, 'Asia/Kolkata')" in kolkata and "interval '26 hours'" in kolkata
    # three statement-level triggers feed the dirty queue; the queue has no index
    assert utc.count("FOR EACH STATEMENT") == 3
    assert "rollup_dirty" not in "".join(re.findall(r"CREATE (?:UNIQUE )?INDEX[^;]*", utc))


def test_writer_grants_are_least_privilege() -> None:
    assert schema.grant_writer_sql("site_hq", "bridge-hq") == [
        'GRANT USAGE ON SCHEMA "site_hq" TO "bridge-hq"',
        'GRANT INSERT, SELECT (sensor, ts) ON "site_hq"."telemetry" TO "bridge-hq"',
        'GRANT INSERT ON "site_hq"."dead_letters" TO "bridge-hq"',
        'GRANT USAGE ON SEQUENCE "site_hq"."dead_letters_id_seq" TO "bridge-hq"',
    ]
