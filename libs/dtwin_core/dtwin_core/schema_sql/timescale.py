"""TimescaleDB telemetry: a hypertable, continuous aggregates, compression and retention policies.

Used when the extension is installed (or preloaded and installable). Readers see the same names as
on plain PostgreSQL: `telemetry(sensor, ts, value)` and `telemetry_1m/1h/1d(bucket, sensor, count,
min, max, sum, avg)`. The aggregates are built from raw rows (not from each other), which works on
every TimescaleDB 2.x that has time-zone-aware `time_bucket` (2.8+). Policy values come from the
Site spec and are re-checked on every apply by `settings()`, because a migration runs only once but
the spec can change. Not exercised against a live TimescaleDB in this repository's tests (the
extension is not installable here); the unit tests pin the statements.
"""

from __future__ import annotations

from dtwin_core.schema_sql.base import StorageSpec, hours, literal, qualified

# Continuous-aggregate policies: (bucket, start_offset, end_offset, schedule_interval). start_offset is
# capped at the retention period so a policy never recomputes a window whose raw rows were dropped.
POLICIES = {
    "telemetry_1m": ("1 minute", 24, "1 minute", "1 minute"),
    "telemetry_1h": ("1 hour", 72, "1 hour", "15 minutes"),
    "telemetry_1d": ("1 day", 24 * 35, "1 day", "1 hour"),
}


def _regclass(spec: StorageSpec, name: str) -> str:
    return literal(qualified(spec.schema, name)) + "::regclass"


def telemetry(spec: StorageSpec) -> str:
    """Hypertable with only the (sensor, ts) key: Timescale's default ts index would be redundant."""
    table = qualified(spec.schema, "telemetry")
    return f"""CREATE TABLE IF NOT EXISTS {table} (
    sensor text NOT NULL,
    ts timestamptz NOT NULL,
    value double precision NOT NULL,
    CONSTRAINT "telemetry_pkey" PRIMARY KEY (sensor, ts)
);
SELECT create_hypertable({_regclass(spec, "telemetry")}, 'ts',
    chunk_time_interval => {hours(spec.chunk_interval_hours)}, create_default_indexes => false, if_not_exists => true);
-- Segment by sensor, order by time: the dashboard reads one sensor's range, which then decompresses
-- one segment per chunk.
ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'sensor',
    timescaledb.compress_orderby = 'ts');
"""


def rollups(spec: StorageSpec) -> str:
    """Three continuous aggregates with real-time aggregation, each refreshed by its own policy."""
    tz = "" if spec.timezone == "UTC" else f", timezone => {literal(spec.timezone)}"
    parts = []
    for name, (width, start_h, end, every) in POLICIES.items():
        bucket_tz = tz if width != "1 minute" else ""
        start = hours(min(start_h, spec.retention_days * 24))
        parts.append(f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {qualified(spec.schema, name)}
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(interval '{width}', ts{bucket_tz}) AS bucket, sensor,
       count(*) AS count, min(value) AS min, max(value) AS max, sum(value) AS sum, avg(value) AS avg
FROM {qualified(spec.schema, "telemetry")}
GROUP BY 1, 2
WITH NO DATA;
SELECT add_continuous_aggregate_policy({_regclass(spec, name)}, start_offset => {start},
    end_offset => interval '{end}', schedule_interval => interval '{every}', if_not_exists => true);""")
    return "\n".join(parts) + "\n"


def settings(spec: StorageSpec) -> str:
    """Bring chunk interval, compression and retention policies to the spec's values; a no-op when equal."""
    table = _regclass(spec, "telemetry")
    schema = literal(spec.schema)
    checks = []
    for proc, key, add, remove, days in (
        ("policy_compression", "compress_after", "add_compression_policy", "remove_compression_policy",
         spec.compress_after_days),
        ("policy_retention", "drop_after", "add_retention_policy", "remove_retention_policy",
         spec.retention_days),
    ):  # fmt: skip
        checks.append(f"""    IF NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs
                   WHERE proc_name = '{proc}' AND hypertable_schema = {schema} AND hypertable_name = 'telemetry'
                     AND (config->>'{key}')::interval = interval '{days} days') THEN
        PERFORM {remove}({table}, if_exists => true);
        PERFORM {add}({table}, interval '{days} days');
    END IF;""")
    body = "\n".join(checks)
    return f"""DO $do$
BEGIN
    PERFORM set_chunk_time_interval({table}, {hours(spec.chunk_interval_hours)});
{body}
END
$do$;"""


def refresh(spec: StorageSpec, cutoff_literal: str) -> list[str]:
    """Explicit refresh of every invalidated region still inside retention (late data past the policies'
    windows); CALL refresh_continuous_aggregate cannot run inside a transaction block."""
    return [
        f"CALL refresh_continuous_aggregate({literal(qualified(spec.schema, name))}, {cutoff_literal}, NULL)"
        for name in POLICIES
    ]


def drop_chunks(spec: StorageSpec, cutoff_literal: str) -> str:
    return f"SELECT drop_chunks({_regclass(spec, 'telemetry')}, older_than => {cutoff_literal})"
