"""Write pumps_history.csv and pumps_events.csv: two hand-modelled pumps over 21 days, five bearing failures.

The failure task pools its classifier over assets and needs failures both in training and in the holdout (the
last 20 %), which the one-pump pump_history.csv cannot give; this is its two-pump sibling, in the same style and
again not simulator output. Run once (`python make_pumps_csv.py`); the files are committed. Deterministic.
Every 10 minutes from 2026-04-06T00:00Z (a Monday) for 21 days (3024 rows):

- `pump-a.bearing_temp`, `pump-b.bearing_temp` (degC): ~45 degC, daily swing, noise; a bearing wears for ~2.5
  days before it fails (quadratic rise, about +16 degC at the end); then the pump is off 6 h for the repair.
- `pump-a.vibration`, `pump-b.vibration` (mm/s): ~2 mm/s, climbing with wear; ~0.1 while stopped.

pumps_events.csv (`asset,start,end,kind`): one `failure` row per failure, start = onset of wear, end = the moment
it tripped, which is how the trainer reads a failure (a degradation window ending in the failure at `end`).
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2026, 4, 6, tzinfo=UTC)
STEP = timedelta(minutes=10)
ROWS = 21 * 24 * 6
WEAR = timedelta(hours=60)
REPAIR = timedelta(hours=6)
TRIPS = {
    "pump-a": (
        datetime(2026, 4, 10, 9, 0, tzinfo=UTC),
        datetime(2026, 4, 17, 15, 30, tzinfo=UTC),
        datetime(2026, 4, 26, 12, 0, tzinfo=UTC),
    ),
    "pump-b": (datetime(2026, 4, 13, 21, 0, tzinfo=UTC), datetime(2026, 4, 23, 11, 0, tzinfo=UTC)),
}
HERE = Path(__file__).resolve().parent


def reading(pump: str, t: datetime, rng: np.random.Generator) -> tuple[float, float]:
    daily = math.sin(2 * math.pi * (t.hour * 60 + t.minute - 9 * 60) / 1440)
    for trip in TRIPS[pump]:
        if trip <= t < trip + REPAIR:  # stopped: the bearing cools towards the room
            cooled = 1 - math.exp(-((t - trip) / timedelta(hours=1)))
            return 60 - (60 - 22) * cooled + rng.normal(0, 0.3), abs(rng.normal(0.1, 0.03))
    w = max((((t - (trip - WEAR)) / WEAR) ** 2 for trip in TRIPS[pump] if trip - WEAR <= t < trip), default=0.0)
    temp = 45 + 3 * daily + 16 * w + rng.normal(0, 0.5)
    vib = 2.0 + 0.25 * daily + 4.5 * w + rng.normal(0, 0.15) + 1.2 * w * abs(rng.normal(0, 1))
    return temp, vib


def main() -> None:
    rng = np.random.default_rng(20260406)
    with (HERE / "pumps_history.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        pumps = sorted(TRIPS)
        w.writerow(["timestamp", *[f"{p}.{m}" for p in pumps for m in ("bearing_temp", "vibration")]])
        for i in range(ROWS):
            t = START + i * STEP
            cells = []
            for p in pumps:
                temp, vib = reading(p, t, rng)
                cells += [f"{temp:.2f}", f"{vib:.3f}"]
            w.writerow([t.strftime("%Y-%m-%dT%H:%M:%SZ"), *cells])
    with (HERE / "pumps_events.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["asset", "start", "end", "kind"])
        for pump, trips in sorted(TRIPS.items()):
            for trip in trips:
                w.writerow([pump, f"{trip - WEAR:%Y-%m-%dT%H:%M:%SZ}", f"{trip:%Y-%m-%dT%H:%M:%SZ}", "failure"])


if __name__ == "__main__":
    main()
