"""The live hub's pure parts: topics, filters, the bounded coalescing outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dtwin_api.live import Filter, Outbox, Reading, check_template, parse_topic, readings_of, subscription

T0 = datetime(2026, 12, 3, 10, tzinfo=UTC)


def reading(sensor: str, i: int, asset: str = "ahu-1", metric: str = "supply") -> Reading:
    ts = T0 + timedelta(seconds=i)
    doc = {"sensor": sensor, "asset": asset, "metric": metric, "unit": "degC", "ts": ts.isoformat(), "value": i}
    return Reading(sensor, asset, metric, ts, doc)


def test_topics() -> None:
    assert subscription("sites/{site}") == "sites/+/events/#"
    assert subscription("tenants/acme/{site}/v1") == "tenants/acme/+/v1/events/#"
    assert parse_topic("sites/{site}", "sites/hq/events/telemetry") == ("hq", "telemetry")
    assert parse_topic("sites/{site}", "sites/hq/events/alerts") == ("hq", "alerts")
    assert parse_topic("tenants/acme/{site}/v1", "tenants/acme/hq/v1/events/alerts") == ("hq", "alerts")
    for bad in (
        "sites/hq/events/other",
        "sites/hq/ahu-1/telemetry",
        "other/hq/events/alerts",
        "sites/hq/x/events/alerts",
    ):
        assert parse_topic("sites/{site}", bad) is None
    for template in ("sites", "sites/{site}/{site}", "sites/x{site}", "sites/+/{site}", "sites//{site}"):
        with pytest.raises(ValueError, match="whole level"):
            check_template(template)


def test_readings_and_filters() -> None:
    event = {"readings": [reading("a", 1).doc, {"sensor": "b", "ts": "2026-01-01T00:00:00"}, {"ts": "x"}, 7]}
    assert [r.sensor for r in readings_of(event)] == ["a"]  # naive ts, missing sensor, junk: skipped
    assert readings_of({"readings": "no"}) == [] and readings_of([]) == []
    f = Filter(frozenset({"ahu-1"}), frozenset({"supply"}), alerts=True)
    assert f.reading(reading("a", 1)) and not f.reading(reading("a", 1, metric="ret"))
    assert not f.reading(reading("a", 1, asset="pump"))
    assert f.alert({"asset": "ahu-1"}) and not f.alert({"asset": "pump"})
    assert not Filter(alerts=False).alert({"asset": "ahu-1"})


def test_outbox_queues_while_it_fits_then_coalesces_to_latest_per_sensor() -> None:
    box = Outbox(max_readings=10, max_alerts=3)
    box.put_readings([reading(f"s{i}", 0) for i in range(4)])
    box.put_readings([reading(f"s{i}", 1) for i in range(4)])
    assert box.size == 8 and not box.latest
    assert box.put_readings([reading(f"s{i}", 2) for i in range(4)]) == (8, 0)  # 12 > 10: fold
    assert box.size == 4 and {r.sensor: r.doc["value"] for r in box.latest.values()} == {f"s{i}": 2 for i in range(4)}
    box.put_readings([reading("s0", 1)])  # older than what is pending: kept the newer
    assert box.latest["s0"].doc["value"] == 2
    box.put_readings([reading(f"n{i}", 3) for i in range(10)])  # 6 fit, 4 new sensors beyond the limit
    assert box.size == 10 and box.dropped == 4 and box.peak <= 10
    kind, rows = box.take()  # type: ignore[misc]
    assert kind == "coalesced" and len(rows) == 10 and box.take() is None and box.size == 0


def test_alerts_are_never_dropped_but_bounded() -> None:
    box = Outbox(max_readings=10, max_alerts=2)
    assert box.put_alert({"n": 1}) and box.put_alert({"n": 2})
    assert not box.put_alert({"n": 3}) and box.overflowed and len(box.alerts) == 2
    box.put_readings([reading("s", 1)])
    assert box.take() == ("alert", {"n": 1})  # alerts first
