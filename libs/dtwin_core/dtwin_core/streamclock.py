"""The time a site's telemetry is judged at: the stream's own time, carried forward by the wall clock.

Staleness ("no reading for three intervals") must be judged against the time of the stream, not the wall's.
Live, the two agree. Replaying history — the simulator at 60x under `make up`, a backfill — the stream's time is
days behind the wall, and judging it by the wall calls every sensor stale and every asset offline. So the clock
keeps a watermark, the newest reading time seen (each counted as `min(ts, arrival)`, so a device clock running
ahead cannot push it), and the wall time it last advanced; `at(now)` is the watermark plus the wall time since,
never past `now`. When the whole stream stops, the judged time still advances with the wall, so silence is found.
Shared by the bridge's rules engine and the operator's health summary, so both call the same sensor stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class StreamClock:
    watermark: datetime | None = None  # newest stream time seen
    advanced_at: datetime | None = None  # wall time when it last advanced

    def observe(self, newest: datetime, arrived: datetime) -> None:
        """Readings up to `newest` (stream time) reached us at wall time `arrived`."""
        t = min(newest, arrived)
        if self.watermark is None or t > self.watermark:
            self.watermark, self.advanced_at = t, arrived

    def at(self, now: datetime) -> datetime:
        """The stream time at wall time `now`; `now` itself until anything was observed."""
        if self.watermark is None or self.advanced_at is None:
            return now
        return min(self.watermark + (now - self.advanced_at), now)
