"""`dtwin history import`'s engine: read the CSV once, validate row by row, write batches, refresh the rollups.

The file is hashed first (its content names the dead letters' topics, see `dtwin_cli.rows`, and the line count
sizes the progress bar), then read as a stream: rows become readings and rejects (`RowReader`), and every
`batch` of them is written in one transaction by the bridge's `Writer` (`dtwin_cli.store`). Memory stays
bounded by the batch, except for the (sensor, ts) set that catches in-file duplicates. A dry run does all of it
but the database.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dtwin_bridge.batch import Batch
from dtwin_bridge.db import Writer
from dtwin_bridge.model import Reading, Reject
from dtwin_bridge.validate import Limits
from dtwin_cli import layout, store
from dtwin_cli.errors import CliError
from dtwin_cli.rows import RowReader
from dtwin_cli.sitecfg import SiteTarget


@dataclass(frozen=True)
class Request:
    path: Path
    target: SiteTarget
    format: layout.Format = "wide"
    time_column: str = "timestamp"
    timezone: str = "UTC"
    maps: Sequence[str] = ()
    units: Sequence[str] = ()
    skip: Sequence[str] = ()
    batch: int = 5000
    dsn: str | None = None  # None: dry run
    dry_run: bool = False


@dataclass
class Summary:
    rows: int = 0
    readings: int = 0  # valid values (stored now, or stored by an earlier import)
    stored: int = 0  # new telemetry rows
    dead: Counter[str] = field(default_factory=Counter)  # reason -> values or rows refused
    dead_known: int = 0  # dead letters an earlier import of this file already stored (not written again)
    empty_cells: int = 0
    first: datetime | None = None
    last: datetime | None = None
    refreshed: int = 0  # rollup minute buckets recomputed
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def already(self) -> int:
        return 0 if self.dry_run else self.readings - self.stored


def fingerprint(path: Path) -> tuple[str, int]:
    """(sha256 prefix of the content, line count); CliError when the file cannot be read."""
    digest, lines = hashlib.sha256(), 0
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                lines += chunk.count(b"\n")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{path} is a directory, not a CSV file") from None
    except OSError as err:
        raise CliError(f"{path}: cannot read ({err.strerror})") from None
    return digest.hexdigest()[:12], lines


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(f"--timezone {name!r} is not an IANA time zone (e.g. UTC, Europe/Paris)") from None


async def run(req: Request, progress: Callable[[int, int], None] = lambda _done, _total: None) -> Summary:
    """Import `req.path`. `progress(rows done, rows in the file)` is called at start and after each batch."""
    started = time.monotonic()
    zone = _zone(req.timezone)
    digest, lines = fingerprint(req.path)
    total = max(lines - 1, 1)  # minus the header
    progress(0, total)
    source = f"csv:{req.path.name}@{digest}"
    received_at = datetime.now(UTC)
    retention = req.target.retention_days
    limits = Limits(max_age=timedelta(days=retention) if retention else timedelta.max)
    writer: Writer | None = None
    backend: store.Backend = "postgresql"
    known: set[str] = set()
    out = Summary(dry_run=req.dry_run)
    with req.path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise CliError(f"{req.path} is empty: expected a header line")
        plan = layout.plan(header, req.target.table, f"{req.target.namespace}/{req.target.site}", req.format,
                           req.time_column, layout.pairs(req.maps, "--map"), layout.pairs(req.units, "--unit"),
                           req.skip)  # fmt: skip
        rows = RowReader(plan, source, received_at, zone, limits)
        if not req.dry_run:
            assert req.dsn is not None
            writer, backend = await store.open_writer(req.dsn, req.target.storage)
            known = await store.dead_topics(writer, source)
        try:
            await _stream(reader, rows, writer, known, req.batch, out, lambda done: progress(done, total))
            if writer is not None:
                out.refreshed = await store.refresh(writer, req.target.storage, backend, out.first)
        finally:
            if writer is not None:
                await writer.close()
    out.empty_cells = rows.empty_cells
    out.seconds = time.monotonic() - started
    return out


async def _stream(
    reader: Any,
    rows: RowReader,
    writer: Writer | None,
    known: set[str],
    batch: int,
    out: Summary,
    progress: Callable[[int], None],
) -> None:
    readings: list[Reading] = []
    rejects: list[Reject] = []
    seq = 0

    async def flush() -> None:
        nonlocal seq
        fresh = [j for j in rejects if j.topic not in known]
        out.dead_known += len(rejects) - len(fresh)
        if writer is not None and (readings or fresh):
            seq += 1
            result = await writer.write(Batch(seq, tuple(readings), tuple(fresh), (), time.monotonic()))
            out.stored += result.inserted
        readings.clear()
        rejects.clear()

    for row in reader:
        out.rows += 1
        for item in rows.items(row, reader.line_num):
            if isinstance(item, Reading):
                readings.append(item)
                out.readings += 1
                out.first = item.ts if out.first is None else min(out.first, item.ts)
                out.last = item.ts if out.last is None else max(out.last, item.ts)
            else:
                rejects.append(item)
                out.dead[item.reason.value] += 1
        if len(readings) + len(rejects) >= batch:
            await flush()
            progress(out.rows)
    await flush()
    progress(out.rows)
