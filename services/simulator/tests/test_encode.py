"""Payloads parse back: with plain json, as SenML records, with the bridge's Sparkplug decoder, and through the
bridge's own `parse()` with the routing the same YAML produces — every reading accepted, none rejected."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from dtwin_bridge.model import Reading, Route, RoutingTable
from dtwin_bridge.parse import parse, sparkplug
from dtwin_core import units
from dtwin_simulator import encode, stream
from dtwin_simulator.fleet import Sensor


def _sensor(field: str, unit: str = "degC", asset: str = "a") -> Sensor:
    return Sensor(field, asset, field.replace(".", "_"), "t", "json", field, unit, None, 30)


def test_json_nests_dotted_fields() -> None:
    readings = ((_sensor("temperature.supply"), 12.5), (_sensor("temperature.return"), 21.0), (_sensor("flow"), 3.0))
    doc = json.loads(encode.payload("json", 1_767_571_200_123, readings))
    assert doc == {"ts": 1_767_571_200_123, "temperature": {"supply": 12.5, "return": 21.0}, "flow": 3.0}


def test_json_keeps_a_clashing_field_literal() -> None:
    doc = json.loads(encode.payload("json", 0, ((_sensor("fan"), 1.0), (_sensor("fan.speed"), 2.0))))
    assert doc == {"ts": 0, "fan": 1.0, "fan.speed": 2.0}


def test_senml_pack() -> None:
    readings = ((_sensor("zone_temp"), 21.5), (_sensor("airflow", "L/s"), 300.0), (_sensor("x", "m3/h", "b"), 1.0))
    pack = json.loads(encode.payload("senml", 1_767_571_200_500, readings))
    assert pack == [
        {"bn": "urn:dev:dtwin:a:", "bt": 1_767_571_200.5, "n": "zone_temp", "u": "Cel", "v": 21.5},
        {"n": "airflow", "u": "l/s", "v": 300.0},
        {"bn": "urn:dev:dtwin:b:", "n": "x", "v": 1.0},  # m3/h has no SenML name: no `u`
    ]


def test_sparkplug_payload() -> None:
    readings = ((_sensor("Meter/ActivePower", "kW"), 412.5), (_sensor("Meter/VoltageLL", "V"), 398.2))
    payload = sparkplug.Payload.FromString(encode.payload("sparkplugb", 1_767_571_200_000, readings, seq=257))
    assert payload.timestamp == 1_767_571_200_000 and payload.seq == 1
    assert [(m.name, m.double_value, m.timestamp) for m in payload.metrics] == [
        ("Meter/ActivePower", 412.5, 1_767_571_200_000),
        ("Meter/VoltageLL", 398.2, 1_767_571_200_000),
    ]


def _routes(sensors: tuple[Sensor, ...]) -> RoutingTable:
    return RoutingTable(
        tuple(Route(s.name, s.asset, s.metric, s.topic, s.format, s.field, s.unit, s.valid_range) for s in sensors)
    )


@pytest.mark.parametrize("seed", [7, 8])
def test_the_bridge_accepts_every_reading(demo, sim, seed: int) -> None:
    table = _routes(demo.sensors)
    sent = {}
    accepted: dict[tuple[str, int], float] = {}
    for b in stream.batches(demo, seed=seed, start_ms=sim.start, end_ms=sim.start + 4 * 3_600_000):
        body = encode.payload(b.format, b.t_ms, b.readings, b.seq)
        arrived = datetime.fromtimestamp(b.t_ms / 1000, UTC)
        items = parse(b.topic, body, table, received_at=arrived)
        rejects = [i for i in items if not isinstance(i, Reading)]
        assert not rejects, rejects[:3]
        for i in items:
            assert isinstance(i, Reading)
            accepted[(i.sensor, round(i.ts.timestamp() * 1000))] = i.value
        sent |= {(s.name, b.t_ms): units.to_canonical(v, s.unit) for s, v in b.readings}
    assert accepted.keys() == sent.keys()
    assert all(accepted[k] == pytest.approx(v, abs=1e-9) for k, v in sent.items())
