"""Plain-PostgreSQL rollups: `telemetry_1m`, `telemetry_1h`, `telemetry_1d` kept exact incrementally.

Statement-level triggers on `telemetry` record which (sensor, minute) buckets an INSERT, UPDATE or
DELETE touched in `rollup_dirty`; `refresh_rollups()` consumes that queue and recomputes only those
buckets: 1 min from raw rows, 1 h from 1 min, 1 d from 1 h. A time watermark would miss late data;
the queue catches a reading for last Tuesday just like one for now. Rebuilding a bucket from its
children gives exactly what a GROUP BY on raw rows gives (count, min and max exactly; sum and avg up
to float rounding order). `rollup_dirty` has no index on purpose: its writers never conflict with
the refresh's DELETE, so ingest never waits on it. Maintenance deletes straight from partitions
(moving DEFAULT rows, retention), which bypasses the parent's statement triggers: retention is
meant to leave the rollups as the long-term history.
"""

from __future__ import annotations

from dtwin_core.schema_sql.base import StorageSpec, ident, literal, lock_key, qualified

# Minute buckets are UTC-aligned (every zone's offset is a whole number of minutes); hour and day
# buckets follow the Site's time zone, so "today" on the dashboard is the site's local day.
MINUTE = "date_bin('1 minute', {ts}, timestamptz '2000-01-01 00:00:00+00')"
ROLLUPS = ("telemetry_1m", "telemetry_1h", "telemetry_1d")
KEYS = "pg_temp.dtwin_rollup_keys"


def rollups(spec: StorageSpec) -> str:
    """Dirty queue, rollup tables, the triggers that fill the queue and the refresh function."""
    s = ident(spec.schema)
    table = qualified(spec.schema, "telemetry")
    tables = "\n".join(_rollup_table(spec, name) for name in ROLLUPS)
    triggers = "\n".join(
        f'CREATE OR REPLACE TRIGGER "telemetry_rollup_{op.lower()}" AFTER {op} ON {table}\n'
        f'    REFERENCING {refs} FOR EACH STATEMENT EXECUTE FUNCTION {s}."track_rollup_dirty"();'
        for op, refs in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        )
    )
    return f"""CREATE TABLE IF NOT EXISTS {qualified(spec.schema, "rollup_dirty")} (
    sensor text NOT NULL,
    bucket timestamptz NOT NULL
);
{tables}
-- SECURITY DEFINER: a bridge role allowed to INSERT into telemetry needs no grant on the queue; the
-- fixed search_path and qualified names keep that safe.
CREATE OR REPLACE FUNCTION {s}."track_rollup_dirty"() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- Transition tables exist only for the events their trigger names; the branches never touch a missing one.
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO {s}."rollup_dirty" (sensor, bucket) SELECT DISTINCT sensor, {MINUTE.format(ts="ts")} FROM new_rows;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO {s}."rollup_dirty" (sensor, bucket) SELECT DISTINCT sensor, {MINUTE.format(ts="ts")} FROM old_rows;
    END IF;
    RETURN NULL;
END
$fn$;
{triggers}
{_refresh_function(spec)}"""


def _rollup_table(spec: StorageSpec, name: str) -> str:
    # avg is derived, so the stored columns can be re-aggregated exactly (sum of sums, sum of counts).
    return f"""CREATE TABLE IF NOT EXISTS {qualified(spec.schema, name)} (
    bucket timestamptz NOT NULL,
    sensor text NOT NULL,
    count bigint NOT NULL,
    min double precision NOT NULL,
    max double precision NOT NULL,
    sum double precision NOT NULL,
    avg double precision GENERATED ALWAYS AS (sum / count) STORED,
    PRIMARY KEY (sensor, bucket)
);"""


def _level(spec: StorageSpec, target: str, source: str, unit: str | None) -> str:
    """Upsert the recomputed buckets of one level, then delete the ones that no longer have data."""
    tz = literal(spec.timezone)
    if unit is None:  # 1 min from raw readings
        key, time, window, match = "bucket", "ts", "1 minute", ""
        aggs = "count(*), min(x.value), max(x.value), sum(x.value)"
    else:
        key, time = f"date_trunc('{unit}', bucket, {tz})", "bucket"
        # Local hours and days are not always 60 min / 24 h (DST, half-hour shifts): scan a wider range
        # and keep exactly the children whose own truncation is the bucket.
        utc = spec.timezone == "UTC"
        window = {"hour": "1 hour" if utc else "90 minutes", "day": "24 hours" if utc else "26 hours"}[unit]
        match = f" AND date_trunc('{unit}', x.bucket, {tz}) = k.bucket"
        aggs = "sum(x.count)::bigint, min(x.min), max(x.max), sum(x.sum)"
    keys = f"(SELECT DISTINCT sensor, {key} AS bucket FROM {KEYS}) k"
    children = f"x.sensor = k.sensor AND x.{time} >= k.bucket AND x.{time} < k.bucket + interval '{window}'{match}"
    t, src = qualified(spec.schema, target), qualified(spec.schema, source)
    return f"""    INSERT INTO {t} AS r (bucket, sensor, count, min, max, sum)
    SELECT k.bucket, k.sensor, {aggs}
    FROM {keys} JOIN {src} x ON {children}
    GROUP BY k.bucket, k.sensor
    ON CONFLICT (sensor, bucket) DO UPDATE
        SET count = EXCLUDED.count, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum
        WHERE (r.count, r.min, r.max, r.sum)
              IS DISTINCT FROM (EXCLUDED.count, EXCLUDED.min, EXCLUDED.max, EXCLUDED.sum);
    DELETE FROM {t} r USING {keys}
    WHERE r.sensor = k.sensor AND r.bucket = k.bucket
      AND NOT EXISTS (SELECT 1 FROM {src} x WHERE {children});"""


def _refresh_function(spec: StorageSpec) -> str:
    s = ident(spec.schema)
    levels = "\n".join(
        (
            _level(spec, "telemetry_1m", "telemetry", None),
            _level(spec, "telemetry_1h", "telemetry_1m", "hour"),
            _level(spec, "telemetry_1d", "telemetry_1h", "day"),
        )
    )
    # client_min_messages: CREATE TEMP TABLE IF NOT EXISTS would otherwise send a NOTICE on every call.
    return f"""CREATE OR REPLACE FUNCTION {s}."refresh_rollups"() RETURNS bigint LANGUAGE plpgsql
SET client_min_messages = warning AS $fn$
DECLARE
    n bigint;
BEGIN
    -- One refresher per schema at a time (two operator replicas); re-entrant for the maintain() caller.
    PERFORM pg_advisory_xact_lock({lock_key(spec.schema)});
    CREATE TEMP TABLE IF NOT EXISTS dtwin_rollup_keys (sensor text NOT NULL, bucket timestamptz NOT NULL)
        ON COMMIT DROP;
    TRUNCATE {KEYS};
    -- Only committed queue rows are taken; a writer committing meanwhile keeps its row for next time.
    WITH taken AS (DELETE FROM {s}."rollup_dirty" RETURNING sensor, bucket)
    INSERT INTO {KEYS} SELECT DISTINCT sensor, bucket FROM taken;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    ANALYZE {KEYS};
{levels}
    RETURN n;
END
$fn$;"""
