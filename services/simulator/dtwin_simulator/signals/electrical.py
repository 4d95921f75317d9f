"""Electrical and rotating-machine physics: meters, motors and air compressors.

A main meter sees the whole site: a night baseline of 30 % of peak demand (servers, lighting, fridges) plus
load that follows occupancy and the HVAC demand; the line voltage sags by up to 2.5 % as demand rises, and the
current follows from power and voltage (energy is the integral of this power, kept by the sensor as a counter).
A motor drives a process that follows occupancy during the day and idles at night. An air compressor loads and
unloads between its cut-in and cut-out pressures (6.5 and 7.5 bar): the share of time it runs loaded follows
demand, drawing full power loaded and 30 % unloaded. Worn bearings raise vibration and current in all of them.
"""

from __future__ import annotations

import math

from dtwin_simulator.signals.base import LINE_VOLTAGE, SQRT3, Drivers, Inputs, motor_current, vibration
from dtwin_simulator.signals.noise import clamp

BAR = 100_000.0


def meter(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    hvac = max(c.cooling, c.heating) * (0.5 + 0.5 * c.occupancy)
    power = d.peak_kw * (0.3 + 0.45 * c.occupancy + 0.25 * hvac) * (1.0 + 0.03 * i.wander)
    voltage = LINE_VOLTAGE * (1.0 + 0.01 - 0.035 * power / max(d.peak_kw, 1e-9))
    return {
        "power": power,
        "voltage": voltage,
        "current": power * 1000.0 / (SQRT3 * voltage * 0.93),
        "speed": 1.0,  # mains frequency as a fraction of nominal
        "outdoor_temp": c.outdoor_temp,
    }


def motor(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    speed = clamp(0.55 + 0.4 * c.occupancy + 0.04 * i.wander, 0.5, 1.0)
    power = d.rated_kw * 0.8 * speed**2 * (1.0 + 0.06 * i.wear)
    return {
        "speed": speed,
        "power": power,
        "current": motor_current(power),
        "voltage": LINE_VOLTAGE,
        "vibration": vibration(speed, i.wear, base=0.7, per_speed=1.3),
        "temp": 40.0 + 35.0 * power / max(d.rated_kw, 1e-9) + 0.3 * (c.outdoor_temp - 15.0),  # winding
        "flow": d.flow * speed,
        "pressure": d.head_pa * speed * speed,
    }


def compressor(i: Inputs) -> Drivers:
    c, d = i.c, i.d
    duty = clamp(0.25 + 0.55 * c.occupancy + 0.1 * i.wander, 0.15, 0.95)
    # One load/unload cycle every 4 minutes; pressure saws up while loaded and bleeds down unloaded.
    phase = (i.t / 240.0) % 1.0
    loaded = phase < duty
    saw = phase / duty if loaded else 1.0 - (phase - duty) / (1.0 - duty)
    power = d.rated_kw * (1.0 if loaded else 0.3) * (1.0 + 0.05 * i.wear)
    return {
        "pressure": 6.5 * BAR + 1.0 * BAR * saw,
        "power": power,
        "current": motor_current(power),
        "speed": 1.0 if loaded else 0.6,
        "temp": 75.0 + 15.0 * duty + 3.0 * math.sin(2 * math.pi * phase),  # discharge air
        "flow": d.flow * (1.0 if loaded else 0.0),
        "vibration": vibration(1.0 if loaded else 0.6, i.wear, base=1.5, per_speed=1.5),
        "outdoor_temp": c.outdoor_temp,
    }
