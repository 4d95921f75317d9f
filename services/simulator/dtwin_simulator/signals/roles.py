"""Which physical role a sensor plays, from its metric name first and its unit's quantity second.

The metric is split into words (`chw_supply_temp` → chw, supply, temp) and matched against patterns in order,
most specific first: an `energy` counter, `vibration`, a filter differential pressure, then temperatures by
position (flue, condenser/basin, supply/leaving, return/entering, mixed, outdoor, zone/room), then power,
current, voltage, speed, flow, pressure, humidity, CO2 and positions. A name that matches nothing, or whose
role measures another quantity than the binding's unit, is classified by the unit alone (a `kPa` binding is a
pressure); what is still unknown (a ratio, a count, a boolean) falls back to a bounded random walk, a counter
or a rarely toggling state, so every binding publishes something plausible in its validRange.
"""

from __future__ import annotations

import re

from dtwin_core import units

_TEMP = {"temp", "temperature", "tmp", "t"}
# (role, words that must all be present, any-of words (empty = no constraint)), first match wins.
_NAME_RULES: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = tuple(
    (role, frozenset(all_of.split()), frozenset(any_of.split()))
    for role, all_of, any_of in (
        ("energy", "", "energy kwh consumption"),
        ("vibration", "", "vibration vib"),
        ("filter_dp", "filter", "dp differential pressure delta"),
        ("filter_dp", "", "differential"),
        ("flue_temp", "", "flue exhaust stack"),
        ("condenser_temp", "", "condenser cw basin tower"),
        ("supply_temp", "", "supply leaving discharge sat lwt sa"),
        ("return_temp", "", "return entering rat ewt ra"),
        ("mixed_temp", "", "mixed mat ma"),
        ("outdoor_temp", "", "outdoor outside oat ambient oa"),
        ("zone_temp", "", "zone room space indoor"),
    )
)
_OTHER_RULES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (role, frozenset(words.split()))
    for role, words in (
        ("walk", "factor pf"),
        ("power", "power kw demand"),
        ("current", "current amps amp amperage"),
        ("voltage", "voltage volt volts"),
        ("speed", "speed rpm frequency freq hz vfd"),
        ("gas_flow", "gas"),
        ("flow", "flow airflow cfm"),
        ("pressure", "pressure head static dp"),
        ("humidity", "humidity rh"),
        ("co2", "co2"),
        ("position", "damper valve position pos command"),
    )
)
# The quantity (dtwin_core.units) each role produces; `speed` and `vibration` convert themselves.
QUANTITY = {
    "energy": "energy",
    "filter_dp": "pressure",
    "pressure": "pressure",
    "power": "power",
    "current": "current",
    "voltage": "voltage",
    "flow": "flow",
    "gas_flow": "flow",
    "humidity": "relative_humidity",
    "co2": "concentration",
    "position": "ratio",
    "speed": "ratio rotational_speed frequency",
    "vibration": "vibration_velocity acceleration",
    **{r: "temperature" for r in ("flue_temp", "condenser_temp", "supply_temp", "return_temp")},
    **{r: "temperature" for r in ("mixed_temp", "outdoor_temp", "zone_temp", "temp")},
}
_BY_QUANTITY = {
    "temperature": "temp",
    "pressure": "pressure",
    "flow": "flow",
    "power": "power",
    "energy": "energy",
    "current": "current",
    "voltage": "voltage",
    "frequency": "speed",
    "rotational_speed": "speed",
    "vibration_velocity": "vibration",
    "acceleration": "vibration",
    "concentration": "co2",
    "relative_humidity": "humidity",
    "count": "count",
    "state": "state",
}


def _by_name(words: set[str]) -> str | None:
    temp = bool(words & _TEMP)
    for role, all_of, any_of in _NAME_RULES:
        if all_of <= words and (not any_of or words & any_of):
            if role.endswith("_temp") and not temp:
                continue
            return role
    for role, any_of in _OTHER_RULES:
        if words & any_of:
            return role
    return "temp" if temp else None


def classify(metric: str, unit: str) -> str:
    """The role of a sensor measuring `metric` in `unit` (a key of the drivers, or energy/walk/count/state)."""
    quantity = units.quantity(unit)
    role = _by_name(set(re.split(r"[^a-z0-9]+", metric.lower())))
    if role is not None and (role == "walk" or quantity in QUANTITY.get(role, "").split()):
        return role
    return _BY_QUANTITY.get(quantity, "walk")
