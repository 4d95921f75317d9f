"""The simulated fleet: Sites, Assets and SensorBindings read from dtwin YAML, as frozen, sorted records.

`build(docs)` validates each document's `spec` with the operator's own pydantic models (so the simulator reads
exactly what the API server would admit) and keeps what a device needs: where it publishes, in which format
and unit, how often, and what it measures. Sensors are sorted by binding name and devices (sensors that share
a topic and payload format, i.e. one message) by topic, so the stream's order never depends on file order.
Like the operator's routing table, a binding whose asset is missing, or that reads a field another binding
already reads on the same topic, is left out with a warning rather than silently published twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    timezone: str = "UTC"
    latitude: float | None = None


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    site: str
    kind: str
    rated_power_kw: float | None = None
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Sensor:
    """One SensorBinding as a device publishes it."""

    name: str
    asset: str
    metric: str
    topic: str
    format: str
    field: str
    unit: str
    valid_range: tuple[float, float] | None
    interval_s: int


@dataclass(frozen=True)
class Fleet:
    sites: tuple[Site, ...]
    assets: tuple[Asset, ...]
    sensors: tuple[Sensor, ...]
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def site(self, name: str) -> Site:
        return next((s for s in self.sites if s.name == name), Site(name))

    def asset(self, name: str) -> Asset:
        return next(a for a in self.assets if a.name == name)

    def sensors_of(self, asset: str) -> tuple[Sensor, ...]:
        return tuple(s for s in self.sensors if s.asset == asset)

    def select(self, *, sites: Iterable[str] = (), assets: Iterable[str] = ()) -> Fleet:
        """The part of the fleet on the given sites and/or assets (all of it when both are empty)."""
        want_sites, want_assets = set(sites), set(assets)
        kept = tuple(
            a
            for a in self.assets
            if (not want_sites or a.site in want_sites) and (not want_assets or a.name in want_assets)
        )
        names = {a.name for a in kept}
        return replace(
            self,
            sites=tuple(s for s in self.sites if s.name in {a.site for a in kept}),
            assets=kept,
            sensors=tuple(s for s in self.sensors if s.asset in names),
        )


def _by_kind(docs: Iterable[Mapping[str, Any]], kind: str) -> list[tuple[str, dict[str, Any]]]:
    found = [(str(d["metadata"]["name"]), d.get("spec") or {}) for d in docs if d and d.get("kind") == kind]
    return sorted(found, key=lambda item: item[0])


def _sensor(name: str, spec: SensorBindingSpec) -> Sensor:
    vr = spec.valid_range
    return Sensor(
        name=name,
        asset=spec.asset_ref,
        metric=spec.metric,
        topic=spec.topic,
        format=spec.payload_format,
        field=spec.field or spec.metric,
        unit=spec.unit,
        valid_range=None if vr is None else (vr.min, vr.max),
        interval_s=spec.expected_interval_seconds,
    )


def build(docs: Iterable[Mapping[str, Any]]) -> Fleet:
    """The fleet declared by `docs` (parsed YAML documents of any kinds; non-dtwin ones are ignored)."""
    docs = list(docs)
    warnings: list[str] = []
    sites = tuple(
        Site(n, s.location.timezone, s.location.latitude)
        for n, s in ((n, SiteSpec.model_validate(spec)) for n, spec in _by_kind(docs, "Site"))
    )
    assets = []
    for name, raw in _by_kind(docs, "Asset"):
        spec = AssetSpec.model_validate(raw)
        assets.append(Asset(name, spec.site_ref, spec.kind, spec.rated_power_kw, spec.display_name or ""))
    site_names = {s.name for s in sites}
    for a in assets:
        if a.site not in site_names:
            warnings.append(f"asset {a.name}: site {a.site} is not declared; simulating it in UTC")
    asset_names = {a.name for a in assets}
    sensors: list[Sensor] = []
    taken: set[tuple[str, str]] = set()
    for name, raw in _by_kind(docs, "SensorBinding"):
        sensor = _sensor(name, SensorBindingSpec.model_validate(raw))
        if sensor.asset not in asset_names:
            warnings.append(f"sensor {name}: asset {sensor.asset} is not declared; left out")
        elif (sensor.topic, sensor.field) in taken:
            warnings.append(f"sensor {name}: another binding already reads {sensor.field!r} on {sensor.topic}")
        else:
            taken.add((sensor.topic, sensor.field))
            sensors.append(sensor)
    return Fleet(sites, tuple(assets), tuple(sensors), tuple(warnings))


def read_docs(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every YAML document in the given files, or in the `*.yaml`/`*.yml` files of the given directories."""
    files: list[Path] = []
    for path in paths:
        files += sorted([*path.glob("*.yaml"), *path.glob("*.yml")]) if path.is_dir() else [path]
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict)]
