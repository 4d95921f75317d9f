"""`python -m dtwin_trainer recommend`: energy-saving detectors over a site schema's history, into its table.

The history is the database source's 10-min grid (`dbsource.read_db`) of the `days` whole UTC days before today's
midnight, so the period is the same all day long: a second run on the same day (a retry, a second replica) finds
the same asset, kind and period and inserts nothing (`INSERT ... WHERE NOT EXISTS`). The detectors themselves are
pure (`dtwin_ml.recommend`).
"""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from dtwin_ml import recommend as rec
from dtwin_trainer import dbsource

MODEL = "dtwin-recommend"
VERSION = "1"


def site(arg: str, default_timezone: str) -> tuple[str, str]:
    """(schema, time zone) from `SCHEMA` or `SCHEMA=TIMEZONE`; the zone is checked now, before any work."""
    name, _, tz = arg.partition("=")
    tz = tz or default_timezone
    if not name:
        raise ValueError(f"--schema {arg!r}: expected SCHEMA or SCHEMA=TIMEZONE such as site_hq=Europe/Paris")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"--schema {arg!r}: unknown time zone {tz!r} (an IANA name such as Europe/Paris)") from e
    return name, tz


def settings(tariff: float, currency: str, timezone: str, occupied: str = "0-4,7-19") -> rec.Settings:
    """`occupied` is `DAYS,START-END`: days `0-4` (a range) or `0,1,2` style lists, hours in local time."""
    try:
        days_text, hours_text = occupied.rsplit(",", 1)
        start, end = (int(h) for h in hours_text.split("-"))
        days: list[int] = []
        for part in days_text.split(","):
            lo, _, hi = part.partition("-")
            days += range(int(lo), int(hi or lo) + 1)
    except ValueError as e:
        raise ValueError(f"occupied hours {occupied!r}: expected DAYS,START-END such as 0-4,7-19") from e
    schedule = rec.Schedule(timezone, tuple(sorted(set(days))), start, end)
    return rec.Settings(schedule=schedule, tariff=tariff, currency=currency)


def period_end(now: pd.Timestamp | None = None) -> pd.Timestamp:
    return (pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)).floor("D")


def detect(
    grids: dict[str, tuple[pd.DataFrame, pd.DataFrame]], s: rec.Settings, start: pd.Timestamp, end: pd.Timestamp
) -> list[rec.Recommendation]:
    """Every asset's recommendations, each grid spread over the whole window so every period is [start, end)."""
    index = pd.date_range(start, end, freq="10min", inclusive="left")
    return [r for asset in sorted(grids) for r in rec.recommend(asset, grids[asset][0].reindex(index), s)]


def insert_sql(schema: str) -> str:
    table = f"{dbsource._ident(schema)}.energy_recommendations"
    cols = ", ".join(rec.COLUMNS)
    values = ", ".join(f"${i}" for i in range(1, len(rec.COLUMNS) + 1))
    return f"""INSERT INTO {table} ({cols})
SELECT {values}
WHERE NOT EXISTS (
    SELECT 1 FROM {table} WHERE asset IS NOT DISTINCT FROM $1 AND kind = $2 AND period_start = $8 AND period_end = $9
)"""


async def insert(dsn: str, schema: str, recs: list[rec.Recommendation]) -> int:
    """Insert the recommendations not already there; how many were new."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        added = 0
        sql = insert_sql(schema)
        async with conn.transaction():
            for row in rec.rows(recs, MODEL, VERSION):
                status = await conn.execute(sql, *row)
                added += int(status.rsplit(" ", 1)[-1])
        return added
    finally:
        await conn.close()


def run(dsn: str, schema: str, days: int, s: rec.Settings, now: pd.Timestamp | None = None) -> tuple[int, int]:
    """(recommendations found, inserted) for one schema."""
    end = period_end(now)
    grids = dbsource.read_db(dsn, schema, days, end)
    recs = detect(grids, s, end - pd.Timedelta(days=days), end)
    return len(recs), asyncio.run(insert(dsn, schema, recs))
