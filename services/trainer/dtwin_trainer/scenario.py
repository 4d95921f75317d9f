"""The faults an evaluation run injects: a random but seeded plan per asset, and the ground truth it implies.

Every asset that can wear gets one wear fault (`bearing_wear`, or `filter_clogging` on AHUs and fans) that ends in a
recorded failure; chillers and AHUs may also leak refrigerant; any asset may get a stuck or a spiking sensor. The
windows of one asset never overlap (a day apart at least) and never straddle the train/test split, so the test
period's events are unseen during training. Wear faults always end in failure here: the simulator's physics of a
wear fault that is repaired in time is identical to one that fails, so "repaired" windows would be unlearnable
noise rather than a test of the model (see README).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from dtwin_simulator import times
from dtwin_simulator.faults import PHYSICAL, Fault, FaultSpec, resolve, truth
from dtwin_simulator.fleet import Fleet

HOUR = 3_600_000
DAY = 24 * HOUR
SENSOR_KINDS = ("stuck_sensor", "spiking_sensor")


@dataclass(frozen=True)
class Plan:
    faults: tuple[Fault, ...]
    truth: tuple[dict[str, Any], ...]


def _fits(taken: list[tuple[int, int]], lo: int, hi: int) -> bool:
    return all(hi + DAY <= a or lo >= b + DAY for a, b in taken)


def _place(rng: random.Random, taken: list[tuple[int, int]], span: tuple[int, int], length: int) -> int | None:
    """A start in `span` for a window of `length` that keeps a day from every taken window (None: no room)."""
    lo, hi = span[0] + DAY, span[1] - length - HOUR
    for _ in range(50):
        if hi <= lo:
            return None
        start = rng.randrange(lo, hi, HOUR)
        if _fits(taken, start, start + length):
            taken.append((start, start + length))
            return start
    return None


def _spec(kind: str, asset: str, start: int, length: int, **extra: Any) -> FaultSpec:
    fid = f"{asset}-{kind}-{start // HOUR}"
    spec = {"kind": kind, "asset": asset, "start": times.iso(start), "duration": f"{length // 1000}s", "id": fid}
    return FaultSpec.model_validate({**spec, **extra})


def plan(fleet: Fleet, seed: int, start_ms: int, split_ms: int, end_ms: int) -> Plan:
    """Faults for one simulated run; `seed` makes it reproducible."""
    rng = random.Random(f"dtwin-eval-{seed}")
    specs: list[FaultSpec] = []
    for asset in fleet.assets:
        taken: list[tuple[int, int]] = []
        periods = [(start_ms, split_ms), (split_ms, end_ms)]
        wear = [k for k in ("bearing_wear", "filter_clogging") if asset.kind in PHYSICAL[k][1]]
        if wear:
            length = rng.randrange(4 * DAY, 7 * DAY, HOUR)
            at = _place(rng, taken, rng.choice(periods), length)
            if at is not None:
                sev = round(rng.uniform(0.8, 1.2), 2)
                specs.append(_spec(rng.choice(wear), asset.name, at, length, severity=sev, failure=True))
        if asset.kind in PHYSICAL["refrigerant_leak"][1] and rng.random() < 0.6:
            length = rng.randrange(DAY, 2 * DAY, HOUR)
            at = _place(rng, taken, rng.choice(periods), length)
            if at is not None:
                specs.append(_spec("refrigerant_leak", asset.name, at, length))
        sensors = fleet.sensors_of(asset.name)
        for kind in SENSOR_KINDS:
            if not sensors or rng.random() < 0.3:
                continue
            length = rng.randrange(6 * HOUR, 24 * HOUR, HOUR)
            at = _place(rng, taken, rng.choice(periods), length)
            if at is not None:
                specs.append(_spec(kind, asset.name, at, length, sensor=rng.choice(sensors).metric))
    faults = resolve(specs, fleet, start_ms)
    return Plan(faults, tuple(truth(faults)))
