"""dtwin_core.units: the table matches the SensorBinding enum, known values convert exactly, round trips hold."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin_core import units
from dtwin_operator.api.sensorbinding import UNITS as BINDING_UNITS


def test_units_are_exactly_the_sensorbinding_enum() -> None:
    assert set(units.UNITS) == set(BINDING_UNITS)
    assert len(units.UNITS) == len(BINDING_UNITS)


@pytest.mark.parametrize(
    ("unit", "canonical"),
    [
        ("degF", "degC"),
        ("K", "degC"),
        ("psi", "Pa"),
        ("inH2O", "Pa"),
        ("gpm", "m3/h"),
        ("cfm", "m3/h"),
        ("L/s", "m3/h"),
        ("hp", "kW"),
        ("W", "kW"),
        ("MWh", "kWh"),
        ("in/s", "mm/s"),
        ("g", "g"),
        ("percentRH", "percentRH"),
        ("bool", "bool"),
    ],
)
def test_canonical_unit(unit: str, canonical: str) -> None:
    assert units.canonical(unit) == canonical
    assert units.canonical(canonical) == canonical


@pytest.mark.parametrize(
    ("value", "unit", "canonical"),
    [
        (32, "degF", 0.0),
        (212, "degF", 100.0),
        (-40, "degF", -40.0),
        (273.15, "K", 0.0),
        (0, "K", -273.15),
        (1, "bar", 100_000.0),
        (1, "kPa", 1000.0),
        (1, "inH2O", 249.08891),
        (1, "L/s", 3.6),
        (1, "gpm", 0.22712470704),  # 3.785411784 L/min
        (1, "cfm", 1.69901079552),  # 0.028316846592 m³/min
        (1500, "W", 1.5),
        (2.5, "MWh", 2500.0),
        (250, "Wh", 0.25),
        (1, "in/s", 25.4),
        (21.5, "degC", 21.5),
    ],
)
def test_known_values_are_exact(value: float, unit: str, canonical: float) -> None:
    assert units.to_canonical(value, unit) == canonical


def test_psi_and_horsepower() -> None:
    # psi = lbf/in² = 0.45359237 kg * 9.80665 m/s² / 0.0254² m² = 6894.757293168361... Pa
    assert units.to_canonical(1, "psi") == pytest.approx(6894.757293168, rel=1e-12)
    assert units.to_canonical(1, "psi") == pytest.approx(6894.757293168361, rel=1e-15)
    # mechanical hp = 550 ft·lbf/s = 745.69987158227... W (745.699872 rounded)
    assert units.to_canonical(1, "hp") * 1000 == pytest.approx(745.699872, rel=1e-9)
    assert units.to_canonical(1, "hp") * 1000 == pytest.approx(745.6998715822702, rel=1e-15)


def test_unknown_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown unit 'furlong'"):
        units.to_canonical(1, "furlong")


def test_quantities_group_convertible_units() -> None:
    assert units.convertible("psi", "bar")
    assert not units.convertible("g", "mm/s")
    assert not units.convertible("percent", "percentRH")


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(unit=st.sampled_from(units.UNITS), value=st.floats(-1e9, 1e9, allow_nan=False))
def test_round_trip(unit: str, value: float) -> None:
    there = units.to_canonical(value, unit)
    back = units.from_canonical(there, unit)
    assert math.isclose(back, value, rel_tol=1e-12, abs_tol=1e-9)
    assert units.to_canonical(units.from_canonical(there, unit), unit) == pytest.approx(there, rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("unit", units.UNITS)
def test_canonical_unit_is_identity(unit: str) -> None:
    canonical = units.canonical(unit)
    assert units.to_canonical(12.5, canonical) == 12.5
    assert units.from_canonical(12.5, canonical) == 12.5
