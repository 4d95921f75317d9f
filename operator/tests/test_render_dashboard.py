"""Unit tests of the site dashboard renderer (no cluster, no Grafana)."""

from __future__ import annotations

import json
import re
from itertools import combinations
from typing import Any

import pytest

from dtwin_core import units
from dtwin_operator.api.asset import AssetSpec
from dtwin_operator.api.sensorbinding import UNITS, SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.render.context import AssetView, BindingView, SiteContext
from dtwin_operator.render.dashboard import GRAFANA_UNIT, UID_MAX, dashboard, stored, uid

PSI = 6894.757293168


def _asset(name: str, kind: str, display_name: str | None = None) -> AssetView:
    spec = {"siteRef": "plant-east", "kind": kind, "location": {"floor": "l1"}}
    if display_name:
        spec["displayName"] = display_name
    return AssetView(name, AssetSpec.model_validate(spec))


def _binding(name: str, asset: str, metric: str, unit: str, **extra: Any) -> BindingView:
    spec = {"assetRef": asset, "metric": metric, "topic": f"sites/plant-east/{asset}/{metric}", "unit": unit}
    return BindingView(name, SensorBindingSpec.model_validate(spec | extra))


def _ctx(namespace: str = "facilities", name: str = "plant-east", **site: Any) -> SiteContext:
    spec = {"displayName": "East Plant", "location": {"timezone": "Europe/Paris"}} | site
    # Assets deliberately out of name order: the dashboard must not depend on it.
    assets = (_asset("chiller-1", "Chiller", "Chiller 1"), _asset("ahu-2", "AHU"))
    bindings = (
        _binding("ahu-2-fan", "ahu-2", "fan_speed", "rpm", expectedIntervalSeconds=10),
        _binding("ahu-2-rh", "ahu-2", "return_air_humidity", "percentRH"),
        _binding("ahu-2-sat", "ahu-2", "supply_air_temp", "degC", thresholds={"warningHigh": 28, "criticalHigh": 32}),
        _binding(
            "chiller-1-cond",
            "chiller-1",
            "condenser_pressure",
            "psi",
            thresholds={"warningHigh": 150, "criticalHigh": 180},
        ),
        _binding("chiller-1-flow", "chiller-1", "chw_flow", "m3/h", thresholds={"criticalLow": 20, "warningLow": 40}),
        _binding("chiller-1-kw", "chiller-1", "power", "kW"),
    )
    return SiteContext(namespace, name, "uid-1", SiteSpec.model_validate(spec), assets, bindings)


@pytest.fixture
def board() -> dict[str, Any]:
    return dashboard(_ctx())


