"""What the whole site lives through: occupancy by local hour and weekday, HVAC schedule, weather, demand.

`Climate(site, seed).at(t)` gives the `Conditions` every asset of a site shares at epoch second `t`: occupancy
(0..1, a full weekday at 1: staff arrive 7-9 h and leave 17-19:30 local time, a lunch dip, Saturday mornings at
a quarter, Sundays near empty, ±10 % from day to day), whether HVAC runs its occupied mode (weekdays 6-20 h,
Saturday 8-15 h), the outdoor temperature (a seasonal cosine whose mean and swing follow the latitude, warmest
mid-July in the north, a diurnal swing peaking at 15 h, and weather fronts as 36 h and 4 h value noise), and
the building's cooling and heating demand derived from both. Local time comes from the Site's IANA zone, so
the schedule follows daylight saving time like a real building's controller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from dtwin_simulator.signals.noise import clamp, key, ramp, smooth

DAY = 86_400.0
QUANTUM = 10.0  # s; schedule edges (whole minutes in every zone) stay exact


@dataclass(frozen=True, slots=True)
class Conditions:
    occupancy: float  # people in the building, 1 = a full weekday
    occupied: bool  # HVAC in occupied mode (schedule, with pre-start before people arrive)
    outdoor_temp: float  # degC
    cooling: float  # building cooling demand 0..1
    heating: float  # building heating demand 0..1


def occupancy(hour: float, weekday: int) -> float:
    """Share of a full weekday's people at local `hour` of `weekday` (0 = Monday)."""
    if weekday < 5:
        lunch = 0.12 * ramp(hour, 11.8, 12.5) * (1.0 - ramp(hour, 13.5, 14.2))
        return ramp(hour, 7.0, 9.0) * (1.0 - ramp(hour, 17.0, 19.5)) * (1.0 - lunch)
    if weekday == 5:
        return 0.25 * ramp(hour, 8.5, 10.0) * (1.0 - ramp(hour, 13.0, 14.5))
    return 0.03 * ramp(hour, 10.0, 11.0) * (1.0 - ramp(hour, 15.0, 16.0))


def hvac_occupied(hour: float, weekday: int) -> bool:
    """The HVAC time schedule: it starts before people arrive so the building is comfortable at 8 h."""
    if weekday < 5:
        return 6.0 <= hour < 20.0
    return weekday == 5 and 8.0 <= hour < 15.0


class Climate:
    """The conditions of one site over time; a pure function of (site, seed, t), memoised on a 10 s grid."""

    def __init__(self, timezone: str, latitude: float | None, seed: object, site: str) -> None:
        self._tz = ZoneInfo(timezone)
        lat = 45.0 if latitude is None else latitude
        self._mean = 27.0 - 0.3 * abs(lat)  # annual mean outdoor temperature, degC
        self._swing = 3.0 + 0.15 * abs(lat)  # half the summer-winter difference
        self._south = lat < 0  # seasons are six months apart south of the equator
        self._fronts, self._gusts, self._days = (key(seed, part, site) for part in ("fronts", "gusts", "days"))
        self._cache: dict[float, Conditions] = {}

    def outdoor(self, t: float, local: datetime) -> float:
        doy = local.timetuple().tm_yday + (6 * 30.4 if self._south else 0.0)
        hour = local.hour + local.minute / 60.0
        seasonal = self._mean - self._swing * math.cos(2 * math.pi * (doy - 15) / 365.25)
        diurnal = 4.5 * math.cos(2 * math.pi * (hour - 15.0) / 24.0)
        return seasonal + diurnal + 3.5 * smooth(self._fronts, t, 1.5 * DAY) + smooth(self._gusts, t, 4 * 3600.0)

    def at(self, t: float) -> Conditions:
        """The conditions at `t`, on a 10 s grid: they change over hours, and a site's devices share them."""
        t -= t % QUANTUM
        cached = self._cache.get(t)
        if cached is not None:
            return cached
        if len(self._cache) > 64:  # devices report within a few cycles of each other; older entries are done
            self._cache.clear()
        local = datetime.fromtimestamp(t, self._tz)
        hour, weekday = local.hour + local.minute / 60.0 + local.second / 3600.0, local.weekday()
        occ = occupancy(hour, weekday) * (0.9 + 0.1 * smooth(self._days, t, DAY))
        out = self.outdoor(t, local)
        cooling = clamp(0.12 + 0.45 * occ + 0.035 * (out - 14.0), 0.05, 1.0)
        heating = clamp((16.0 - out) / 26.0 + (0.1 if hvac_occupied(hour, weekday) else 0.0), 0.0, 1.0)
        cond = Conditions(occ, hvac_occupied(hour, weekday), out, cooling, heating)
        self._cache[t] = cond
        return cond
