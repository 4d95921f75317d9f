"""How a CSV's columns map to a Site's sensors: the import plan, checked whole before a single row is read.

Wide files have one timestamp column and one value column per sensor; a column is mapped by `--map COL=TARGET`
or, by default, by its header. Long files have a timestamp, a `value`, and either a `sensor` column or `asset`
and `metric` columns (optionally a `unit` column); `--map` then renames sensor keys. A TARGET is
`<asset>.<metric>` or a SensorBinding name. `--unit COL=UNIT` names the unit a column (or long-format sensor key)
is written in, when it differs from the binding's; it must measure the same quantity. Every mistake here is a
`CliError` naming the column, because an import that silently skips a column is worse than one that stops.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from dtwin_bridge.model import Route, RoutingTable
from dtwin_cli.errors import CliError
from dtwin_core import units

Format = Literal["wide", "long"]


@dataclass(frozen=True)
class Column:
    """One source of values: a wide column, or one sensor key of a long file."""

    source: str
    route: Route
    unit: str | None  # the CSV's unit, when it differs from the binding's


@dataclass(frozen=True)
class Layout:
    format: Format
    time_index: int
    columns: tuple[tuple[int, Column], ...] = ()  # wide: (column index, what it holds)
    keys: Mapping[str, Column] = field(default_factory=dict)  # long: sensor key -> what it is
    sensor_index: int | None = None  # long: `sensor` column, or `asset` + `metric`
    asset_index: int | None = None
    metric_index: int | None = None
    value_index: int | None = None
    unit_index: int | None = None
    skipped: tuple[str, ...] = ()


def pairs(options: Sequence[str], flag: str) -> dict[str, str]:
    """`["A=B", ...]` -> {A: B}; the last `=` splits, so a header may itself hold one."""
    out = {}
    for opt in options:
        key, sep, value = opt.rpartition("=")
        if not sep or not key or not value:
            raise CliError(f"{flag} expects COL=VALUE, got {opt!r}")
        out[key] = value
    return out


def _targets(table: RoutingTable) -> dict[str, Route]:
    """Every name a route answers to: `<asset>.<metric>` and the SensorBinding's own name."""
    found = {f"{r.asset}.{r.metric}": r for r in table.routes}
    found.update({r.sensor: r for r in table.routes})
    return found


def _column(source: str, target: str, targets: Mapping[str, Route], unit: str | None, site: str) -> Column:
    route = targets.get(target)
    if route is None:
        known = ", ".join(sorted({f"{r.asset}.{r.metric}" for r in targets.values()})[:8])
        raise CliError(
            f"unmapped column {source!r}: site {site} has no sensor {target!r} "
            f"(use --map {source}=ASSET.METRIC or --skip {source}; known: {known})"
        )
    if unit is not None and unit != route.unit:
        if unit not in units.UNITS:
            raise CliError(f"--unit {source}={unit}: unknown unit (known: {', '.join(units.UNITS)})")
        if not units.convertible(unit, route.unit):
            raise CliError(f"--unit {source}={unit}: {route.sensor} is declared in {route.unit}; {unit} is not "
                           f"a {units.quantity(route.unit)} unit")  # fmt: skip
        return Column(source, route, unit)
    return Column(source, route, None)


def plan(
    header: Sequence[str],
    table: RoutingTable,
    site: str,
    fmt: Format,
    time_column: str,
    maps: Mapping[str, str],
    unit_of: Mapping[str, str],
    skip: Sequence[str] = (),
) -> Layout:
    names = [h.strip() for h in header]
    if time_column not in names:
        raise CliError(f"no timestamp column {time_column!r} in the header ({', '.join(names)}); use --time-column")
    time_index = names.index(time_column)
    targets = _targets(table)
    if fmt == "long":
        return _long(names, time_index, table, site, maps, unit_of, targets)
    for key in [*maps, *unit_of]:
        if key not in names:
            raise CliError(f"--map/--unit name column {key!r}, which is not in the header ({', '.join(names)})")
    columns = tuple(
        (i, _column(name, maps.get(name, name), targets, unit_of.get(name), site))
        for i, name in enumerate(names)
        if i != time_index and name not in skip
    )
    if not columns:
        raise CliError("no value columns to import besides the timestamp")
    return Layout("wide", time_index, columns=columns, skipped=tuple(s for s in skip if s in names))


def _long(
    names: list[str],
    time_index: int,
    table: RoutingTable,
    site: str,
    maps: Mapping[str, str],
    unit_of: Mapping[str, str],
    targets: Mapping[str, Route],
) -> Layout:
    def at(name: str) -> int | None:
        return names.index(name) if name in names else None

    sensor, asset, metric, value = at("sensor"), at("asset"), at("metric"), at("value")
    if value is None or (sensor is None and (asset is None or metric is None)):
        raise CliError(f"a long file needs columns {names[time_index]}, sensor (or asset and metric), value; "
                       f"the header has {', '.join(names)}")  # fmt: skip
    # Sensor keys are only known row by row; the ones --map/--unit name are checked now, the rest as they come.
    keys = {
        source: _column(source, maps.get(source, source), targets, unit_of.get(source), site)
        for source in {*maps, *unit_of}
    }
    keys.update({t: Column(t, r, None) for t, r in targets.items() if t not in keys})
    return Layout("long", time_index, keys=keys, sensor_index=sensor, asset_index=asset, metric_index=metric,
                  value_index=value, unit_index=at("unit"))  # fmt: skip
