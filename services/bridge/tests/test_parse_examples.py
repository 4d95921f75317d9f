"""Exact parsing examples per format: the seed's JSON shape, dotted paths, SenML base fields and relative
times, Sparkplug B metrics of each scalar type, all through the public `parse()` entry point."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dtwin_bridge.model import Reading, Reason, Reject, Route, RoutingTable
from dtwin_bridge.parse import parse
from dtwin_bridge.parse import sparkplug as spb
from dtwin_bridge.parse.sparkplug import DataType, Metric

SEED = "assets/telemetry/hvac_unit_1"
T0 = datetime(2025, 7, 13, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=5)  # arrival


def route(sensor: str, topic: str, fmt: str, field: str, unit: str, vr: tuple[float, float] | None = None) -> Route:
    return Route(sensor, "asset", sensor.replace("-", "_"), topic, fmt, field, unit, vr)


TABLE = RoutingTable(
    (
        route("temp", SEED, "json", "temperature", "degC"),
        route("rh", SEED, "json", "humidity", "percentRH", (0, 100)),
        route("supply", "dev/nested", "json", "supply.temp", "degF"),
        route("dotted", "dev/nested", "json", "fan.speed", "rpm"),
        route("zone", "dev/senml", "senml", "zone_temp", "degC"),
        route("flow", "dev/senml", "senml", "airflow", "L/s"),
        route("occ", "dev/senml", "senml", "occupied", "bool"),
        route("power", "dev/spb", "sparkplugb", "Meter/ActivePower", "kW"),
        route("energy", "dev/spb", "sparkplugb", "Meter/EnergyImport", "kWh"),
        route("offset", "dev/spb", "sparkplugb", "Meter/Offset", "count"),
        route("run", "dev/spb", "sparkplugb", "Pump/Running", "bool"),
    )
)


def run(topic: str, payload: bytes | str) -> list[Reading | Reject]:
    return parse(topic, payload.encode() if isinstance(payload, str) else payload, TABLE, NOW)


def test_seed_shape() -> None:
    payload = {"asset_id": "hvac_unit_1", "timestamp": "2025-07-13T10:00:00Z", "temperature": 21.5, "humidity": 40}
    assert run(SEED, json.dumps(payload)) == [Reading("temp", T0, 21.5), Reading("rh", T0, 40.0)]


@pytest.mark.parametrize(
    ("stamp", "ts"),
    [
        ('"timestamp": "2025-07-13T12:00:00+02:00"', T0),
        ('"ts": 1752400800', T0),
        ('"time": 1752400800.25', T0 + timedelta(milliseconds=250)),
        ('"ts": 1752400800123', T0 + timedelta(milliseconds=123)),
        ('"timestamp": "2025-07-13T10:00:00.000001Z"', T0 + timedelta(microseconds=1)),
        ('"other": 1', NOW),  # no timestamp: the arrival time
    ],
)
def test_json_timestamps(stamp: str, ts: datetime) -> None:
    assert run(SEED, f'{{{stamp}, "temperature": 20, "humidity": 50}}') == [
        Reading("temp", ts, 20.0),
        Reading("rh", ts, 50.0),
    ]


def test_dotted_paths_and_literal_dotted_keys() -> None:
    out = run("dev/nested", '{"ts": 1752400800, "supply": {"temp": 212}, "fan.speed": 900}')
    assert out == [Reading("supply", T0, 100.0), Reading("dotted", T0, 900.0)]


def test_senml_base_fields_carry_forward() -> None:
    pack = [
        {"bn": "urn:dev:vav-1:", "bt": 1752400800, "n": "occupied", "vb": True},
        {"bu": "Cel", "n": "zone_temp", "v": 21.5},
        {"n": "zone_temp", "t": 60, "v": 21.75},
        {"n": "airflow", "u": "l/s", "t": 0.5, "v": 120},
        {"n": "not_bound", "v": 1},
    ]
    assert run("dev/senml", json.dumps(pack)) == [
        Reading("occ", T0, 1.0),
        Reading("zone", T0, 21.5),
        Reading("zone", T0 + timedelta(seconds=60), 21.75),
        Reading("flow", T0 + timedelta(milliseconds=500), 432.0),
    ]


def test_senml_relative_time_base_value_and_concatenated_name() -> None:
    pack = [
        {"bn": "zone_", "bv": 20, "n": "temp", "v": 1.5, "t": -30},
        {"bn": "", "n": "airflow", "v": 10},  # bv = 20 still applies
        {"bv": 0, "n": "airflow", "v": 10, "t": -1},
        {"bs": 1, "n": "airflow", "s": 2, "t": -2},  # only a sum: bs + s
    ]
    assert run("dev/senml", json.dumps(pack)) == [
        Reading("zone", NOW - timedelta(seconds=30), 21.5),
        Reading("flow", NOW, 108.0),
        Reading("flow", NOW - timedelta(seconds=1), 36.0),
        Reading("flow", NOW - timedelta(seconds=2), 10.8),
    ]


def test_senml_unit_of_the_same_quantity_is_converted() -> None:
    out = run("dev/senml", '[{"n": "zone_temp", "u": "degF", "v": 68, "bt": 1752400800}]')
    assert out == [Reading("zone", T0, 20.0)]


def test_sparkplug_metrics() -> None:
    payload = spb.encode(
        [
            Metric("Meter/ActivePower", 1200.5, DataType.FLOAT, timestamp_ms=1752400800123),
            Metric("Meter/EnergyImport", 123456789, DataType.UINT64),
            Metric("Meter/Offset", -5, DataType.INT8),
            Metric("Pump/Running", True),
            Metric("Meter/Unbound", 1.0),
        ],
        timestamp_ms=1752400800000,
        seq=3,
    )
    assert run("dev/spb", payload) == [
        Reading("power", T0 + timedelta(milliseconds=123), 1200.5),
        Reading("energy", T0, 123456789.0),
        Reading("offset", T0, -5.0),
        Reading("run", T0, 1.0),
    ]


@pytest.mark.parametrize(
    ("raw", "datatype", "value"),
    [
        (0xFF, DataType.INT8, -1),  # truncated encoder
        (0xFFFFFFFF, DataType.INT8, -1),  # sign-extended encoder
        (0xFFFF8000, DataType.INT16, -32768),
        (0x80000000, DataType.INT32, -(2**31)),
        (0x80000000, DataType.UINT32, 2**31),
    ],
)
def test_sparkplug_signed_integers(raw: int, datatype: DataType, value: int) -> None:
    payload = spb.Payload()
    m = payload.metrics.add(name="Meter/Offset", datatype=datatype, timestamp=1752400800000)
    m.int_value = raw
    assert run("dev/spb", payload.SerializeToString()) == [Reading("offset", T0, float(value))]


def test_sparkplug_without_any_timestamp_uses_arrival_time() -> None:
    assert run("dev/spb", spb.encode([Metric("Meter/ActivePower", 5.0)])) == [Reading("power", NOW, 5.0)]


def test_demo_campus_message(demo_tables: dict[str, RoutingTable]) -> None:
    msg = {
        "timestamp": "2025-07-13T10:00:00Z",
        "temperature": {"supply": 12.9, "return": 22.1, "mixed": 18.0},
        "filter": {"dp": 180},
        "fan": {"supply": {"speed": 61}},
        "power": {"kw": 12.5},
    }
    out = parse("sites/hq/ahu-1/telemetry", json.dumps(msg).encode(), demo_tables["hq"], NOW)
    assert all(isinstance(r, Reading) for r in out)
    assert {r.sensor: r.value for r in out if isinstance(r, Reading)} == {
        "ahu-1-filter-dp": 180.0,
        "ahu-1-mixed-air-temp": 18.0,
        "ahu-1-power": 12.5,
        "ahu-1-return-air-temp": 22.1,
        "ahu-1-supply-air-temp": 12.9,
        "ahu-1-supply-fan-speed": 61.0,
    }


def test_rejects_keep_topic_and_payload() -> None:
    [reject] = run("dev/senml", b"{}")
    assert isinstance(reject, Reject)
    assert reject == Reject(Reason.MALFORMED_SENML, reject.detail, "dev/senml", b"{}", None)
