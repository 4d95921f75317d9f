"""Water-side physics: chillers, boilers, pumps and cooling towers of a central plant.

Plant equipment runs around the clock and follows the building's demand. A chiller holds 6.7 °C chilled water
(droop of 0.4 K at full load), its return is supply plus a 5.5 K design ΔT scaled by load, the condenser water
follows the cooling tower, and compressor power rises with load and condenser temperature. A refrigerant leak
raises the leaving water by up to 4.5 K and cuts capacity (the ΔT the chiller can hold) by up to 40 %. A boiler
resets its supply water from 45 to 75 °C as it gets colder outside, burns gas in proportion to load, and its
flue gas runs just above the return water (condensing). A pump's speed follows its loop's demand; flow ∝ speed,
discharge pressure = fill pressure + head * speed², power ∝ speed³, current from power.
"""

from __future__ import annotations

from dtwin_simulator.signals.base import WATER_KJ_PER_M3K, Drivers, Inputs, demand, motor_current, vibration
from dtwin_simulator.signals.noise import clamp, ramp

FILL_PA = 150_000.0  # static fill pressure of a closed loop
GAS_KWH_PER_M3 = 10.5  # natural gas, higher heating value


def chilled_water_flow(thermal_kw: float, delta_k: float = 5.5) -> float:
    """The water flow (m3/h) that carries `thermal_kw` at a ΔT of `delta_k`."""
    return thermal_kw / (WATER_KJ_PER_M3K * delta_k) * 3600.0


def wet_bulb(dry: float) -> float:
    """A rough wet-bulb temperature for a temperate climate (RH ~60-70 %)."""
    return dry - 2.5 - 0.12 * max(dry - 10.0, 0.0)


def chiller(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    load = clamp(c.cooling + 0.05 * i.wander, 0.15, 1.0)
    supply = 6.7 + 0.2 * d.offset + 0.4 * load + 4.5 * i.leak
    delta = 5.5 * load * (1.0 - 0.4 * i.leak)
    condenser = max(20.0, wet_bulb(c.outdoor_temp) + 4.0 + 2.5 * load)
    power = d.rated_kw * (0.18 + 0.82 * load) * (1.0 + 0.015 * (condenser - 25.0)) * (1.0 + 0.1 * i.leak)
    return {
        "supply_temp": supply,
        "return_temp": supply + delta,
        "temp": supply,
        "condenser_temp": condenser,
        "outdoor_temp": c.outdoor_temp,
        "power": power,
        "current": motor_current(power),
        "speed": load,
        "flow": d.flow,
        "pressure": 8.5e5 + 2.5e4 * (condenser - 25.0),  # condensing refrigerant pressure
        "vibration": vibration(load, i.wear, base=1.4, per_speed=1.2),
    }


def boiler(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    load = clamp(c.heating + 0.04 * i.wander, 0.05, 1.0)  # never quite off: domestic hot water
    supply = 45.0 + 30.0 * (1.0 - ramp(c.outdoor_temp, -10.0, 15.0)) + 0.5 * d.offset
    ret = supply - 3.0 - 14.0 * load
    fan_kw = d.rated_kw * (0.2 + 0.8 * load)
    return {
        "supply_temp": supply,
        "return_temp": ret,
        "temp": supply,
        "flue_temp": ret + 6.0 + 20.0 * load,
        "outdoor_temp": c.outdoor_temp,
        "gas_flow": d.thermal_kw * load / (GAS_KWH_PER_M3 * 0.95),
        "flow": d.flow,
        "power": fan_kw,
        "current": motor_current(fan_kw, 230.0 * 1.7320508, 0.9),
        "pressure": FILL_PA + 30_000.0 * load,
        "speed": load,
    }


def pump(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    speed = clamp(0.45 + 0.5 * demand(i) + 0.03 * i.wander, 0.4, 0.97)
    power = d.rated_kw * 0.9 * speed**3 * (1.0 + 0.05 * i.wear)
    heating = d.service == "heating"
    supply = (45.0 + 30.0 * (1.0 - ramp(c.outdoor_temp, -10.0, 15.0))) if heating else 6.9
    return {
        "speed": speed,
        "flow": d.flow * speed,
        "pressure": FILL_PA + d.head_pa * speed * speed,
        "power": power,
        "current": motor_current(power),
        "vibration": vibration(speed, i.wear, base=0.9, per_speed=1.5),
        "supply_temp": supply,
        "return_temp": supply - 12.0 * demand(i) if heating else supply + 5.5 * demand(i),
        "temp": supply,
    }


def cooling_tower(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    load = clamp(c.cooling + 0.05 * i.wander, 0.15, 1.0)
    wb = wet_bulb(c.outdoor_temp)
    # The fan holds the basin near wet bulb + approach, but never below 19 °C: the chillers' minimum.
    speed = clamp(0.2 + 0.75 * load * ramp(wb, 2.0, 22.0), 0.2, 1.0)
    basin = max(19.0, wb + 3.5 + 2.5 * load * (1.2 - speed))
    power = d.rated_kw * speed**3 * (1.0 + 0.05 * i.wear)
    return {
        "speed": speed,
        "supply_temp": basin,
        "condenser_temp": basin,
        "temp": basin,
        "return_temp": basin + 5.5 * load,
        "outdoor_temp": c.outdoor_temp,
        "power": power,
        "current": motor_current(power),
        "flow": d.flow,
        "vibration": vibration(speed, i.wear, base=1.0, per_speed=2.0),
    }
