"""The demo's timeline: two days of history backfilled at full speed, then the last three days replayed at 60x.

The models score windows of a day or more (the failure model reads 25 h of 10-minute buckets), and wear faults
take days to show: a stream starting from nothing would keep the predictions empty for half an hour and the
bearing-wear alert for hours. So `make up` first streams the two days before the live stream's start at full
speed, through the same MQTT -> bridge -> database path, and the demo faults are pinned to absolute instants
shared by both runs (a `+5m` in `faults-demo.yaml` is five minutes after the live stream's start, `-71h` three days
before it), so the backfill and the live stream tell one story: chwp-1's bearing wear is three days old when the
live stream starts and fails about 25 minutes in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from dtwin_simulator import times

LIVE = "3d"
BACKFILL = "2d"


@dataclass(frozen=True)
class Timeline:
    live_start_ms: int

    @property
    def backfill_start_ms(self) -> int:
        return self.live_start_ms - times.parse_duration_ms(BACKFILL)

    @classmethod
    def now(cls) -> Timeline:
        minute = 60_000
        live = int(time.time() * 1000) - times.parse_duration_ms(LIVE)
        return cls(live - live % minute)


def absolute(start: str, live_start_ms: int) -> str:
    """A fault's `start` (`+<duration>`, `-<duration>` relative to the live start, or an instant) as an instant."""
    s = str(start).strip()
    if s.startswith("+"):
        return times.iso(live_start_ms + times.parse_duration_ms(s[1:]))
    if s.startswith("-"):
        return times.iso(live_start_ms - times.parse_duration_ms(s[1:]))
    return s


def pin_faults(source: Path, target: Path, timeline: Timeline) -> Path:
    """`source`'s faults with absolute starts, written to `target`, for both simulator runs."""
    doc = yaml.safe_load(source.read_text())
    for fault in doc.get("faults", []):
        fault["start"] = absolute(fault["start"], timeline.live_start_ms)
    target.write_text(yaml.safe_dump(doc, sort_keys=False))
    return target
