"""Sensor value models: `Signal.value(t, state, rng)` turns an asset's drivers into one sensor's reading.

`AssetModel` owns one asset's physics: its family (by kind), its `Design`, its site's `Climate`, a slow load
wander and the asset-level faults acting on it; `drivers(t)` is a pure function of t (memoised for the last
t, since an asset's sensors usually sample together). A `Tracked` signal follows one driver through a
first-order lag (thermal inertia, VFD ramps; exact for any sample spacing: x += (target - x)(1 - e^(-dt/τ))),
adds Gaussian noise from the sensor's own generator and converts canonical units to the binding's unit.
`Counter` integrates power into an energy register that never runs backwards; `Walk`, `Toggle` and `Count`
are the fallbacks for roles no family models. Every signal draws the same number of random numbers per
sample whatever the faults do, so a fault leaves the stream unchanged outside its window.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dtwin_core import units
from dtwin_simulator.signals.base import Design, Drivers, Inputs
from dtwin_simulator.signals.noise import smooth
from dtwin_simulator.signals.profile import Climate

Family = Callable[[Inputs], Drivers]
STOPPED = 1e-6  # below this a non-negative quantity (flow, power, speed) reads as zero


class AssetFault(Protocol):
    """An asset-level fault as the physics sees it: which level it raises, and by how much at time t (s)."""

    @property
    def effect(self) -> str: ...  # "clog", "wear" or "leak"

    def level(self, t: float) -> float: ...


class SensorState:
    """What one sensor remembers between samples."""

    __slots__ = ("t", "total", "x")

    def __init__(self) -> None:
        self.x: float | None = None  # lagged value (canonical unit), walk position, counter reading
        self.t = 0.0  # time of the previous sample, s
        self.total = 0.0  # energy register, kWh


class Signal(Protocol):
    def value(self, t: float, state: SensorState, rng: random.Random) -> float: ...


class AssetModel:
    def __init__(
        self, family: Family, design: Design, climate: Climate, faults: Sequence[AssetFault], wander_key: int
    ) -> None:
        self.family, self.design, self.climate, self.faults = family, design, climate, tuple(faults)
        self._wander_key = wander_key
        self._last_t = math.nan
        self._last: Drivers = {}

    def compute(self, t: float) -> Drivers:
        levels = {"clog": 0.0, "wear": 0.0, "leak": 0.0}
        for fault in self.faults:
            levels[fault.effect] += fault.level(t)
        wander = smooth(self._wander_key, t, 1200.0)
        c = self.climate.at(t)
        return self.family(Inputs(t, c, self.design, wander, levels["clog"], levels["wear"], levels["leak"]))

    def drivers(self, t: float) -> Drivers:
        if t != self._last_t:
            self._last, self._last_t = self.compute(t), t
        return self._last


@dataclass(frozen=True, slots=True)
class Tracked:
    """A driver seen through a first-order lag and Gaussian noise, in the binding's unit."""

    model: AssetModel
    key: str
    tau: float  # s; 0 = no lag
    sd_abs: float  # noise, canonical unit
    sd_rel: float  # noise, share of the value
    convert: Callable[[float], float]
    floor: float | None = None  # physical lower bound (power, flow, ... are never negative)

    def lagged(self, t: float, state: SensorState) -> float:
        target = self.model.drivers(t)[self.key]
        if state.x is None or self.tau <= 0.0:
            x = target
        else:
            x = state.x + (target - state.x) * (1.0 - math.exp(-(t - state.t) / self.tau))
        state.x, state.t = x, t
        return x

    def value(self, t: float, state: SensorState, rng: random.Random) -> float:
        x = self.lagged(t, state)
        noisy = x + rng.gauss(0.0, self.sd_abs + self.sd_rel * abs(x))
        if self.floor is not None:
            # A stopped machine reads exactly zero: transmitters suppress noise below their low cut-off.
            noisy = self.floor if x < STOPPED else max(self.floor, noisy)
        return self.convert(noisy)


@dataclass(frozen=True, slots=True)
class Vibration:
    """Vibration RMS: tracked, plus impacts from a worn bearing: up to 8 % of samples 1.5-3x the RMS."""

    tracked: Tracked

    def value(self, t: float, state: SensorState, rng: random.Random) -> float:
        x = self.tracked.lagged(t, state)
        noise, u, size = rng.gauss(0.0, 1.0), rng.random(), rng.random()  # always 3 draws: see module doc
        wear = sum(f.level(t) for f in self.tracked.model.faults if f.effect == "wear")
        x = 0.0 if x < STOPPED else max(0.0, x + noise * (self.tracked.sd_abs + self.tracked.sd_rel * x))
        if u < 0.08 * min(wear, 1.0):
            x *= 1.5 + 1.5 * size
        return self.tracked.convert(x)


@dataclass(frozen=True, slots=True)
class Counter:
    """An energy register (kWh): integrates the asset's power in ≤60 s steps; starts at a random reading."""

    model: AssetModel
    convert: Callable[[float], float]

    def value(self, t: float, state: SensorState, rng: random.Random) -> float:
        start = rng.uniform(2e4, 2e5)  # drawn every sample so the draw count stays constant
        if state.x is None:
            state.total, state.x = start, self.model.drivers(t)["power"]
        else:
            steps = max(1, math.ceil((t - state.t) / 60.0))
            h = (t - state.t) / steps
            prev = state.x
            for k in range(1, steps + 1):
                p = max(0.0, self.model.compute(state.t + k * h)["power"])
                state.total += (prev + p) * 0.5 * h / 3600.0
                prev = p
            state.x = prev
        state.t = t
        return self.convert(state.total)


@dataclass(frozen=True, slots=True)
class Walk:
    """A bounded random walk inside [lo, hi] (binding unit), reflected 5 % inside the edges."""

    lo: float
    hi: float

    def value(self, t: float, state: SensorState, rng: random.Random) -> float:
        span = self.hi - self.lo
        first, step = rng.random(), rng.gauss(0.0, 1.0)
        if state.x is None:
            x = self.lo + span * (0.35 + 0.3 * first)
        else:
            x = state.x + step * span * 0.01 * math.sqrt(max(t - state.t, 1.0) / 60.0)
        x = _reflect(x, self.lo + 0.05 * span, self.hi - 0.05 * span)
        state.x, state.t = x, t
        return x


def _reflect(x: float, a: float, b: float) -> float:
    """`x` folded back into [a, b] as a ball bounces between two walls."""
    if b <= a:
        return a
    w = b - a
    y = (x - a) % (2.0 * w)
    return a + (y if y <= w else 2.0 * w - y)


@dataclass(frozen=True, slots=True)
class Toggle:
    """A boolean that flips on about 2 % of samples (0/1, as the bridge wants for `bool`)."""

    def value(self, t: float, state: SensorState, rng: random.Random) -> float:
        u = rng.random()
        state.x = float(rng.random() < 0.5) if state.x is None else (1.0 - state.x if u < 0.02 else state.x)
        return state.x


@dataclass(frozen=True, slots=True)
class Count:
    """A monotonic integer counter (starts, cycles) that ticks up on about 10 % of samples."""

    def value(self, t: float, state: SensorState, rng: random.Random) -> float:
        u, start = rng.random(), rng.randrange(1000)
        state.x = float(start) if state.x is None else state.x + (1.0 if u < 0.1 else 0.0)
        return state.x


def converter(unit: str) -> Callable[[float], float]:
    """Canonical value → `unit` (identity when the unit is canonical, the common case)."""
    if units.canonical(unit) == unit:
        return float
    return lambda v: units.from_canonical(v, unit)