def _sections(board: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Row title -> the panels under it, in order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for panel in board["panels"]:
        if panel["type"] == "row":
            current = out.setdefault(panel["title"], [])
        else:
            current.append(panel)
    return out


def _sensor_panels(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        p["title"]: p for p in board["panels"] if p["type"] != "row" and p["datasource"]["uid"] == "dtwin-timescale"
    }


def test_identity(board: dict[str, Any]) -> None:
    assert board["uid"] == "dtwin-facilities_plant-east"
    assert board["title"] == "dtwin · East Plant"
    assert board["tags"] == ["dtwin", "site:plant-east"]
    assert board["timezone"] == "Europe/Paris"
    assert board["editable"] is False


def test_title_and_timezone_default_to_site_name_and_utc() -> None:
    board = dashboard(_ctx(displayName=None, location={}))
    assert board["title"] == "dtwin · plant-east"
    assert board["timezone"] == "utc"


def test_asset_variable(board: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in board["templating"]["list"]}
    asset = variables["asset"]
    assert asset["type"] == "custom"
    assert asset["query"] == "ahu-2,chiller-1"
    assert asset["multi"] is True
    assert asset["includeAll"] is True
    assert variables["prometheus"]["type"] == "datasource"
    assert variables["prometheus"]["query"] == "prometheus"


def test_rows_bridge_first_then_one_per_asset_in_name_order(board: dict[str, Any]) -> None:
    assert list(_sections(board)) == ["Ingest · dtwin-bridge-plant-east", "ahu-2 · AHU", "Chiller 1 · Chiller"]


def test_one_panel_per_binding_sorted_by_metric(board: dict[str, Any]) -> None:
    sections = _sections(board)
    assert [p["title"] for p in sections["ahu-2 · AHU"]] == ["fan_speed", "return_air_humidity", "supply_air_temp"]
    assert [p["title"] for p in sections["Chiller 1 · Chiller"]] == ["chw_flow", "condenser_pressure", "power"]


def test_bridge_panels_query_the_site(board: dict[str, Any]) -> None:
    bridge = _sections(board)["Ingest · dtwin-bridge-plant-east"]
    exprs = [t["expr"] for p in bridge for t in p["targets"]]
    assert all('{site="plant-east"}' in e for e in exprs)
    text = "\n".join(exprs)
    for metric in (
        "dtwin_bridge_messages_received_total",
        "dtwin_bridge_readings_accepted_total",
        "dtwin_bridge_readings_rejected_total",
        "dtwin_bridge_batch_duration_seconds_bucket",
        "dtwin_bridge_buffer_depth",
    ):
        assert metric in text
    assert "sum by (reason) (rate(dtwin_bridge_readings_rejected_total" in text
    assert "histogram_quantile(0.95, sum by (le) (rate(dtwin_bridge_batch_duration_seconds_bucket" in text
    assert all(p["datasource"] == {"type": "prometheus", "uid": "${prometheus}"} for p in bridge)
    assert all(len({t["refId"] for t in p["targets"]}) == len(p["targets"]) for p in bridge)


def test_sensor_sql(board: dict[str, Any]) -> None:
    panels = _sensor_panels(board)
    assert len(panels) == 6
    target = panels["supply_air_temp"]["targets"][0]
    assert target["datasource"] == {"type": "grafana-postgresql-datasource", "uid": "dtwin-timescale"}
    assert target["format"] == "time_series"
    sql = target["rawSql"]
    assert "FROM site_plant_east.telemetry" in sql
    assert "sensor = 'ahu-2-sat'" in sql
    assert "'ahu-2' IN (${asset:sqlstring})" in sql
    assert "$__timeFilter(ts)" in sql
    assert '$__timeGroupAlias(ts, $__interval), avg(value) AS "supply_air_temp"' in sql
    assert "sensor = 'chiller-1-kw'" in panels["power"]["targets"][0]["rawSql"]
    assert "'chiller-1' IN" in panels["power"]["targets"][0]["rawSql"]


def test_units_and_min_interval(board: dict[str, Any]) -> None:
    panels = _sensor_panels(board)
    units = {title: p["fieldConfig"]["defaults"]["unit"] for title, p in panels.items()}
    assert units == {
        "fan_speed": "rotrpm",
        "return_air_humidity": "humidity",
        "supply_air_temp": "celsius",
        "condenser_pressure": "pressurepa",
        "chw_flow": "suffix:m³/h",
        "power": "kwatt",
    }
    assert panels["fan_speed"]["interval"] == "10s"
    assert panels["power"]["interval"] == "60s"
    assert panels["condenser_pressure"]["description"] == "Sensor chiller-1-cond, sent in psi."


def _steps(panel: dict[str, Any]) -> list[tuple[float | None, str]]:
    return [(s["value"], s["color"]) for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_high_thresholds_become_orange_and_red_steps(board: dict[str, Any]) -> None:
    panel = _sensor_panels(board)["supply_air_temp"]
    assert _steps(panel) == [(None, "transparent"), (28, "orange"), (32, "red")]
    assert panel["fieldConfig"]["defaults"]["thresholds"]["mode"] == "absolute"
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed+area"


def test_thresholds_are_converted_to_the_stored_unit(board: dict[str, Any]) -> None:
    steps = _steps(_sensor_panels(board)["condenser_pressure"])
    assert steps == [(None, "transparent"), (round(150 * PSI, 6), "orange"), (round(180 * PSI, 6), "red")]


def test_low_thresholds_shade_below(board: dict[str, Any]) -> None:
    assert _steps(_sensor_panels(board)["chw_flow"]) == [(None, "red"), (20, "orange"), (40, "transparent")]


def test_binding_without_thresholds_has_none(board: dict[str, Any]) -> None:
    defaults = _sensor_panels(board)["power"]["fieldConfig"]["defaults"]
    assert "thresholds" not in defaults
    assert "custom" not in defaults


def test_grid_is_valid_and_non_overlapping(board: dict[str, Any]) -> None:
    boxes = [p["gridPos"] for p in board["panels"]]
    for g in boxes:
        assert min(g["x"], g["y"]) >= 0
        assert min(g["w"], g["h"]) > 0
        assert g["x"] + g["w"] <= 24
    for a, b in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, (a, b)
    assert [p["gridPos"]["w"] for p in board["panels"] if p["type"] == "row"] == [24, 24, 24]
    ys = [p["gridPos"]["y"] for p in board["panels"]]
    assert ys == sorted(ys)  # panels are listed top to bottom, as Grafana expects under expanded rows
    assert [p["id"] for p in board["panels"]] == list(range(1, len(board["panels"]) + 1))


def test_deterministic_and_json_able() -> None:
    first, second = dashboard(_ctx()), dashboard(_ctx())
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert json.loads(json.dumps(first)) == first


def test_long_names_give_short_distinct_uids() -> None:
    ns = "n" * 63
    one, two = uid(ns, "s" * 39 + "a"), uid(ns, "s" * 39 + "b")
    assert max(len(one), len(two)) <= UID_MAX
    assert one != two
    assert re.fullmatch(r"[A-Za-z0-9_-]+", one)
    assert dashboard(_ctx(namespace=ns, name="s" * 40))["uid"] == uid(ns, "s" * 40)
    assert uid("a-b", "c") != uid("a", "b-c")


def test_every_canonical_unit_has_a_grafana_unit() -> None:
    assert set(GRAFANA_UNIT) == set(units.CANONICAL.values())
    assert {units.canonical(u) for u in UNITS} <= set(GRAFANA_UNIT)
    assert stored(212, "degF") == 100
    assert stored(273.15, "K") == 0
