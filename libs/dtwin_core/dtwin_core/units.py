"""Units a SensorBinding may declare, the canonical unit of each quantity, and exact conversions between them.

The bridge stores every reading in its quantity's canonical unit (degC, Pa, m3/h, kW, kWh, mm/s, ...), so
readings of one quantity compare and aggregate whatever the device sent; dashboards and rules show that unit.
Each factor is derived from its legal definition (1 lb = 0.45359237 kg, 1 in = 0.0254 m, g_n = 9.80665 m/s²,
1 US gal = 231 in³) as an exact fraction, so no truncated constant creeps in. The table mirrors the `Unit`
literal of `dtwin_operator.api.sensorbinding`; a test keeps the two equal, because this package must not
import the operator.
"""

from __future__ import annotations

from fractions import Fraction
from typing import NamedTuple

_LB = Fraction("0.45359237")  # kg
_IN = Fraction("0.0254")  # m
_FT = 12 * _IN
_G_N = Fraction("9.80665")  # m/s², standard gravity
_LBF = _LB * _G_N  # N
_US_GAL = 231 * _IN**3  # m³
_F64_EXACT = 2**53  # integers up to this are exact as floats


class _Conv(NamedTuple):
    """canonical = (value + offset) * num / den, with num/den small integers where the factor allows it."""

    quantity: str
    offset: float
    num: float
    den: float


def _conv(quantity: str, factor: Fraction | int = 1, offset: Fraction | int = 0) -> _Conv:
    f = Fraction(factor)
    # Multiplying then dividing by exact integers rounds once per step and keeps simple cases exact
    # (212 degF -> 180 * 5 / 9 == 100.0, where 180 * 0.5555555555555556 would not be).
    if f.numerator < _F64_EXACT and f.denominator < _F64_EXACT:
        return _Conv(quantity, float(offset), float(f.numerator), float(f.denominator))
    return _Conv(quantity, float(offset), float(f), 1.0)


# Canonical unit of each quantity: the first unit listed for it below.
_TABLE: dict[str, _Conv] = {
    "degC": _conv("temperature"),
    "degF": _conv("temperature", Fraction(5, 9), -32),
    "K": _conv("temperature", 1, Fraction("-273.15")),
    "Pa": _conv("pressure"),
    "kPa": _conv("pressure", 1000),
    "bar": _conv("pressure", 100_000),
    "psi": _conv("pressure", _LBF / _IN**2),
    "inH2O": _conv("pressure", _IN * 1000 * _G_N),  # conventional inch of water: 1000 kg/m³ under g_n
    "percent": _conv("ratio"),
    "percentRH": _conv("relative_humidity"),
    "m3/h": _conv("flow"),
    "L/s": _conv("flow", Fraction(3600, 1000)),
    "gpm": _conv("flow", _US_GAL * 60),
    "cfm": _conv("flow", _FT**3 * 60),
    "kW": _conv("power"),
    "W": _conv("power", Fraction(1, 1000)),
    "hp": _conv("power", 550 * _FT * _LBF / 1000),  # mechanical horsepower, 550 ft·lbf/s
    "kWh": _conv("energy"),
    "Wh": _conv("energy", Fraction(1, 1000)),
    "MWh": _conv("energy", 1000),
    "A": _conv("current"),
    "V": _conv("voltage"),
    "Hz": _conv("frequency"),
    "rpm": _conv("rotational_speed"),
    "mm/s": _conv("vibration_velocity"),
    "in/s": _conv("vibration_velocity", _IN * 1000),
    # An acceleration: it cannot become a velocity without the vibration's frequency, so it stays apart.
    "g": _conv("acceleration"),
    "ppm": _conv("concentration"),
    "m/s": _conv("velocity"),
    "count": _conv("count"),
    "bool": _conv("state"),
}

UNITS: tuple[str, ...] = tuple(_TABLE)
# Reversed, so the first unit listed for a quantity is the one that stays.
CANONICAL: dict[str, str] = {c.quantity: unit for unit, c in reversed(_TABLE.items())}


def _get(unit: str) -> _Conv:
    try:
        return _TABLE[unit]
    except KeyError:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}") from None


def quantity(unit: str) -> str:
    """The physical quantity a unit measures, e.g. 'pressure' for 'psi'."""
    return _get(unit).quantity


def canonical(unit: str) -> str:
    """The unit readings in `unit` are stored in, e.g. 'Pa' for 'psi'."""
    return CANONICAL[_get(unit).quantity]


def to_canonical(value: float, unit: str) -> float:
    """`value` expressed in `unit`, converted to the canonical unit of its quantity."""
    c = _get(unit)
    return (value + c.offset) * c.num / c.den


def from_canonical(value: float, unit: str) -> float:
    """A canonical-unit `value` converted to `unit` (the inverse of `to_canonical`)."""
    c = _get(unit)
    return value * c.den / c.num - c.offset


def convertible(a: str, b: str) -> bool:
    """True when both units measure the same quantity."""
    return quantity(a) == quantity(b)
