"""The summary an import prints: what was read, stored, already there and refused (by reason), and how fast.

Pure text from a `Summary`, so the tests can read it too.
"""

from __future__ import annotations

from dtwin_cli.importer import Summary


def render(s: Summary, site: str, file: str) -> str:
    rate = s.rows / s.seconds if s.seconds > 0 else 0.0
    span = f"{s.first:%Y-%m-%d %H:%M} .. {s.last:%Y-%m-%d %H:%M} UTC" if s.first and s.last else "-"
    dead = sum(s.dead.values())
    lines = [
        f"{'dry run: nothing written; ' if s.dry_run else ''}{file} -> {site}",
        f"  rows read          {s.rows}",
        f"  readings valid     {s.readings}  ({span})",
    ]
    if not s.dry_run:
        lines += [
            f"  readings stored    {s.stored}",
            f"  already stored     {s.already}  (re-import: kept the first value)",
        ]
    lines.append(f"  dead letters       {dead}" + (f"  ({s.dead_known} already stored by an earlier import)"
                                                   if s.dead_known else ""))  # fmt: skip
    lines += [f"    {reason:<20} {n}" for reason, n in sorted(s.dead.items())]
    if s.empty_cells:
        lines.append(f"  empty cells        {s.empty_cells}  (gaps, not stored)")
    if not s.dry_run:
        lines.append(f"  rollups refreshed  {s.refreshed} minute buckets (and their hours and days)")
    lines.append(f"  duration           {s.seconds:.2f} s  ({rate:,.0f} rows/s)")
    return "\n".join(lines)
