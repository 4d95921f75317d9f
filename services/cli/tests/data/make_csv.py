"""Write pump_history.csv and events.csv: ten days of a hand-modelled pump and an energy meter, two bearing failures.

Not simulator output on purpose: the CLI round trip (import, train, score) must work on data the platform did not
generate. Run once (`python make_csv.py`); the files are committed and the tests read them. Deterministic (fixed
seed, no clock). Every 10 minutes from 2026-03-02T00:00Z for 10 days (1440 rows), in the bindings' own units:

- `pump-1.bearing_temp` (degC): ~45 degC with a daily load swing and noise; rises quadratically over the ~3 days
  before each failure (about +18 degC at the end); during the repair the pump is off and the bearing cools to the
  room; after it, a fresh bearing starts at baseline again.
- `pump-1.vibration` (mm/s RMS): ~2 mm/s, climbing past ISO 10816 "warning" (4.5) in the last day before a failure;
  ~0.1 mm/s while stopped.
- `meter-1.power` (kW): the building's feeder: a weekday office profile (night base ~40 kW, day ~110 kW), lower on
  the weekend, noise; the pump's ~15 kW missing while it is off.

events.csv (`asset,start,end,kind`) lists the two failures: start = the moment it tripped, end = back in service.
"""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
STEP = timedelta(minutes=10)
ROWS = 10 * 24 * 6
DEGRADATION = timedelta(days=3)
# (tripped, back in service)
FAILURES = (
    (datetime(2026, 3, 5, 14, 20, tzinfo=UTC), datetime(2026, 3, 5, 20, 40, tzinfo=UTC)),
    (datetime(2026, 3, 10, 3, 50, tzinfo=UTC), datetime(2026, 3, 10, 11, 0, tzinfo=UTC)),
)
HERE = Path(__file__).resolve().parent


def wear(t: datetime) -> float:
    """0 on a healthy bearing, rising to 1 at the moment it fails (quadratic: slow at first, then fast)."""
    for tripped, _ in FAILURES:
        onset = tripped - DEGRADATION
        if onset <= t < tripped:
            return ((t - onset) / DEGRADATION) ** 2
    return 0.0


def stopped(t: datetime) -> datetime | None:
    """When the pump tripped, if it is down for repair at `t`."""
    return next((tripped for tripped, back in FAILURES if tripped <= t < back), None)


def office_load(t: datetime) -> float:
    hour = t.hour + t.minute / 60
    weekend = t.weekday() >= 5
    # Occupied 07:00-19:00 with smooth ramps; a weekend day is half as busy.
    occupied = 1 / (1 + math.exp(-(hour - 7.5) * 2)) * 1 / (1 + math.exp((hour - 19) * 2))
    return 40 + (35 if weekend else 70) * occupied


def rows() -> list[list[str]]:
    rng = np.random.default_rng(20260302)
    out = []
    for i in range(ROWS):
        t = START + i * STEP
        daily = math.sin(2 * math.pi * (t.hour * 60 + t.minute - 9 * 60) / 1440)  # warmest mid-afternoon
        w = wear(t)
        tripped = stopped(t)
        if tripped is not None:
            cooled = 1 - math.exp(-((t - tripped) / timedelta(hours=1)))
            temp = 63 - (63 - 22) * cooled + rng.normal(0, 0.3)
            vib = abs(rng.normal(0.1, 0.03))
            pump_kw = 0.0
        else:
            temp = 45 + 3 * daily + 18 * w + rng.normal(0, 0.5)
            vib = 2.0 + 0.25 * daily + 4.8 * w + rng.normal(0, 0.15) + 1.2 * w * abs(rng.normal(0, 1))
            pump_kw = 15 + 1.5 * daily
        power = office_load(t) + pump_kw + rng.normal(0, 2.5)
        out.append([t.strftime("%Y-%m-%dT%H:%M:%SZ"), f"{temp:.2f}", f"{vib:.3f}", f"{power:.1f}"])
    return out


def main() -> None:
    with (HERE / "pump_history.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["timestamp", "pump-1.bearing_temp", "pump-1.vibration", "meter-1.power"])
        w.writerows(rows())
    with (HERE / "events.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["asset", "start", "end", "kind"])
        for tripped, back in FAILURES:
            w.writerow(["pump-1", f"{tripped:%Y-%m-%dT%H:%M:%SZ}", f"{back:%Y-%m-%dT%H:%M:%SZ}", "bearing_failure"])


if __name__ == "__main__":
    main()
