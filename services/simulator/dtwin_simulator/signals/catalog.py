"""The catalogue that ties an asset kind to its physics and a sensor role to its value model.

`design()` sizes an asset from its nameplate (`ratedPowerKw`, or a typical value per kind when absent) and, where
the nameplate says nothing, from its bindings' validRanges (a meter's peak is half its power range; a fan's
rpm fits its speed range). `signal()` picks the value model of a sensor: the family's driver for its role with
that role's inertia and noise, or a fallback when the family does not model the role. Noise figures are typical
transmitter accuracies: ±0.1 K for temperatures, 1 % for power, flow and current, 5 % for vibration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from dtwin_core import units
from dtwin_simulator.fleet import Asset, Sensor
from dtwin_simulator.signals import electrical, hvac, hydronic, roles
from dtwin_simulator.signals.base import Design, Inputs
from dtwin_simulator.signals.model import AssetModel, Count, Counter, Family, Signal, Toggle, Tracked, Vibration, Walk
from dtwin_simulator.signals.model import converter as canonical_to
from dtwin_simulator.signals.noise import hash01, key
from dtwin_simulator.signals.profile import Conditions

FAMILIES: dict[str, Family] = {
    "AHU": hvac.ahu,
    "VAV": hvac.vav,
    "Fan": hvac.fan,
    "HeatPump": hvac.heat_pump,
    "Chiller": hydronic.chiller,
    "Boiler": hydronic.boiler,
    "Pump": hydronic.pump,
    "CoolingTower": hydronic.cooling_tower,
    "Meter": electrical.meter,
    "Motor": electrical.motor,
    "Compressor": electrical.compressor,
}
TYPICAL_KW = {"AHU": 15, "VAV": 0.25, "Fan": 5.5, "HeatPump": 30, "Chiller": 250, "Boiler": 2, "Pump": 7.5}
TYPICAL_KW |= {"CoolingTower": 15, "Meter": 0, "Motor": 11, "Compressor": 37}
# role: (lag τ s, noise sd canonical, noise sd share of value)
NOISE: dict[str, tuple[float, float, float]] = {
    "supply_temp": (120, 0.08, 0),
    "return_temp": (300, 0.08, 0),
    "mixed_temp": (90, 0.12, 0),
    "zone_temp": (900, 0.05, 0),
    "outdoor_temp": (300, 0.1, 0),
    "condenser_temp": (300, 0.08, 0),
    "flue_temp": (120, 0.4, 0),
    "temp": (300, 0.1, 0),
    "filter_dp": (30, 1.0, 0.01),
    "pressure": (5, 1.0, 0.005),
    "power": (10, 0.002, 0.01),
    "current": (5, 0.01, 0.01),
    "voltage": (0, 0.6, 0),
    "speed": (20, 0.002, 0),
    "flow": (10, 0.0, 0.012),
    "gas_flow": (30, 0.0, 0.015),
    "humidity": (600, 0.5, 0),
    "co2": (600, 6.0, 0),
    "position": (20, 0.3, 0),
    "vibration": (0, 0.02, 0.05),
}


def _service(asset: Asset) -> str:
    text = f"{asset.name} {asset.display_name}".lower()
    if re.search(r"chill|chw|cool|cond|cw", text):
        return "cooling"
    return "heating" if re.search(r"heat|hot|hw|boiler", text) else "cooling"


def _top(sensors: list[tuple[Sensor, str]], role: str) -> float | None:
    """The upper end of the first `role` binding's validRange, in its canonical unit."""
    for s, r in sensors:
        if r == role and s.valid_range is not None:
            return units.to_canonical(s.valid_range[1], s.unit)
    return None


