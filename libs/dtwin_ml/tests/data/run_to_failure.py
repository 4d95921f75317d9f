"""Writes `run_to_failure.csv`: a few engines run to failure, C-MAPSS style (unit, cycle, sensors).

Each unit has its own life (120-240 cycles) and its own sensor offsets; wear grows as (cycle / life)^3, so a unit
looks healthy for most of its life and degrades visibly near the end: temperature rises, pressure drops,
vibration rises, each with noise. The last row of a unit is its failure. Run `python run_to_failure.py` to
regenerate (seeded, so the file does not change).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

UNITS = 12


def units(n: int = UNITS, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for u in range(1, n + 1):
        life = int(rng.integers(120, 241))
        cycle = np.arange(1, life + 1)
        wear = (cycle / life) ** 3
        parts.append(
            pd.DataFrame(
                {
                    "unit": u,
                    "cycle": cycle,
                    "temp": 640 + rng.normal(0, 1.0) + 12 * wear + rng.normal(0, 0.6, life),
                    "pressure": 47 + rng.normal(0, 0.3) - 3 * wear + rng.normal(0, 0.25, life),
                    "vibration": 1.0 + rng.normal(0, 0.05) + 0.8 * wear + rng.normal(0, 0.08, life),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).round(3)


if __name__ == "__main__":
    units().to_csv(Path(__file__).with_name("run_to_failure.csv"), index=False)
