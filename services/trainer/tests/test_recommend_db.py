"""`python -m dtwin_trainer recommend` against a real site schema: detects, inserts, and a rerun adds nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import numpy as np
import pandas as pd
import pytest

from dtwin_core import migrate
from dtwin_core.schema import StorageSpec
from dtwin_trainer import cli, recommend, train

NOW = pd.Timestamp("2026-01-12T09:30:00Z")  # a Monday morning: the period is the week before, Mon-Sun


def _readings(end: pd.Timestamp) -> list[tuple[str, Any, float]]:
    """The week before `end` (a UTC midnight)."""
    index = pd.date_range(end - pd.Timedelta(days=7), end, freq="5min", inclusive="left")
    work = (index.dayofweek < 5) & (index.hour >= 7) & (index.hour < 19)
    evening = (index.dayofweek < 5) & (index.hour >= 19) & (index.hour < 23)
    noise = np.random.default_rng(1).normal(0, 0.2, len(index))
    late = np.where(work | evening, 20.0, 2.0) + noise  # 20 h a week at 18 kW above its night load
    clean = np.where(work, 20.0, 2.0) + noise
    rows = [
        (f"{a}.power", t.to_pydatetime(), float(v))
        for a, x in (("ahu-1", late), ("ahu-2", clean))
        for t, v in zip(index, x, strict=True)
    ]
    return rows


async def _seed(dsn: str, schema: str, end: pd.Timestamp) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn, StorageSpec(schema))
        await conn.executemany(
            f'INSERT INTO "{schema}"."sensors" (name, asset, metric, unit, canonical_unit, topic, format) '
            "VALUES ($1, $2, 'power', 'kW', 'kW', 't', 'json')",
            [("ahu-1.power", "ahu-1"), ("ahu-2.power", "ahu-2")],
        )
        await conn.copy_records_to_table(
            "telemetry", schema_name=schema, records=_readings(end), columns=["sensor", "ts", "value"]
        )
    finally:
        await conn.close()


async def _rows(dsn: str, schema: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(f'SELECT * FROM "{schema}".energy_recommendations ORDER BY id'))
    finally:
        await conn.close()


def test_recommend_inserts_once_per_asset_kind_and_period(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_seed(pg_dsn, "site_a", NOW.floor("D")))
    s = recommend.settings(0.3, "EUR", "UTC")
    assert recommend.run(pg_dsn, "site_a", 7, s, NOW) == (1, 1)
    (row,) = asyncio.run(_rows(pg_dsn, "site_a"))
    assert (row["asset"], row["kind"], row["currency"], row["model"]) == (
        "ahu-1",
        "after_hours",
        "EUR",
        "dtwin-recommend",
    )
    assert row["kwh_saved"] == pytest.approx(360, rel=0.05) and row["cost_saved"] == pytest.approx(
        row["kwh_saved"] * 0.3, abs=0.01
    )
    assert row["period_start"] == pd.Timestamp("2026-01-05T00:00Z") and row["period_end"] == pd.Timestamp(
        "2026-01-12T00:00Z"
    )
    assert row["status"] == "open"
    # The CLI later the same day (DSN from the environment): same period, nothing new.
    monkeypatch.setenv(train.DSN_ENV, pg_dsn)
    monkeypatch.setattr(recommend, "period_end", lambda now=None: NOW.floor("D"))
    assert cli.run(["recommend", "--schema", "site_a", "--days", "7", "--tariff", "0.3"]) == 0
    assert "1 recommendation(s), 0 new" in capsys.readouterr().err
    assert len(asyncio.run(_rows(pg_dsn, "site_a"))) == 1
    monkeypatch.delenv(train.DSN_ENV)
    assert cli.run(["recommend", "--schema", "site_a"]) == 2


def test_each_site_is_judged_in_its_own_time_zone(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same readings, two sites, over the real last week: ahu-2 runs 07-19 UTC, office hours in UTC but the
    # night in Tokyo (neither has daylight saving time, so this holds whatever the date).
    for schema in ("site_utc", "site_tokyo"):
        asyncio.run(_seed(pg_dsn, schema, recommend.period_end()))
    monkeypatch.setenv(train.DSN_ENV, pg_dsn)
    assert cli.run(["recommend", "--schema", "site_utc", "--schema", "site_tokyo=Asia/Tokyo"]) == 0
    err = capsys.readouterr().err
    assert "site_utc (UTC): 1 recommendation(s), 1 new" in err
    assert "site_tokyo (Asia/Tokyo): 2 recommendation(s), 2 new" in err
    assert [(r["asset"], r["kind"]) for r in asyncio.run(_rows(pg_dsn, "site_tokyo"))] == [
        ("ahu-1", "after_hours"),
        ("ahu-2", "after_hours"),
    ]
    # A zone that does not exist is refused before anything runs.
    assert cli.run(["recommend", "--schema", "site_utc", "--schema", "site_tokyo=Mars/Olympus"]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    assert len(asyncio.run(_rows(pg_dsn, "site_utc"))) == 1
