"""Seeded randomness that is a pure function of its inputs: stream keys, per-sensor generators, smooth noise.

Two kinds of randomness drive the simulator. Measurement noise comes from one `random.Random` per sensor,
seeded from the run's seed and the sensor's name (`rng_for`), so adding a sensor never shifts another's draws.
Slow process variation (weather, occupancy from day to day, each asset's load wander) must be shared by all
sensors of a site or an asset whatever order they sample in, so it is value noise: a hash of (key, knot index)
at knots `period` seconds apart, eased between them — a pure function of time, with no state to advance.
`random.Random` seeded with a str hashes it with SHA-512, so both are the same on every platform and run.
"""

from __future__ import annotations

import hashlib
import math
import random

_MASK = (1 << 64) - 1


def key(*parts: object) -> int:
    """A 64-bit key for a named stream, e.g. key(seed, "weather", site)."""
    text = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def rng_for(*parts: object) -> random.Random:
    """An independent generator for a named stream (a sensor, a fault on a sensor)."""
    return random.Random("/".join(str(p) for p in parts))


def hash01(k: int, i: int) -> float:
    """A uniform number in [0, 1) for knot `i` of stream `k` (splitmix64 finaliser)."""
    z = (k + (i + 1) * 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) / 2.0**64


def smooth(k: int, t: float, period: float) -> float:
    """Smooth value noise in [-1, 1] at time `t` (s): random knots every `period` s, smoothstep between."""
    x = t / period
    i = math.floor(x)
    f = x - i
    f = f * f * (3.0 - 2.0 * f)
    a = hash01(k, i)
    return 2.0 * (a + (hash01(k, i + 1) - a) * f) - 1.0


def ramp(x: float, lo: float, hi: float) -> float:
    """0 below `lo`, 1 above `hi`, smoothstep between: how schedules and setpoint resets blend."""
    if x <= lo:
        return 0.0
    if x >= hi:
        return 1.0
    f = (x - lo) / (hi - lo)
    return f * f * (3.0 - 2.0 * f)


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x
