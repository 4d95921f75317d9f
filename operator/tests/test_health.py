"""Unit tests of the pure health judgement: binding and asset states, the score formula, fact gathering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dtwin_operator.health import (
    Alerts,
    Binding,
    LastReading,
    OpenAlertCount,
    RejectCount,
    SensorFacts,
    asset_health,
    asset_status,
    binding_health,
    binding_status,
    gather,
    rfc3339,
    score,
    site_health,
)

NOW = datetime(2026, 3, 15, 12, 0, 0, tzinfo=UTC)


def facts(name: str = "s1", asset: str = "a1", ago: float | None = 10, interval: int = 60, **kw: object) -> SensorFacts:
    ts = None if ago is None else NOW - timedelta(seconds=ago)
    return SensorFacts(name, asset, interval, ts, None if ts is None else 21.5, **kw)  # type: ignore[arg-type]


def test_alerts_add_count_and_worst() -> None:
    a = Alerts.of("warning", 2) + Alerts.of("critical")
    assert (a.warning, a.critical, a.count, a.worst) == (2, 1, 3, "critical")
    assert Alerts.of("warning").worst == "warning" and Alerts().worst is None


@pytest.mark.parametrize(
    ("alerts", "silent", "rejects", "expected", "want"),
    [
        (Alerts(), 0.0, 0, 15, 100),
        (Alerts(critical=1), 0.0, 0, 15, 60),
        (Alerts(warning=1), 0.0, 0, 15, 85),
        (Alerts(critical=3, warning=2), 0.0, 0, 15, 40),  # alert penalty capped at 60
        (Alerts(), 1.0, 0, 15, 70),
        (Alerts(), 0.5, 0, 15, 85),
        (Alerts(), 0.0, 3, 15, 98),  # 3 rejects of 15 expected readings: 10 x 0.2
        (Alerts(), 0.0, 100, 15, 90),  # reject penalty capped at 10
        (Alerts(critical=2), 1.0, 100, 15, 0),  # everything wrong: 100 - 60 - 30 - 10
        (Alerts(), 0.0, 1, 0.5, 90),  # fewer than one expected reading counts as one
    ],
)
def test_score_formula(alerts: Alerts, silent: float, rejects: int, expected: float, want: int) -> None:
    assert score(alerts, silent, rejects, expected) == want


def test_binding_states_in_order_of_precedence() -> None:
    assert binding_health(facts(ago=None, alerts=Alerts(critical=1)), NOW).state == "NoData"
    assert binding_health(facts(ago=180, alerts=Alerts(critical=1)), NOW).state == "Stale"  # 3 x 60 s
    assert binding_health(facts(ago=179, alerts=Alerts(warning=1)), NOW).state == "Alerting"
    assert binding_health(facts(ago=179), NOW).state == "Healthy"


def test_binding_health_carries_reading_alerts_rejects_and_score() -> None:
    h = binding_health(facts(ago=5.4, alerts=Alerts(warning=1), rejects=3, interval=60), NOW)
    assert h.last_value == 21.5 and h.rejects == 3
    # 15 min at one reading a minute: 3 rejects of 15 expected cost 2 points, the warning 15.
    assert h.score == 83
    assert binding_status(h) == {
        "state": "Alerting",
        "lastSeen": "2026-03-15T11:59:54Z",
        "lastValue": 21.5,
        "openAlerts": 1,
        "alertSeverity": "warning",
        "rejects": 3,
        "healthScore": 83,
    }


def test_silent_binding_has_no_value_and_a_silence_penalty() -> None:
    h = binding_health(facts(ago=None), NOW)
    assert binding_status(h) == {
        "state": "NoData",
        "lastSeen": None,
        "lastValue": None,
        "openAlerts": 0,
        "alertSeverity": None,
        "rejects": 0,
        "healthScore": 70,
    }


def test_asset_states_in_order_of_precedence() -> None:
    fresh, stale, never = facts("f", ago=1), facts("s", ago=3600), facts("n", ago=None)
    assert asset_health([], Alerts(), NOW).state == "NoData"
    assert asset_health([never, never], Alerts(critical=1), NOW).state == "NoData"
    assert asset_health([stale, never], Alerts(critical=1), NOW).state == "Offline"
    assert asset_health([fresh, stale], Alerts(warning=1), NOW).state == "Alerting"
    assert asset_health([fresh, facts("x", ago=1, alerts=Alerts(warning=1))], Alerts(), NOW).state == "Alerting"
    assert asset_health([fresh, never], Alerts(), NOW).state == "Degraded"
    assert asset_health([fresh, fresh], Alerts(), NOW).state == "Healthy"


def test_asset_summary_takes_newest_reading_and_all_alerts() -> None:
    sensors = [facts("s1", ago=30, alerts=Alerts(warning=1)), facts("s2", ago=2, alerts=Alerts(critical=1))]
    h = asset_health(sensors, Alerts(warning=1), NOW)
    assert asset_status(h) == {
        "state": "Alerting",
        "lastSeen": "2026-03-15T11:59:58Z",
        "openAlerts": 3,
        "alertSeverity": "critical",
        "healthScore": 100 - 60,  # 40 + 15 + 15 capped at 60
    }


def test_asset_without_sensors_has_no_score_or_last_seen() -> None:
    assert asset_status(asset_health([], Alerts(), NOW)) == {
        "state": "NoData",
        "lastSeen": None,
        "openAlerts": 0,
        "alertSeverity": None,
        "healthScore": None,
    }


def test_asset_score_weighs_silent_sensors_and_rejects_by_share() -> None:
    sensors = [facts("a", ago=1, rejects=15), facts("b", ago=None)]
    # One of two sensors silent: 15; 15 rejects of 30 expected readings (2 sensors x 15): 5.
    assert asset_health(sensors, Alerts(), NOW).score == 80


def test_gather_attributes_alerts_and_rejects() -> None:
    bindings = [Binding("t1", "pump", "sites/hq/pump", 60), Binding("t2", "pump", "sites/hq/pump", 10)]
    readings = [LastReading("t1", NOW - timedelta(seconds=5), 1.0), LastReading("gone", NOW, 9.0)]
    alerts = [
        OpenAlertCount("t1", "pump", "warning", 1),
        OpenAlertCount(None, "pump", "critical", 1),  # offline: asset-level
        OpenAlertCount("old-binding", "pump", "warning", 2),  # sensor no longer bound: counts on its asset
        OpenAlertCount("zzz", None, "warning", 1),  # neither bound nor attributable: ignored
    ]
    rejects = [RejectCount("t2", "sites/hq/pump", 4), RejectCount(None, "sites/hq/pump", 2), RejectCount(None, "x", 7)]
    facts_, own = gather(bindings, readings, alerts, rejects)
    assert facts_["t1"] == SensorFacts("t1", "pump", 60, NOW - timedelta(seconds=5), 1.0, Alerts(warning=1), 2)
    assert facts_["t2"] == SensorFacts("t2", "pump", 10, None, None, Alerts(), 6)
    assert own == {"pump": Alerts(warning=2, critical=1)}


def test_site_health_covers_every_binding_and_asset() -> None:
    bindings = [Binding("t1", "pump", "a", 60), Binding("v1", "fan", "b", 60)]
    facts_, own = gather(bindings, [LastReading("t1", NOW, 3.0)], [], [])
    for_bindings, for_assets = site_health(facts_, own, ["pump", "fan", "lonely"], NOW)
    assert {k: v["state"] for k, v in for_bindings.items()} == {"t1": "Healthy", "v1": "NoData"}
    assert {k: v["state"] for k, v in for_assets.items()} == {"pump": "Healthy", "fan": "NoData", "lonely": "NoData"}
    assert for_assets["lonely"]["healthScore"] is None and for_assets["pump"]["healthScore"] == 100


def test_rfc3339_is_utc_whole_seconds() -> None:
    ts = datetime(2026, 3, 15, 13, 0, 1, 999999, tzinfo=timezone(timedelta(hours=1)))
    assert rfc3339(ts) == "2026-03-15T12:00:01Z"
    assert rfc3339(None) is None
