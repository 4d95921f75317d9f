"""Fixtures of the simulator's tests: the demo campus fleet and `sim`, helpers that collect readings per sensor.

Helpers are handed out as a fixture rather than imported: with `--import-mode=importlib` a test module cannot
import its conftest, and the repository has several.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dtwin_simulator import fleet, stream, times
from dtwin_simulator.faults import Fault

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
Series = dict[str, list[tuple[int, float]]]


@dataclass(frozen=True)
class Sim:
    examples: Path = EXAMPLES
    # A Monday, 01:00 in Europe/Paris: runs of a few days stay on weekdays.
    start: int = times.parse_instant_ms("2026-01-05T00:00:00Z", 0)
    day: int = 86_400_000

    def collect(self, f: fleet.Fleet, faults: Iterable[Fault] = (), *, days: float, seed: int = 7) -> Series:
        """Every reading of every sensor, by sensor name, as (t_ms, value) in time order."""
        out: Series = {}
        end = self.start + int(days * self.day)
        for b in stream.batches(f, tuple(faults), seed=seed, start_ms=self.start, end_ms=end):
            for sensor, value in b.readings:
                out.setdefault(sensor.name, []).append((b.t_ms, value))
        return out

    def on_day(self, points: list[tuple[int, float]], day: float, days: float = 1.0) -> list[float]:
        """The values of `points` in [start + day, start + day + days)."""
        lo = self.start + int(day * self.day)
        return [v for t, v in points if lo <= t < lo + int(days * self.day)]


@pytest.fixture(scope="session")
def sim() -> Sim:
    return Sim()


@pytest.fixture(scope="session")
def demo() -> fleet.Fleet:
    return fleet.build(fleet.read_docs([EXAMPLES]))
