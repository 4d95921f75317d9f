"""The Grafana dashboard of one Site: its bridge's ingest health, then one row per asset with a chart per sensor.

Built with grafana-foundation-sdk's builders (which also lay panels out on the 24-column grid) and returned
as plain JSON-able data; `dashboard(ctx)` is pure and deterministic. Bridge panels query Prometheus for the
`dtwin_bridge_*` metrics of the site; sensor panels query the site's TimescaleDB schema, where the bridge
stores each reading in its quantity's canonical unit, so units and thresholds are shown in that unit too.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

from grafana_foundation_sdk.builders.common import GraphThresholdsStyleConfig
from grafana_foundation_sdk.builders.dashboard import (
    CustomVariable,
    Dashboard,
    DatasourceVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models.common import GraphTresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, Threshold, ThresholdsMode, VariableOption

from dtwin_core import units
from dtwin_operator import names
from dtwin_operator.api.sensorbinding import Thresholds
from dtwin_operator.render.context import AssetView, BindingView, SiteContext

UID_MAX = 40
TIMESCALE = DataSourceRef(type_val="grafana-postgresql-datasource", uid="dtwin-timescale")
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${prometheus}")
PANEL_H = 8
BRIDGE_W = 6
SENSOR_W = 8
OK_COLOR = "transparent"  # the normal band is not shaded; only warning/critical bands are


# Grafana unit id of each canonical unit (dtwin_core.units): the bridge stores readings converted to it.
# Grafana has no m³/h or mm/s unit; a suffix unit shows the stored value as is.
GRAFANA_UNIT: dict[str, str] = {
    "degC": "celsius",
    "Pa": "pressurepa",
    "percent": "percent",
    "percentRH": "humidity",
    "m3/h": "suffix:m³/h",
    "kW": "kwatt",
    "kWh": "kwatth",
    "A": "amp",
    "V": "volt",
    "Hz": "hertz",
    "rpm": "rotrpm",
    "mm/s": "suffix:mm/s",
    "g": "accG",
    "ppm": "ppm",
    "m/s": "velocityms",
    "count": "short",
    "bool": "bool",
}


def stored(value: float, unit: str) -> float:
    """A threshold in the binding's unit, as the bridge stores readings (canonical unit)."""
    return round(units.to_canonical(value, unit), 6)


class SqlQuery(Builder[Dataquery]):
    """A raw SQL target; the SDK models no PostgreSQL query, and UnknownDataquery is its bag for such plugins."""

    def __init__(self, sql: str) -> None:
        self._payload = {
            "refId": "A",
            "datasource": TIMESCALE.to_json(),
            "editorMode": "code",
            "format": "time_series",
            "rawQuery": True,
            "rawSql": sql,
        }

    def build(self) -> Dataquery:
        return UnknownDataquery(dict(self._payload))


def uid(namespace: str, site: str) -> str:
    """Stable dashboard uid; `_` cannot occur in either name, so distinct sites never share one."""
    full = f"dtwin-{namespace}_{site}"
    if len(full) <= UID_MAX:
        return full
    digest = hashlib.sha256(f"{namespace}/{site}".encode()).hexdigest()[:8]
    return f"{full[: UID_MAX - len(digest) - 1].rstrip('-_')}-{digest}"


def _timezone(ctx: SiteContext) -> str:
    tz = ctx.spec.location.timezone
    return "utc" if tz == "UTC" else tz


def _assets(ctx: SiteContext) -> list[AssetView]:
    return sorted(ctx.assets, key=lambda a: a.name)


def _asset_variable(ctx: SiteContext) -> CustomVariable:
    every = VariableOption(text=["All"], value=["$__all"])
    return (
        CustomVariable("asset")
        .label("Asset")
        .values(",".join(a.name for a in _assets(ctx)))
        .multi(True)
        .include_all(True)
        .current(every)
    )


def _prom(title: str, unit: str, *queries: tuple[str, str]) -> Timeseries:
    panel = Timeseries().title(title).datasource(PROMETHEUS).unit(unit).span(BRIDGE_W).height(PANEL_H)
    for ref, (expr, legend) in zip("ABCDEF", queries, strict=False):
        panel = panel.with_target(PromQuery().ref_id(ref).datasource(PROMETHEUS).expr(expr).legend_format(legend))
    return panel


