"""RoutingTable: loads the routing.json the operator renders for the demo campus, and refuses bad tables."""

from __future__ import annotations

from typing import Any

import pytest

from dtwin_bridge.model import Route, RoutingTable, Thresholds

AHU1 = "sites/hq/ahu-1/telemetry"


def test_demo_tables_load_every_route(demo_tables: dict[str, RoutingTable]) -> None:
    assert {s: len(t.routes) for s, t in demo_tables.items()} == {"hq": 40, "plant": 31}
    formats = {r.format for t in demo_tables.values() for r in t.routes}
    assert formats == {"json", "senml", "sparkplugb"}


def test_route_fields_come_from_the_binding(demo_tables: dict[str, RoutingTable]) -> None:
    routes = {r.field: r for r in demo_tables["hq"].on_topic(AHU1)}
    supply = routes["temperature.supply"]
    assert supply == Route(
        sensor="ahu-1-supply-air-temp",
        asset="ahu-1",
        metric="supply_air_temp",
        topic=AHU1,
        format="json",
        field="temperature.supply",
        unit="degC",
        valid_range=(-10.0, 60.0),
        thresholds=supply.thresholds,
        expected_interval_s=supply.expected_interval_s,
    )
    assert isinstance(supply.thresholds, Thresholds)
    assert supply.thresholds.critical_high is not None


def test_lookup_by_topic(demo_tables: dict[str, RoutingTable]) -> None:
    hq = demo_tables["hq"]
    assert len(hq.on_topic(AHU1)) == 6
    assert hq.on_topic("sites/hq/nowhere") == ()
    assert AHU1 in hq.topics


def _route(**extra: Any) -> dict[str, Any]:
    return {"sensor": "s", "asset": "a", "metric": "m", "topic": "t", "format": "json", "unit": "degC", **extra}


def test_field_defaults_to_metric_and_thresholds_to_none() -> None:
    r = Route.from_dict(_route())
    assert r.field == "m"
    assert r.thresholds == Thresholds()
    assert r.valid_range is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"version": 2, "routes": []}, "version 2"),
        ({"routes": [_route(format="xml")]}, "unknown payload format"),
        ({"routes": [_route(sensor="a"), _route(sensor="b")]}, "already reads 'm' on t"),
    ],
)
def test_bad_tables_are_refused_whole(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RoutingTable.from_dict(table)
