"""Plain-PostgreSQL telemetry: a table range-partitioned by `ts`, a DEFAULT partition, partition upkeep.

Without TimescaleDB the hypertable becomes declarative partitioning with one partition per
`chunkIntervalHours`, aligned to the Unix epoch in UTC. The DEFAULT partition means no row is ever
rejected for lack of a partition (a device with a wrong clock, a backfill of old history); the next
`ensure_partitions()` moves such rows into a real partition when they are inside the retention
window. Partition creation and retention run as functions inside the schema, so the logic lives
next to the data and any client (the operator, psql, pg_cron) can call it.
"""

from __future__ import annotations

from dtwin_core.schema_sql.base import StorageSpec, ident, literal, qualified

# Partitions are named after their lower bound in UTC, e.g. telemetry_p20260315t00.
PARTITION_NAME = """'telemetry_p' || to_char({lo} AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24')"""


def telemetry(spec: StorageSpec) -> str:
    """The partitioned table, its DEFAULT partition and the partition functions."""
    s = ident(spec.schema)
    table = qualified(spec.schema, "telemetry")
    return f"""-- The primary key is the only index: it serves the dashboard query (one sensor, a time range) and
-- ON CONFLICT, and every further index roughly halves COPY speed. It must contain ts, the partition key.
CREATE TABLE IF NOT EXISTS {table} (
    sensor text NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL,
    CONSTRAINT "telemetry_pkey" PRIMARY KEY (sensor, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS {qualified(spec.schema, "telemetry_default")} PARTITION OF {table} DEFAULT;
{_create_partition(spec)}
{_ensure_partitions(s)}
{_drop_partitions_before(spec)}"""


def _create_partition(spec: StorageSpec) -> str:
    s = ident(spec.schema)
    return f"""CREATE OR REPLACE FUNCTION {s}."create_partition"(p_lo timestamptz, p_hi timestamptz)
RETURNS text LANGUAGE plpgsql AS $fn$
DECLARE
    sch constant text := {literal(spec.schema)};
    part constant text := {PARTITION_NAME.format(lo="p_lo")};
BEGIN
    -- pg_class, not to_regclass(): a name lookup may use a catalog snapshot older than our advisory lock.
    IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = sch AND c.relname = part) THEN
        RETURN NULL;
    END IF;
    -- Built detached, filled with the rows the DEFAULT partition holds for its range, then attached:
    -- CREATE TABLE ... PARTITION OF would fail on those rows instead.
    EXECUTE format('CREATE TABLE %I.%I (LIKE %I."telemetry" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                   sch, part, sch);
    EXECUTE format('WITH moved AS (DELETE FROM %I."telemetry_default" WHERE ts >= $1 AND ts < $2 '
                   'RETURNING sensor, ts, value) INSERT INTO %I.%I (sensor, ts, value) '
                   'SELECT sensor, ts, value FROM moved', sch, sch, part) USING p_lo, p_hi;
    EXECUTE format('ALTER TABLE %I."telemetry" ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   sch, sch, part, p_lo, p_hi);
    RETURN part;
EXCEPTION WHEN invalid_object_definition THEN
    -- "would overlap partition": a partition made under an earlier chunkIntervalHours already serves
    -- part of this range, and keeps serving it; the block's work is rolled back.
    RETURN NULL;
END
$fn$;"""


def _ensure_partitions(s: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION {s}."ensure_partitions"(
    p_from timestamptz, p_to timestamptz, p_span interval, p_keep_after timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $fn$
DECLARE
    origin constant timestamptz := '1970-01-01 00:00:00+00';
    slot timestamptz;
    made text;
BEGIN
    FOR slot IN
        SELECT generate_series(date_bin(p_span, p_from, origin), p_to - interval '1 microsecond', p_span)
        UNION
        -- Retained rows that fell into DEFAULT get their own partition too, so DEFAULT stays small.
        SELECT date_bin(p_span, ts, origin) FROM {s}."telemetry_default" WHERE ts >= p_keep_after AND ts < p_to
        ORDER BY 1
    LOOP
        made := {s}."create_partition"(slot, slot + p_span);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
        END IF;
    END LOOP;
END
$fn$;"""


def _drop_partitions_before(spec: StorageSpec) -> str:
    s = ident(spec.schema)
    # The upper bound is read back from the partition's bound expression; the text is produced and
    # parsed under the same session settings, so the round trip is exact.
    return f"""CREATE OR REPLACE FUNCTION {s}."drop_partitions_before"(p_cutoff timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $fn$
DECLARE
    sch constant text := {literal(spec.schema)};
    part record;
BEGIN
    FOR part IN
        SELECT c.relname AS name,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS upper
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = format('%I."telemetry"', sch)::regclass
        ORDER BY 2
    LOOP
        -- Only partitions entirely older than the cutoff; DEFAULT has no bound (NULL) and is kept.
        IF part.upper <= p_cutoff THEN
            EXECUTE format('DROP TABLE %I.%I', sch, part.name);
            RETURN NEXT part.name;
        END IF;
    END LOOP;
END
$fn$;"""
