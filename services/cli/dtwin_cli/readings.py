"""A CSV of readings (wide or long, as `dtwin history import` reads it) -> the long frame the trainer reads.

The trainer's CSV source wants `timestamp, asset, metric, value` (`dtwin_trainer.csvsource`). Engineers' files are
often wide (`timestamp,pump-1.bearing_temp,pump-1.vibration,...`), so this applies the import's own column rules
without needing a Site: a wide header, or `--map COL=ASSET.METRIC`, names `<asset>.<metric>` (split at the last
dot); `--skip COL` leaves a column out; timestamps are parsed by the import's `parse_time` (ISO 8601 in
`--timezone` when without offset, or epoch s/ms). A long file has `asset` and `metric` columns, or a `sensor`
column holding `<asset>.<metric>` (`--map` renames a key). Values are taken as written (no unit conversion: a
model learns whatever unit it is trained on, and scoring must use the same). Other columns (a label, a unit id)
are kept by name in `extra`. Every mistake is a `CliError` naming the column.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

import numpy as np
import pandas as pd

from dtwin_cli.errors import CliError
from dtwin_cli.layout import pairs
from dtwin_cli.rows import parse_time

LONG_COLUMNS = ("timestamp", "asset", "metric", "value")


@dataclass(frozen=True)
class Options:
    format: str = "wide"  # wide | long
    time_column: str = "timestamp"
    timezone: str = "UTC"
    maps: Sequence[str] = ()
    skip: Sequence[str] = ()
    keep: Sequence[str] = ()  # columns that are not readings (label, unit id): carried per row, not mapped


def split_target(target: str, column: str) -> tuple[str, str]:
    asset, dot, metric = target.rpartition(".")
    if not dot or not asset or not metric:
        raise CliError(f"column {column!r}: {target!r} is not <asset>.<metric> (use --map {column}=ASSET.METRIC "
                       f"or --skip {column})")  # fmt: skip
    return asset, metric


def _times(stamps: pd.Series, zone: tzinfo, path: Path) -> pd.Series:
    parsed: dict[str, pd.Timestamp] = {}
    for i, text in enumerate(stamps.astype(str)):
        if text not in parsed:
            try:
                parsed[text] = pd.Timestamp(parse_time(text, zone))
            except (ValueError, OverflowError) as err:
                raise CliError(f"{path}: line {i + 2}: bad timestamp {text!r} ({err})") from None
    return stamps.astype(str).map(parsed)


def zone_of(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(f"--timezone {name!r} is not an IANA time zone (e.g. UTC, Europe/Paris)") from None


def read(path: Path, opts: Options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(long readings `timestamp, asset, metric, value`, per-row extras `timestamp, asset, <keep columns>`)."""
    if not path.is_file():
        raise CliError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    if opts.format not in ("wide", "long"):
        raise CliError(f"--format must be wide or long, got {opts.format!r}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        header = [h.strip() for h in next(csv.reader(f), [])]
    if not header:
        raise CliError(f"{path} is empty: expected a header line")
    if opts.time_column not in header:
        raise CliError(f"no timestamp column {opts.time_column!r} in the header ({', '.join(header)}); "
                       "use --time-column")  # fmt: skip
    for col in opts.keep:
        if col not in header:
            raise CliError(f"no column {col!r} in the header ({', '.join(header)})")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    raw.columns = header
    raw = raw[raw[opts.time_column].str.strip() != ""].reset_index(drop=True)
    ts = _times(raw[opts.time_column], zone_of(opts.timezone), path)
    maps = pairs(opts.maps, "--map")
    long = _long(raw, header, ts, maps, opts) if opts.format == "long" else _wide(raw, header, ts, maps, opts)
    long = long.dropna(subset=["value"]).reset_index(drop=True)
    if long.empty:
        raise CliError(f"{path}: no readings (every value cell is empty or not a number)")
    extras = pd.DataFrame({"timestamp": ts})
    if opts.format == "long":
        extras["asset"] = long_assets(raw, maps)
    for col in opts.keep:
        extras[col] = raw[col].to_numpy()
    return long, extras


def _number(cells: pd.Series) -> np.ndarray:
    return pd.to_numeric(cells.str.strip().replace("", np.nan), errors="coerce").to_numpy(dtype=float)


def _wide(raw: pd.DataFrame, header: list[str], ts: pd.Series, maps: dict[str, str], opts: Options) -> pd.DataFrame:
    for key in maps:
        if key not in header:
            raise CliError(f"--map names column {key!r}, which is not in the header ({', '.join(header)})")
    parts = []
    for col in header:
        if col == opts.time_column or col in opts.skip or col in opts.keep:
            continue
        asset, metric = split_target(maps.get(col, col), col)
        parts.append(pd.DataFrame({"timestamp": ts, "asset": asset, "metric": metric,
                                   "value": _number(raw[col])}))  # fmt: skip
    if not parts:
        raise CliError("no value columns besides the timestamp")
    return pd.concat(parts, ignore_index=True)


def long_assets(raw: pd.DataFrame, maps: dict[str, str]) -> np.ndarray:
    if "asset" in raw:
        return raw["asset"].str.strip().to_numpy()
    keys = raw["sensor"].str.strip()
    return np.asarray([split_target(maps.get(k, k), "sensor")[0] for k in keys])


def _long(raw: pd.DataFrame, header: list[str], ts: pd.Series, maps: dict[str, str], opts: Options) -> pd.DataFrame:
    if "value" not in header or ("sensor" not in header and ("asset" not in header or "metric" not in header)):
        raise CliError(f"a long file needs columns {opts.time_column}, sensor (or asset and metric), value; "
                       f"the header has {', '.join(header)}")  # fmt: skip
    if "sensor" in header and "asset" not in header:
        targets = [split_target(maps.get(k, k), "sensor") for k in raw["sensor"].str.strip()]
        asset = [a for a, _ in targets]
        metric = [m for _, m in targets]
    else:
        asset, metric = list(raw["asset"].str.strip()), list(raw["metric"].str.strip())
    return pd.DataFrame({"timestamp": ts, "asset": asset, "metric": metric, "value": _number(raw["value"])})


def write_long(long: pd.DataFrame, path: Path) -> Path:
    """The trainer's CSV: ISO-8601 UTC timestamps."""
    out = long.assign(timestamp=pd.DatetimeIndex(long["timestamp"]).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"))
    out[list(LONG_COLUMNS)].to_csv(path, index=False)
    return path