def design(asset: Asset, sensors: list[tuple[Sensor, str]], site_kw: float, seed: object) -> Design:
    kind = asset.kind
    rated = asset.rated_power_kw if asset.rated_power_kw else float(TYPICAL_KW.get(kind, 10))
    service = _service(asset)
    head = {"AHU": 600.0, "Fan": 400.0, "Pump": 200_000.0 if service == "heating" else 250_000.0}.get(kind, 0.0)
    # A boiler's small nameplate is its burner fan; its heat output is then a typical 600 kW.
    thermal = {"Chiller": 5 * rated, "HeatPump": 3.5 * rated, "Boiler": rated if rated >= 50 else 600.0}.get(kind, 0)
    flow = {
        "AHU": rated / 2.0 * 3600,  # specific fan power 2 kW per m3/s
        "Fan": rated * 3600,
        "VAV": 2000.0,
        "Pump": rated * 1000 * 0.7 / head * 3600 if head else 0.0,
        "Chiller": hydronic.chilled_water_flow(thermal),
        "Boiler": hydronic.chilled_water_flow(thermal, 20.0),
        "HeatPump": hydronic.chilled_water_flow(thermal, 5.0),
        "CoolingTower": hydronic.chilled_water_flow(rated * 70.0),
        "Compressor": rated * 10.0,
    }.get(kind, 0.0)
    flow_top = _top(sensors, "flow")
    flow = min(flow, 0.8 * flow_top) if flow_top else flow
    power_top = _top(sensors, "power")
    peak = 0.5 * power_top if power_top else max(50.0, 2.0 * site_kw)
    rpm_top = next((s.valid_range[1] for s, r in sensors if r == "speed" and s.unit == "rpm" and s.valid_range), None)
    rpm = min(1480.0, 0.85 * rpm_top) if rpm_top else 1480.0
    offset = 2.0 * hash01(key(seed, "offset", asset.name), 0) - 1.0
    return Design(rated, flow, head, float(thermal), peak, rpm, offset, service)


def provided(family: Family, d: Design) -> frozenset[str]:
    """The roles a family models (the keys of its drivers)."""
    return frozenset(family(Inputs(0.0, Conditions(0.5, True, 15.0, 0.5, 0.5), d, 0.0)))


def simulated_role(kind: str, role: str) -> str:
    """`role` as a sensor on a `kind` asset simulates it: `walk` when that kind's physics does not model it."""
    if role in ("state", "count", "walk"):
        return role
    modelled = provided(FAMILIES[kind], design(Asset("-", "-", kind), [], 0.0, 0))
    return role if (role == "energy" and "power" in modelled) or role in modelled else "walk"


def _speed_unit(unit: str, rpm: float) -> float:
    return {"percent": 100.0, "rpm": rpm, "Hz": 50.0}.get(unit, 100.0)


def signal(sensor: Sensor, role: str, model: AssetModel, d: Design, roles_modelled: frozenset[str]) -> Signal:
    """The value model of `sensor`, whose role is `role`, on an asset modelled by `model`."""
    lo, hi = sensor.valid_range or (0.0, 100.0)
    if role == "state":
        return Toggle()
    if role == "count":
        return Count()
    if role == "energy" and "power" in roles_modelled:
        return Counter(model, canonical_to(sensor.unit))
    if role not in roles_modelled or role not in NOISE:
        return Walk(lo, hi)  # what simulated_role() calls `walk`
    tau, sd_abs, sd_rel = NOISE[role]
    floor = None if role in roles.QUANTITY and roles.QUANTITY[role] == "temperature" else 0.0
    if role == "speed":
        scale = _speed_unit(sensor.unit, d.rpm)
        return Tracked(model, role, tau, sd_abs, sd_rel, lambda v: v * scale, floor)
    if role == "vibration":
        convert = canonical_to(sensor.unit) if units.quantity(sensor.unit) != "acceleration" else _to_g(d.rpm)
        return Vibration(Tracked(model, role, tau, sd_abs, sd_rel, convert, floor))
    return Tracked(model, role, tau, sd_abs, sd_rel, canonical_to(sensor.unit), floor)


def _to_g(rpm: float) -> Callable[[float], float]:
    # Velocity (mm/s) to peak acceleration (g) at the running frequency: a = 2π f v.
    omega = 2.0 * math.pi * rpm / 60.0
    return lambda v: v * omega / 1000.0 / 9.80665
