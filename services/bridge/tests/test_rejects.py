"""Every reject reason, produced by a concrete payload; the closed set has no reason without an example."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from dtwin_bridge.model import Reading, Reason, Reject, Route, RoutingTable
from dtwin_bridge.parse import PARSERS, parse
from dtwin_bridge.parse import sparkplug as spb
from dtwin_bridge.parse.sparkplug import Metric
from dtwin_bridge.validate import Limits

NOW = datetime(2025, 7, 13, 10, 0, 5, tzinfo=UTC)
LIMITS = Limits(max_payload_bytes=1024)
TABLE = RoutingTable(
    (
        Route("temp", "a", "temp", "j", "json", "temp", "degC", (-20.0, 60.0)),
        Route("fan", "a", "fan", "j", "json", "fan.on", "bool"),
        Route("zone", "a", "zone", "s", "senml", "zone_temp", "degC"),
        Route("kw", "a", "kw", "p", "sparkplugb", "Meter/Power", "kW"),
    )
)
FAN_OK = '"fan": {"on": true}'
NOW_MS = int(NOW.timestamp() * 1000)


def _spb(*metrics: Metric, ts: int | None = None) -> bytes:
    return spb.encode(metrics, timestamp_ms=ts)


CASES: list[tuple[Reason, str, bytes | str, str | None]] = [
    (Reason.UNKNOWN_TOPIC, "nowhere", "{}", None),
    (Reason.PAYLOAD_TOO_LARGE, "j", '{"temp": 1, "pad": "' + "x" * 2000 + '"}', None),
    (Reason.MALFORMED_JSON, "j", '{"temp": 1', None),
    (Reason.MALFORMED_JSON, "j", b"\xff\xfe{}", None),
    (Reason.MALFORMED_JSON, "j", "[1, 2]", None),
    (Reason.MALFORMED_JSON, "j", "[" * 1000, None),  # nesting past the recursion limit
    (Reason.MALFORMED_SENML, "s", '{"n": "zone_temp", "v": 1}', None),
    (Reason.MALFORMED_SENML, "s", '[{"n": "zone_temp", "v": "21.5"}]', None),
    (Reason.MALFORMED_SENML, "s", '[{"n": "zone_temp", "v": 1, "vb": true}]', None),
    (Reason.MALFORMED_SENML, "s", '[{"n": "zone_temp", "v": 1, "crit_": 1}]', None),
    (Reason.MALFORMED_SENML, "s", '[{"bver": 11, "n": "zone_temp", "v": 1}]', None),
    (Reason.MALFORMED_SENML, "s", "[]", None),
    (Reason.MALFORMED_SPARKPLUG, "p", b"\x12\xff\xff", None),
    (Reason.MISSING_FIELD, "j", '{"fan": {"on": false}}', "temp"),
    (Reason.MISSING_FIELD, "j", '{"temp": null, ' + FAN_OK + "}", "temp"),
    (Reason.MISSING_FIELD, "s", '[{"n": "zone_temp"}]', "zone"),
    (Reason.MISSING_FIELD, "p", _spb(Metric("Meter/Power", None)), "kw"),
    (Reason.UNKNOWN_FIELD, "s", '[{"n": "humidity", "v": 40}]', None),
    (Reason.UNKNOWN_FIELD, "p", _spb(Metric(None, 1.0, alias=7)), None),
    (Reason.NOT_A_NUMBER, "j", '{"temp": "21.5", ' + FAN_OK + "}", "temp"),
    (Reason.NOT_A_NUMBER, "j", '{"temp": true, ' + FAN_OK + "}", "temp"),
    (Reason.NOT_A_NUMBER, "s", '[{"n": "zone_temp", "vs": "warm"}]', "zone"),
    (Reason.NOT_A_NUMBER, "p", _spb(Metric("Meter/Power", "12 kW")), "kw"),
    (Reason.NON_FINITE, "j", '{"temp": NaN, ' + FAN_OK + "}", "temp"),
    (Reason.NON_FINITE, "j", '{"temp": 1e999, ' + FAN_OK + "}", "temp"),
    (Reason.NON_FINITE, "s", '[{"n": "zone_temp", "v": -Infinity}]', "zone"),
    (Reason.NON_FINITE, "p", _spb(Metric("Meter/Power", float("nan"))), "kw"),
    (Reason.OUT_OF_RANGE, "j", '{"temp": 60.5, ' + FAN_OK + "}", "temp"),
    (Reason.OUT_OF_RANGE, "j", '{"temp": 20, "fan": {"on": 2}}', "fan"),
    (Reason.UNIT_MISMATCH, "s", '[{"n": "zone_temp", "u": "Pa", "v": 1}]', "zone"),
    (Reason.UNIT_MISMATCH, "s", '[{"n": "zone_temp", "u": "furlong", "v": 1}]', "zone"),
    (Reason.BAD_TIMESTAMP, "j", '{"ts": "2025-07-13T10:00:00", "temp": 1, ' + FAN_OK + "}", "temp"),
    (Reason.BAD_TIMESTAMP, "j", '{"ts": "yesterday", "temp": 1, ' + FAN_OK + "}", "temp"),
    (Reason.BAD_TIMESTAMP, "j", '{"ts": 1e300, "temp": 1, ' + FAN_OK + "}", "temp"),
    (Reason.BAD_TIMESTAMP, "j", '{"ts": [1], "temp": 1, ' + FAN_OK + "}", "temp"),
    (Reason.BAD_TIMESTAMP, "s", '[{"n": "zone_temp", "v": 1, "t": 1e300}]', "zone"),
    (Reason.BAD_TIMESTAMP, "p", _spb(Metric("Meter/Power", 1.0, timestamp_ms=2**64 - 1)), "kw"),
    (Reason.TIMESTAMP_SKEW, "j", '{"ts": "2025-07-13T10:10:00Z", "temp": 1, ' + FAN_OK + "}", "temp"),
    (Reason.TIMESTAMP_SKEW, "s", '[{"n": "zone_temp", "v": 1, "t": 3600}]', "zone"),
    (Reason.TIMESTAMP_TOO_OLD, "j", '{"ts": 1000000000, "temp": 1, ' + FAN_OK + "}", "temp"),
    (Reason.TIMESTAMP_TOO_OLD, "p", _spb(Metric("Meter/Power", 1.0), ts=NOW_MS - 8 * 86_400_000), "kw"),
    (Reason.DUPLICATE_IN_MESSAGE, "j", '{"temp": 1, "temp": 2, ' + FAN_OK + "}", "temp"),
    (Reason.DUPLICATE_IN_MESSAGE, "s", '[{"n": "zone_temp", "v": 1}, {"n": "zone_temp", "v": 2}]', "zone"),
    (Reason.DUPLICATE_IN_MESSAGE, "p", _spb(Metric("Meter/Power", 1.0), Metric("Meter/Power", 2.0), ts=NOW_MS), "kw"),
]


def _ids() -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for reason, topic, _, _ in CASES:
        key = f"{reason.value}-{topic}"
        seen[key] = seen.get(key, 0) + 1
        out.append(f"{key}-{seen[key]}")
    return out


@pytest.mark.parametrize(("reason", "topic", "payload", "sensor"), CASES, ids=_ids())
def test_reason(reason: Reason, topic: str, payload: bytes | str, sensor: str | None) -> None:
    raw = payload.encode() if isinstance(payload, str) else payload
    out = parse(topic, raw, TABLE, NOW, LIMITS)
    rejects = [r for r in out if isinstance(r, Reject)]
    assert any(r.reason == reason and r.sensor == sensor for r in rejects), out
    kept = raw[: LIMITS.max_payload_bytes]  # an oversized payload is cut at the limit
    assert all(r.topic == topic and r.payload == kept and r.detail for r in rejects)


def test_every_reason_has_an_example() -> None:
    assert {c[0] for c in CASES} | {Reason.PARSER_ERROR} == set(Reason)


def test_duplicate_keeps_the_first_value() -> None:
    out = parse("s", b'[{"n": "zone_temp", "v": 1}, {"n": "zone_temp", "v": 2}]', TABLE, NOW)
    assert out[0] == Reading("zone", NOW, 1.0)
    assert isinstance(out[1], Reject) and "this one: 2.0" in out[1].detail


def test_a_parser_bug_becomes_a_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> list[Reading | Reject]:
        raise KeyError("bug")

    monkeypatch.setitem(PARSERS, "senml", broken)
    [reject] = parse("s", b"[]", TABLE, NOW)
    assert isinstance(reject, Reject) and reject.reason == Reason.PARSER_ERROR
    assert "senml parser raised KeyError" in reject.detail


def test_unbound_records_are_ignored_when_something_matched() -> None:
    pack = [{"n": "humidity", "v": 40}, {"n": "zone_temp", "v": 21}]
    assert parse("s", json.dumps(pack).encode(), TABLE, NOW) == [Reading("zone", NOW, 21.0)]


def test_naive_arrival_time_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("j", b"{}", TABLE, datetime(2025, 1, 1))
