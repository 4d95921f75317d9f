"""What an asset family's physics reads and returns: `Inputs` in, a dict of canonical-unit drivers out.

A family (`hvac`, `hydronic`, `electrical`) maps the site's `Conditions`, the asset's `Design` (sizes derived
from its nameplate and its bindings' ranges), a slow per-asset disturbance and the levels of the asset-level
faults acting on it (filter clogging, bearing wear, refrigerant leak; each severity * progress, 0 when absent)
to noise-free values of every quantity it models, keyed by role: `supply_temp` in degC, `filter_dp` and
`pressure` in Pa, `flow` in m3/h, `power` in kW, `speed` as a fraction of full speed, and so on. Sensors add
inertia, noise and unit conversion on top (`signals.model`); the family is where correlation comes from,
because every sensor of an asset reads the same drivers at the same instant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dtwin_simulator.signals.profile import Conditions

Drivers = dict[str, float]
SQRT3 = math.sqrt(3.0)
LINE_VOLTAGE = 400.0  # V line-to-line, the European LV network the demo campus sits on
WATER_KJ_PER_M3K = 4186.0  # volumetric heat capacity of water, kJ/(m3·K)


@dataclass(frozen=True, slots=True)
class Design:
    """Sizes of one asset, canonical units; derived once from its spec and bindings (`signals.model.design`)."""

    rated_kw: float  # electrical nameplate power
    flow: float  # m3/h of the medium it moves at full speed
    head_pa: float  # pressure rise at full speed (pumps, fans)
    thermal_kw: float  # heating/cooling capacity
    peak_kw: float  # meters: the demand they see at peak
    rpm: float  # nominal shaft speed
    offset: float  # -1..1: units are never commissioned exactly alike
    service: str  # "cooling" or "heating": which demand a pump or heat pump follows


@dataclass(frozen=True, slots=True)
class Inputs:
    t: float  # epoch seconds, for families with their own cycles (compressors)
    c: Conditions
    d: Design
    wander: float  # -1..1 slow load variation of this asset (20 min value noise)
    clog: float = 0.0  # filter clogging level
    wear: float = 0.0  # bearing wear level
    leak: float = 0.0  # refrigerant leak level


def motor_current(power_kw: float, voltage: float = LINE_VOLTAGE, pf: float = 0.85) -> float:
    """Line current (A) of a three-phase motor drawing `power_kw`."""
    return power_kw * 1000.0 / (SQRT3 * voltage * pf)


def vibration(speed: float, wear: float, base: float = 0.8, per_speed: float = 1.6) -> float:
    """Vibration velocity RMS (mm/s): grows with speed; a worn bearing adds up to ~7 mm/s * severity.

    The wear term is quadratic in the fault's progress (`wear` is severity * progress), as bearing defects
    grow slowly at first and then fast; a stopped machine does not vibrate however worn it is.
    """
    if speed <= 0.0:
        return 0.02
    return (base + per_speed * speed * speed) * (1.0 + 0.04 * wear) + 7.0 * wear * wear * min(1.0, speed / 0.5)


def demand(i: Inputs) -> float:
    """The demand an asset serving `i.d.service` follows."""
    return i.c.heating if i.d.service == "heating" else i.c.cooling