def _bridge_panels(ctx: SiteContext) -> list[Timeseries]:
    sel = f'{{site="{ctx.name}"}}'

    def rate(metric: str, by: str = "") -> str:
        return f"sum{by}(rate({metric}{sel}[$__rate_interval]))"

    latency = [
        (
            f"histogram_quantile({q}, {rate('dtwin_bridge_batch_duration_seconds_bucket', ' by (le) ')})",
            f"p{round(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]
    return [
        _prom("Messages received", "cps", (rate("dtwin_bridge_messages_received_total"), "received")),
        _prom(
            "Readings accepted / rejected",
            "cps",
            (rate("dtwin_bridge_readings_accepted_total"), "accepted"),
            (rate("dtwin_bridge_readings_rejected_total", " by (reason) "), "rejected: {{reason}}"),
        ),
        _prom("Batch write duration", "s", *latency),
        _prom("Buffered readings", "short", (f"sum(dtwin_bridge_buffer_depth{sel})", "buffered")),
    ]


def _sql(ctx: SiteContext, binding: BindingView) -> str:
    sensor = binding.name.replace("'", "''")
    asset = binding.spec.asset_ref.replace("'", "''")
    # Grafana cannot hide a row by variable, so $asset empties the panels of unselected assets instead;
    # the clause is constant, so Postgres folds it and those panels read nothing.
    return (
        f'SELECT $__timeGroupAlias(ts, $__interval), avg(value) AS "{binding.spec.metric}"\n'
        f"FROM {names.schema(ctx.name)}.telemetry\n"
        f"WHERE $__timeFilter(ts) AND sensor = '{sensor}' AND '{asset}' IN (${{asset:sqlstring}})\n"
        "GROUP BY 1\nORDER BY 1"
    )


def _steps(t: Thresholds, unit: str) -> list[Threshold]:
    """Colour bands from below criticalLow to above criticalHigh (Grafana steps apply upwards)."""
    marks = [
        (t.critical_low, "orange" if t.warning_low is not None else OK_COLOR),
        (t.warning_low, OK_COLOR),
        (t.warning_high, "orange"),
        (t.critical_high, "red"),
    ]
    steps = sorted((stored(v, unit), c) for v, c in marks if v is not None)
    if not steps:
        return []
    base = "red" if t.critical_low is not None else "orange" if t.warning_low is not None else OK_COLOR
    return [Threshold(None, base), *(Threshold(v, c) for v, c in steps)]


def _sensor_panel(ctx: SiteContext, binding: BindingView) -> Timeseries:
    s = binding.spec
    panel = (
        Timeseries()
        .title(s.metric)
        .description(f"Sensor {binding.name}, sent in {s.unit}.")
        .datasource(TIMESCALE)
        .with_target(SqlQuery(_sql(ctx, binding)))
        .unit(GRAFANA_UNIT[units.canonical(s.unit)])
        # Never group finer than the sensor reports, or most buckets would be empty.
        .interval(f"{s.expected_interval_seconds}s")
        .span(SENSOR_W)
        .height(PANEL_H)
    )
    steps = _steps(s.thresholds, s.unit)
    if steps:
        panel = panel.thresholds(ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)).thresholds_style(
            GraphThresholdsStyleConfig().mode(GraphTresholdsStyleMode.DASHED_AND_AREA)
        )
    return panel


def _asset_title(asset: AssetView) -> str:
    return f"{asset.spec.display_name or asset.name} · {asset.spec.kind}"


def _sections(ctx: SiteContext) -> Iterator[tuple[Row, list[Timeseries]]]:
    yield Row(f"Ingest · {names.bridge(ctx.name)}"), _bridge_panels(ctx)
    for asset in _assets(ctx):
        bindings = sorted(ctx.bindings_of(asset.name), key=lambda b: (b.spec.metric, b.name))
        yield Row(_asset_title(asset)), [_sensor_panel(ctx, b) for b in bindings]


def dashboard(ctx: SiteContext) -> dict[str, Any]:
    """The site's dashboard model, as Grafana's dashboard sidecar loads it from a ConfigMap."""
    board = (
        Dashboard(f"dtwin · {ctx.spec.display_name or ctx.name}")
        .uid(uid(ctx.namespace, ctx.name))
        .tags(["dtwin", f"site:{ctx.name}"])
        .timezone(_timezone(ctx))
        .time("now-6h", "now")
        .refresh("1m")
        # The operator rewrites it on every change of the site, so edits in the UI would be lost.
        .readonly()
        .with_variable(DatasourceVariable("prometheus").label("Prometheus").type("prometheus"))
        .with_variable(_asset_variable(ctx))
    )
    ids = itertools.count(1)
    for row, panels in _sections(ctx):
        board = board.with_row(row.id(next(ids)))
        for panel in panels:
            board = board.with_panel(panel.id(next(ids)))
    return json.loads(JSONEncoder().encode(board.build()))
