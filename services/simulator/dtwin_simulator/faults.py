"""Injected faults: what a fault file says (`FaultSpec`), what the stream applies (`Fault`), the ground truth.

Asset-level faults change the physics, so every correlated sensor shows them: `filter_clogging` (filter dp
creeps up to 3.5x clean over its ramp, fan power +35 %), `bearing_wear` (vibration RMS rises by up to 7 mm/s x
severity², quadratically in time, with impacts on up to 8 % of samples), `refrigerant_leak` (supply water/air
drifts up by 4.5/6 K * severity, capacity falls). Each reaches its severity at `start + ramp` (ramp defaults to
the duration) and ends at `start + duration` (repaired). Sensor-level faults act on readings: `stuck_sensor`
repeats the last value before the window, `spiking_sensor` adds ±(60-100 %) * magnitude outliers to a share
`probability` of samples, `dropped_sensor` and `offline_device` (the whole asset) publish nothing. Every fault is
one ground-truth JSON line; a wear fault with `failure: true` adds a `failure` line at its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dtwin_simulator import times
from dtwin_simulator.fleet import Asset, Fleet, Sensor
from dtwin_simulator.signals import roles
from dtwin_simulator.signals.noise import rng_for

Kind = Literal[
    "filter_clogging",
    "bearing_wear",
    "refrigerant_leak",
    "stuck_sensor",
    "spiking_sensor",
    "dropped_sensor",
    "offline_device",
]
# kind: (physics level it raises, the kinds whose physics reads that level, the roles whose readings show it)
PHYSICAL: dict[str, tuple[str, tuple[str, ...], frozenset[str]]] = {
    "filter_clogging": ("clog", ("AHU", "Fan"), frozenset({"filter_dp", "power", "current", "flow"})),
    "bearing_wear": (
        "wear",
        ("AHU", "Fan", "Pump", "Chiller", "CoolingTower", "HeatPump", "Motor", "Compressor"),
        frozenset({"vibration", "current", "power"}),
    ),
    "refrigerant_leak": (
        "leak",
        ("AHU", "Chiller", "HeatPump"),
        frozenset({"supply_temp", "return_temp", "temp", "power"}),
    ),
}
WEAR = frozenset({"filter_clogging", "bearing_wear"})


class FaultSpec(BaseModel):
    """One fault as written in a fault file or a `--fault` flag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    asset: str
    sensor: str | None = Field(default=None, description="Binding name or metric; all the asset's when empty.")
    start: str = Field(description="ISO 8601 instant, +<duration> after the run's start or -<duration> before it.")
    duration: str = Field(description="How long it lasts, e.g. 3d.")
    ramp: str | None = Field(default=None, description="Physical faults: time to full severity (default: duration).")
    severity: float = Field(default=1.0, ge=0.0, le=5.0)
    probability: float = Field(default=0.05, ge=0.0, le=1.0, description="spiking_sensor: share of samples.")
    magnitude: float | None = Field(default=None, gt=0, description="spiking_sensor: size, binding unit.")
    failure: bool = Field(default=False, description="Wear faults: record a failure event at the end.")
    id: str | None = None

    @field_validator("start", "duration", "ramp", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        # YAML reads an unquoted timestamp as a datetime and `duration: 3600` as an int: both are meant as text.
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class Fault:
    """A fault resolved against a fleet and a run's start: absolute times (epoch ms) and affected sensors."""

    id: str
    kind: str
    asset: str
    site: str
    sensors: tuple[Sensor, ...]
    start_ms: int
    end_ms: int
    ramp_ms: int
    severity: float = 1.0
    probability: float = 0.05
    magnitude: float | None = None
    failure: bool = False
    effect: str = field(default="", compare=False)

    def active(self, t_ms: int) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    def level(self, t: float) -> float:
        """Severity * progress at epoch second `t` (0 outside the window): how far a physical fault has got."""
        ms = t * 1000.0
        if not self.start_ms <= ms < self.end_ms:
            return 0.0
        return self.severity * min(1.0, (ms - self.start_ms) / self.ramp_ms) if self.ramp_ms else self.severity


def read_specs(text: str) -> list[FaultSpec]:
    """Faults from a YAML or JSON document: a list, or a mapping with a `faults` list."""
    doc = yaml.safe_load(text) or []
    items = doc.get("faults", []) if isinstance(doc, Mapping) else doc
    return [FaultSpec.model_validate(item) for item in items]


def parse_flag(flag: str) -> FaultSpec:
    """A `--fault kind=stuck_sensor,asset=ahu-1,sensor=supply_air_temp,start=+1h,duration=2h` flag."""
    pairs = dict(part.split("=", 1) for part in flag.split(",") if part.strip())
    return FaultSpec.model_validate({k.strip(): v.strip() for k, v in pairs.items()})


def _start(spec: FaultSpec, run_start_ms: int) -> int:
    if spec.start.startswith("+"):
        return run_start_ms + times.parse_duration_ms(spec.start[1:])
    return times.parse_instant_ms(spec.start, run_start_ms)


def _targets(spec: FaultSpec, fleet: Fleet) -> tuple[Sensor, ...]:
    own = fleet.sensors_of(spec.asset)
    if spec.kind in PHYSICAL:
        shows = PHYSICAL[spec.kind][2]
        return tuple(s for s in own if roles.classify(s.metric, s.unit) in shows)
    if spec.sensor is None or spec.kind == "offline_device":
        return own
    return tuple(s for s in own if spec.sensor in (s.name, s.metric))


def _check(spec: FaultSpec, fleet: Fleet, where: str) -> tuple[Asset, tuple[Sensor, ...]]:
    """The asset and the sensors a spec acts on; raises ValueError saying what to fix."""
    if spec.asset not in {a.name for a in fleet.assets}:
        raise ValueError(f"{where}: no asset {spec.asset!r} in the fleet")
    asset = fleet.asset(spec.asset)
    sensors = _targets(spec, fleet)
    if spec.kind in PHYSICAL:
        _, kinds, shows = PHYSICAL[spec.kind]
        if asset.kind not in kinds:
            raise ValueError(f"{where}: {spec.kind} applies to {', '.join(kinds)}; {asset.name} is a {asset.kind}")
        if not sensors:
            raise ValueError(f"{where}: none of its sensors measures what it changes ({', '.join(sorted(shows))})")
    elif not sensors:
        raise ValueError(f"{where}: {spec.asset} has no sensor {spec.sensor!r} (a binding name or a metric)")
    return asset, sensors


def resolve(specs: Iterable[FaultSpec], fleet: Fleet, run_start_ms: int) -> tuple[Fault, ...]:
    """Each spec checked against the fleet and placed in time; raises ValueError saying what to fix."""
    out = []
    for n, spec in enumerate(specs, 1):
        asset, sensors = _check(spec, fleet, f"fault {spec.id or n} ({spec.kind} on {spec.asset})")
        start = _start(spec, run_start_ms)
        duration = times.parse_duration_ms(spec.duration)
        fault = Fault(
            id=spec.id or f"f{n}",
            kind=spec.kind,
            asset=spec.asset,
            site=asset.site,
            sensors=sensors,
            start_ms=start,
            end_ms=start + duration,
            ramp_ms=times.parse_duration_ms(spec.ramp) if spec.ramp else duration,
            severity=spec.severity,
            probability=spec.probability,
            magnitude=spec.magnitude,
            failure=spec.failure and spec.kind in WEAR,
            effect=PHYSICAL[spec.kind][0] if spec.kind in PHYSICAL else "",
        )
        out.append(fault)
    return tuple(out)


def _parameters(f: Fault) -> dict[str, Any]:
    if f.kind in PHYSICAL:
        return {"severity": f.severity, "ramp_s": f.ramp_ms / 1000}
    if f.kind == "spiking_sensor":
        # Without a magnitude, each spike is 0.6-1 x 40 % of the sensor's validRange span.
        return {"probability": f.probability, "magnitude": f.magnitude, "magnitude_of_range": 0.4}
    return {}


def truth(faults: Iterable[Fault]) -> list[dict[str, Any]]:
    """Ground-truth records, one per fault plus one per failure event, in fault order."""
    records: list[dict[str, Any]] = []
    for f in faults:
        where = {"asset": f.asset, "site": f.site, "sensors": [s.name for s in f.sensors]}
        where["metrics"] = [s.metric for s in f.sensors]
        start, end = times.iso(f.start_ms), times.iso(f.end_ms)
        records.append({"id": f.id, "kind": f.kind, **where, "start": start, "end": end, "parameters": _parameters(f)})
        if f.failure:
            failure = {"id": f"{f.id}/failure", "kind": "failure", **where, "start": end, "end": end}
            records.append({**failure, "parameters": {"cause": f.kind}})
    return records


class SensorFaults:
    """The sensor-level faults on one sensor and their memory (the frozen value of a stuck sensor)."""

    __slots__ = ("faults", "frozen", "last", "rngs")

    def __init__(self, faults: Iterable[Fault], seed: object, sensor: str) -> None:
        self.faults = tuple(f for f in faults if f.kind not in PHYSICAL)
        # Spikes draw from their own generator, so the sensor's noise is the same with or without them.
        self.rngs = tuple(rng_for(seed, "fault", f.id, sensor) for f in self.faults)
        self.frozen: dict[str, float] = {}
        self.last: float | None = None

    def observe(self, t_ms: int, clean: float, span: float) -> float | None:
        """The reading a faulty sensor reports for `clean` at `t_ms`; None when it reports nothing."""
        out: float | None = clean
        for f, rng in zip(self.faults, self.rngs, strict=True):
            if not f.active(t_ms) or out is None:
                continue
            if f.kind in ("dropped_sensor", "offline_device"):
                out = None
            elif f.kind == "stuck_sensor":
                out = self.frozen.setdefault(f.id, clean if self.last is None else self.last)
            else:
                u, sign, size = rng.random(), rng.random(), rng.random()
                if u < f.probability:
                    out += (1.0 if sign < 0.5 else -1.0) * (0.6 + 0.4 * size) * (f.magnitude or 0.4 * span)
        self.last = clean
        return out
