"""`dtwin history import` against a real PostgreSQL: exact counts, dead letters by reason, idempotent re-import,
unit conversion, rollups, and the one-line errors (exit 2) that need no database.

The Site comes from the hand-written YAML in data/ (`--from-yaml`), rendered by the operator's own routing code;
the schema is created by `dtwin_core.migrate.apply`, as the operator does for a Ready Site. The history CSV is
data/pump_history.csv (written once by data/make_csv.py, not by the simulator): 1440 rows x 3 sensors.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from dtwin_cli.main import app
from dtwin_cli.sitecfg import from_yaml
from dtwin_core import migrate

DATA = Path(__file__).parent / "data"
HISTORY = DATA / "pump_history.csv"
BAD = DATA / "pump_bad_rows.csv"
SITE = ["--site", "acme/works", "--from-yaml", str(DATA)]
SCHEMA = "site_works"
runner = CliRunner()


def dtwin(*args: str) -> Any:
    return runner.invoke(app, ["history", "import", *args], catch_exceptions=False)


def query(dsn: str, sql: str) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql)
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def site_db(pg_dsn: str) -> str:
    """A database holding the schema of site acme/works, as the operator creates it."""
    storage = from_yaml(DATA, "acme", "works").storage

    async def go() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await migrate.apply(conn, storage)
        finally:
            await conn.close()

    asyncio.run(go())
    return pg_dsn


def counts(dsn: str) -> dict[str, int]:
    rows = query(dsn, f"SELECT sensor, count(*) AS n FROM {SCHEMA}.telemetry GROUP BY sensor")
    return {r["sensor"]: r["n"] for r in rows}


def dead(dsn: str) -> dict[str, int]:
    rows = query(dsn, f"SELECT reason, count(*) AS n FROM {SCHEMA}.dead_letters GROUP BY reason")
    return {r["reason"]: r["n"] for r in rows}


def test_history_import_is_exact_and_idempotent(site_db: str) -> None:
    first = dtwin(str(HISTORY), *SITE, "--dsn", site_db, "--batch", "1000")
    assert first.exit_code == 0, first.output
    assert "readings stored    4320" in first.stdout
    assert counts(site_db) == {"pump-1-bearing-temp": 1440, "pump-1-vibration": 1440, "meter-1-power": 1440}
    # Values are stored in canonical units (the bindings are already canonical) and exactly as written.
    row = query(site_db, f"SELECT value FROM {SCHEMA}.telemetry WHERE sensor = 'pump-1-vibration' "
                         "AND ts = '2026-03-02T00:10:00Z'")  # fmt: skip
    assert row[0]["value"] == 2.048
    # Rollups refreshed for the imported range: every reading is in exactly one bucket of each level.
    for level, buckets in (("1m", 4320), ("1h", 720), ("1d", 33)):  # 1d: 11 Europe/Berlin days x 3 sensors
        got = query(site_db, f"SELECT count(*) AS b, sum(count) AS n FROM {SCHEMA}.telemetry_{level}")[0]
        assert (got["b"], got["n"]) == (buckets, 4320), level

    again = dtwin(str(HISTORY), *SITE, "--dsn", site_db)
    assert again.exit_code == 0, again.output
    assert "readings stored    0" in again.stdout
    assert "already stored     4320" in again.stdout
    assert sum(counts(site_db).values()) == 4320
    assert query(site_db, f"SELECT count(*) AS n FROM {SCHEMA}.telemetry_1m")[0]["n"] == 4320


def test_history_import_dead_letters_bad_rows_with_reasons(site_db: str) -> None:
    result = dtwin(str(BAD), *SITE, "--dsn", site_db, "--timezone", "Europe/Berlin")
    assert result.exit_code == 0, result.output
    assert "rows read          9" in result.stdout
    assert "readings stored    14" in result.stdout
    assert "empty cells        1" in result.stdout
    assert sum(counts(site_db).values()) == 14
    expected = {
        "not_a_number": 1,  # ERR
        "out_of_range": 2,  # 999 degC, -5 kW
        "non_finite": 1,  # nan
        "bad_timestamp": 1,  # one per row, whatever its values
        "timestamp_skew": 3,  # 2099: every value of the row
        "duplicate_in_message": 2,  # second row at 00:40: the first value per (sensor, ts) wins
    }
    assert dead(site_db) == expected
    rows = query(
        site_db, f"SELECT topic, payload, detail, sensor FROM {SCHEMA}.dead_letters WHERE reason = 'not_a_number'"
    )
    assert rows[0]["sensor"] == "pump-1-vibration"
    assert rows[0]["topic"].startswith("csv:pump_bad_rows.csv@") and rows[0]["topic"].endswith("#L3")
    assert rows[0]["payload"] == b"2026-03-12T00:10:00Z,45.90,ERR,51.8"
    assert "ERR" in rows[0]["detail"]
    # A time without offset is read in --timezone: 01:50 in Berlin (CET) is 00:50 UTC.
    naive = query(site_db, f"SELECT count(*) AS n FROM {SCHEMA}.telemetry WHERE ts = '2026-03-12T00:50:00Z'")
    assert naive[0]["n"] == 2
    # The first of two values for (sensor, ts) is kept.
    kept = query(site_db, f"SELECT value FROM {SCHEMA}.telemetry WHERE sensor = 'pump-1-bearing-temp' "
                          "AND ts = '2026-03-12T00:40:00Z'")  # fmt: skip
    assert kept[0]["value"] == 46.2

    # Re-importing the same file adds neither readings nor dead letters.
    again = dtwin(str(BAD), *SITE, "--dsn", site_db, "--timezone", "Europe/Berlin")
    assert again.exit_code == 0, again.output
    assert "(10 already stored by an earlier import)" in again.stdout
    assert dead(site_db) == expected
    assert sum(counts(site_db).values()) == 14


def test_history_import_long_format_converts_units(site_db: str) -> None:
    result = dtwin(str(DATA / "long_degF.csv"), *SITE, "--dsn", site_db, "--format", "long")
    assert result.exit_code == 0, result.output
    rows = query(site_db, f"SELECT sensor, value FROM {SCHEMA}.telemetry ORDER BY sensor")
    # 212 degF -> 100 degC; 52000 W -> 52 kW (the binding's and canonical unit); a sensor named by its binding.
    assert {r["sensor"]: r["value"] for r in rows} == {
        "meter-1-power": 52.0,
        "pump-1-bearing-temp": 100.0,
        "pump-1-vibration": 2.0,
    }
    assert dead(site_db) == {"unknown_field": 1, "unit_mismatch": 1}


def test_history_import_unit_option_and_dry_run(site_db: str, tmp_path: Path) -> None:
    csv = tmp_path / "fahrenheit.csv"
    csv.write_text("time,bearing\n2026-03-12T03:00:00+01:00,122\n")
    args = [str(csv), *SITE, "--dsn", site_db, "--time-column", "time", "--map", "bearing=pump-1.bearing_temp",
            "--unit", "bearing=degF"]  # fmt: skip
    dry = dtwin(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.stdout and "readings valid     1" in dry.stdout
    assert counts(site_db) == {}
    assert dtwin(*args).exit_code == 0
    rows = query(site_db, f"SELECT ts, value FROM {SCHEMA}.telemetry")
    assert rows[0]["value"] == 50.0 and rows[0]["ts"].isoformat() == "2026-03-12T02:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", *SITE], "no such file"),
        ([str(HISTORY), "--site", "acme/nowhere", "--from-yaml", str(DATA)], "unknown site acme/nowhere"),
        ([str(HISTORY), "--site", "other/works", "--from-yaml", str(DATA)], "unknown site other/works"),
        ([str(HISTORY), *SITE, "--time-column", "ts"], "no timestamp column 'ts'"),
        ([str(HISTORY), *SITE, "--map", "pump-1.vibration=pump-1.flow"], "unmapped column 'pump-1.vibration'"),
        ([str(HISTORY), *SITE, "--unit", "meter-1.power=degC"], "not a power unit"),
        ([str(HISTORY), *SITE, "--timezone", "Mars/Olympus"], "not an IANA time zone"),
        ([str(HISTORY), *SITE, "--dsn", "postgresql://nobody@127.0.0.1:1/none"], "cannot connect to the database"),
    ],
)
def test_history_import_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = dtwin(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_history_import_unmapped_header_column(tmp_path: Path) -> None:
    csv = tmp_path / "extra.csv"
    csv.write_text("timestamp,pump-1.bearing_temp,pump-1.oil_level\n2026-03-12T00:00:00Z,45,3\n")
    result = dtwin(str(csv), *SITE, "--dry-run")
    assert result.exit_code == 2
    assert "unmapped column 'pump-1.oil_level'" in result.stderr and "--skip pump-1.oil_level" in result.stderr
    skipped = dtwin(str(csv), *SITE, "--dry-run", "--skip", "pump-1.oil_level")
    assert skipped.exit_code == 0 and "readings valid     1" in skipped.stdout


def test_history_import_schema_missing_is_exit_2(pg_dsn: str) -> None:
    result = dtwin(str(HISTORY), *SITE, "--dsn", pg_dsn)
    assert result.exit_code == 2
    assert "schema site_works does not exist" in result.stderr
