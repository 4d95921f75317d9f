"""Air-side physics: air handling units, VAV boxes, fans and heat pumps.

An AHU runs on the HVAC schedule and is off at night. Running, its supply fan speed follows the building's
demand (affinity laws then give airflow ∝ speed, filter and duct pressure ∝ speed², fan power ∝ speed³), its
supply-air setpoint is reset from 13 °C in warm weather to 18 °C in the cold, the return air is the zones'
temperature plus plenum gain, mixed air blends outdoor and return air by the economiser's outdoor-air share,
and CO2 and humidity follow occupancy. Filter clogging multiplies the filter's resistance (dp up to 3.5x clean
at full severity) and costs fan power (+35 %) and a little airflow; a refrigerant leak in a DX coil lets the
supply air drift up to 6 K above setpoint. A VAV box modulates its damper and airflow on zone cooling demand.
"""

from __future__ import annotations

from dtwin_simulator.signals.base import Drivers, Inputs, motor_current, vibration
from dtwin_simulator.signals.noise import clamp, ramp

CLEAN_FILTER_PA = 140.0  # a medium filter at design airflow


def _zone(i: Inputs) -> float:
    c = i.c
    if c.occupied:
        return 21.5 + 1.6 * (c.cooling - 0.4) + 0.3 * i.wander + 0.3 * i.d.offset
    # Unoccupied, zones float towards a setback held by the heating plant.
    return 19.0 + 0.12 * (c.outdoor_temp - 10.0) + 0.3 * i.d.offset


def ahu(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    zone = _zone(i)
    on = c.occupied
    speed = clamp(0.45 + 0.45 * max(c.cooling, 0.8 * c.heating) + 0.05 * i.wander, 0.3, 0.95) if on else 0.0
    oa = 0.2 + 0.45 * ramp(c.outdoor_temp, 6.0, 11.0) * (1.0 - ramp(c.outdoor_temp, 16.0, 21.0)) if on else 0.0
    ret = zone + (0.8 if on else 0.0)
    mixed = oa * c.outdoor_temp + (1.0 - oa) * ret if on else 0.5 * (zone + c.outdoor_temp)
    setpoint = 13.0 + 5.0 * (1.0 - ramp(c.outdoor_temp, 0.0, 16.0)) + 0.2 * d.offset
    supply = setpoint + 0.6 * c.cooling + 6.0 * i.leak if on else zone - 1.0
    resistance = 1.0 + 2.5 * i.clog
    power = d.rated_kw * 0.85 * speed**3 * (1.0 + 0.35 * i.clog) * (1.0 + 0.03 * i.wear)
    return {
        "supply_temp": supply,
        "return_temp": ret,
        "mixed_temp": mixed,
        "zone_temp": zone,
        "outdoor_temp": c.outdoor_temp,
        "temp": supply,
        "speed": speed,
        "flow": d.flow * speed * (1.0 - 0.12 * i.clog),
        "filter_dp": CLEAN_FILTER_PA * speed * speed * resistance,
        "pressure": d.head_pa * speed * speed,
        "power": power,
        "current": motor_current(power),
        "position": 100.0 * oa,
        "humidity": 38.0 + 12.0 * c.occupancy + 2.0 * i.wander,
        "co2": 420.0 + 550.0 * c.occupancy * (1.0 - 0.5 * oa),
        "vibration": vibration(speed, i.wear),
    }


def vav(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    zone = _zone(i)
    share = clamp(0.3 + 0.8 * (c.cooling - 0.2) + 0.1 * i.wander, 0.3, 1.0) if c.occupied else 0.0
    power = d.rated_kw * 0.8 * share**3  # the box's own fan, fan-powered terminals
    return {
        "zone_temp": zone,
        "temp": zone,
        "supply_temp": 14.0 + 6.0 * c.heating if c.occupied else zone,
        "flow": d.flow * share,
        "position": 10.0 + 85.0 * (share - 0.3) / 0.7 if c.occupied else 0.0,
        "co2": 420.0 + 650.0 * c.occupancy,
        "humidity": 36.0 + 14.0 * c.occupancy + 2.0 * i.wander,
        "power": power,
        "current": motor_current(power, 230.0 * 1.7320508, 0.9),
        "speed": share,
        "outdoor_temp": c.outdoor_temp,
    }


def fan(i: Inputs) -> Drivers:
    """Extract fans: schedule-driven, near-constant speed, a little higher when the building is busy."""
    c, d = i.c, i.d
    speed = clamp(0.7 + 0.2 * c.occupancy + 0.03 * i.wander, 0.5, 0.95) if c.occupied else 0.0
    power = d.rated_kw * 0.8 * speed**3 * (1.0 + 0.05 * i.wear)
    return {
        "speed": speed,
        "flow": d.flow * speed * (1.0 - 0.1 * i.clog),
        "pressure": d.head_pa * speed * speed,
        "filter_dp": CLEAN_FILTER_PA * speed * speed * (1.0 + 2.5 * i.clog),
        "power": power * (1.0 + 0.3 * i.clog),
        "current": motor_current(power * (1.0 + 0.3 * i.clog)),
        "vibration": vibration(speed, i.wear),
        "temp": _zone(i) + 1.0,
        "outdoor_temp": c.outdoor_temp,
    }


def heat_pump(i: Inputs) -> Drivers:
    """Air-to-water heat pump: heats below 15 °C outside, cools above; a leak warms the leaving water."""
    c, d = i.c, i.d
    heating = c.outdoor_temp < 15.0
    load = clamp((c.heating if heating else c.cooling) + 0.05 * i.wander, 0.15, 1.0)
    supply = (35.0 + 15.0 * load - 4.0 * i.leak) if heating else (7.0 + 0.5 * load + 4.5 * i.leak)
    ret = supply - 5.0 * load if heating else supply + 5.0 * load
    power = d.rated_kw * (0.2 + 0.8 * load) * (1.0 + 0.1 * i.leak)
    return {
        "supply_temp": supply,
        "return_temp": ret,
        "temp": supply,
        "outdoor_temp": c.outdoor_temp,
        "power": power,
        "current": motor_current(power),
        "speed": load,
        "flow": d.flow,
        "pressure": 1.2e6 + 8e5 * load if heating else 9e5 + 4e5 * load,  # refrigerant discharge
        "vibration": vibration(load, i.wear),
    }
