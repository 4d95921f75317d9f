"""Health of SensorBindings and Assets, judged from what the site's database says about their sensors.

Pure: facts in (the newest reading of each sensor, open alerts, recent dead letters, a `now` the caller
passes), the status fields the operator writes out. A sensor is *silent* when it never reported (`NoData`)
or its newest reading is at least `STALE_AFTER` expected intervals old (`Stale`), the same rule the
bridge's rules engine raises stale alerts with.

Binding state, first that holds: `NoData`, `Stale`, `Alerting` (an open alert on the sensor), `Healthy`.
Asset state, first that holds: `NoData` (no sensor has ever reported, or it has none), `Offline` (every
sensor silent), `Alerting` (an open alert on the asset or one of its sensors), `Degraded` (some sensor
silent), `Healthy`.

Health score, 0 (failed) to 100 (healthy), an integer, the same formula for a binding (its one sensor)
and an asset (its sensors, plus the alerts raised on the asset itself):

    score = max(0, 100 - A - S - R)
    A = min(60, 40 x open critical alerts + 15 x open warning alerts)          open alerts
    S = 30 x silent sensors / sensors                                           stale or never reported
    R = min(10, 10 x dead letters in the last 15 min / readings expected then)  rejects

so one critical alert alone gives 60, one warning 85, an asset whose sensors all went silent (with the
bridge's stale and offline alerts open) 10. An asset without sensors has no score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

STALE_AFTER = 3  # expected intervals of silence before a sensor is stale (dtwin_bridge.rules.staleness)
REJECT_WINDOW = timedelta(minutes=15)
CRITICAL_PENALTY, WARNING_PENALTY, ALERT_CAP = 40, 15, 60
SILENT_PENALTY = 30
REJECT_CAP = 10

Severity = Literal["warning", "critical"]
BindingState = Literal["Healthy", "Alerting", "Stale", "NoData"]
AssetState = Literal["Healthy", "Degraded", "Alerting", "Offline", "NoData"]


@dataclass(frozen=True)
class Alerts:
    """Open (not resolved) alerts, counted by severity."""

    warning: int = 0
    critical: int = 0

    def __add__(self, other: Alerts) -> Alerts:
        return Alerts(self.warning + other.warning, self.critical + other.critical)

    @property
    def count(self) -> int:
        return self.warning + self.critical

    @property
    def worst(self) -> Severity | None:
        return "critical" if self.critical else "warning" if self.warning else None

    @staticmethod
    def of(severity: str, n: int = 1) -> Alerts:
        return Alerts(critical=n) if severity == "critical" else Alerts(warning=n)


# Rows as the queries in `db/telemetry_facts.py` return them.
@dataclass(frozen=True)
class LastReading:
    sensor: str
    ts: datetime
    value: float


@dataclass(frozen=True)
class OpenAlertCount:
    sensor: str | None  # None for an asset-level alert (offline)
    asset: str | None
    severity: str
    count: int


@dataclass(frozen=True)
class RejectCount:
    sensor: str | None  # None when the whole payload was refused before a sensor was known
    topic: str
    count: int


@dataclass(frozen=True)
class Binding:
    """What health needs from one SensorBinding's spec."""

    name: str
    asset: str
    topic: str
    expected_interval_s: int


@dataclass(frozen=True)
class SensorFacts:
    name: str
    asset: str
    expected_interval_s: int
    last_ts: datetime | None = None
    last_value: float | None = None
    alerts: Alerts = Alerts()
    rejects: int = 0  # dead letters within REJECT_WINDOW


@dataclass(frozen=True)
class BindingHealth:
    state: BindingState
    last_seen: datetime | None
    last_value: float | None
    alerts: Alerts
    rejects: int
    score: int


@dataclass(frozen=True)
class AssetHealth:
    state: AssetState
    last_seen: datetime | None
    alerts: Alerts
    score: int | None


def gather(
    bindings: Iterable[Binding],
    readings: Iterable[LastReading],
    alerts: Iterable[OpenAlertCount],
    rejects: Iterable[RejectCount],
) -> tuple[dict[str, SensorFacts], dict[str, Alerts]]:
    """Per-binding facts, and per-asset alerts raised on the asset itself rather than on one of its sensors.

    An alert counts against its sensor when that sensor is bound, else against its asset. A dead letter
    with no sensor (an unparseable payload) counts against every binding on its topic."""
    bound = {b.name: b for b in bindings}
    last = {r.sensor: r for r in readings}
    per_sensor: dict[str, Alerts] = {}
    per_asset: dict[str, Alerts] = {}
    for a in alerts:
        if a.sensor is not None and a.sensor in bound:
            per_sensor[a.sensor] = per_sensor.get(a.sensor, Alerts()) + Alerts.of(a.severity, a.count)
        elif a.asset is not None:
            per_asset[a.asset] = per_asset.get(a.asset, Alerts()) + Alerts.of(a.severity, a.count)
    by_sensor: dict[str, int] = {}
    by_topic: dict[str, int] = {}
    for r in rejects:
        if r.sensor is not None:
            by_sensor[r.sensor] = by_sensor.get(r.sensor, 0) + r.count
        else:
            by_topic[r.topic] = by_topic.get(r.topic, 0) + r.count
    facts = {}
    for b in bound.values():
        seen = last.get(b.name)
        facts[b.name] = SensorFacts(
            b.name,
            b.asset,
            b.expected_interval_s,
            seen.ts if seen else None,
            seen.value if seen else None,
            per_sensor.get(b.name, Alerts()),
            by_sensor.get(b.name, 0) + by_topic.get(b.topic, 0),
        )
    return facts, per_asset


def silent(f: SensorFacts, now: datetime) -> bool:
    return f.last_ts is None or now - f.last_ts >= timedelta(seconds=STALE_AFTER * f.expected_interval_s)


def score(alerts: Alerts, silent_fraction: float, rejects: int, expected_readings: float) -> int:
    """The module docstring's formula."""
    a = min(ALERT_CAP, CRITICAL_PENALTY * alerts.critical + WARNING_PENALTY * alerts.warning)
    s = SILENT_PENALTY * silent_fraction
    r = min(REJECT_CAP, REJECT_CAP * rejects / max(expected_readings, 1.0))
    return max(0, round(100 - a - s - r))


def _expected(f: SensorFacts) -> float:
    return REJECT_WINDOW.total_seconds() / f.expected_interval_s


def binding_health(f: SensorFacts, now: datetime) -> BindingHealth:
    quiet = silent(f, now)
    state: BindingState = (
        "NoData" if f.last_ts is None else "Stale" if quiet else "Alerting" if f.alerts.count else "Healthy"
    )
    return BindingHealth(
        state, f.last_ts, f.last_value, f.alerts, f.rejects, score(f.alerts, float(quiet), f.rejects, _expected(f))
    )


def asset_health(sensors: Sequence[SensorFacts], own: Alerts, now: datetime) -> AssetHealth:
    alerts = sum((f.alerts for f in sensors), own)
    seen = [f.last_ts for f in sensors if f.last_ts is not None]
    last_seen = max(seen) if seen else None
    quiet = sum(silent(f, now) for f in sensors)
    state: AssetState
    if not seen:
        state = "NoData"
    elif quiet == len(sensors):
        state = "Offline"
    elif alerts.count:
        state = "Alerting"
    elif quiet:
        state = "Degraded"
    else:
        state = "Healthy"
    if not sensors:
        return AssetHealth(state, None, alerts, None)
    rejects = sum(f.rejects for f in sensors)
    expected = sum(_expected(f) for f in sensors)
    return AssetHealth(state, last_seen, alerts, score(alerts, quiet / len(sensors), rejects, expected))


def rfc3339(ts: datetime | None) -> str | None:
    """Whole seconds in UTC with a Z, as Kubernetes writes times."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def binding_status(h: BindingHealth) -> dict[str, Any]:
    """The SensorBinding status keys health owns (None deletes a key in a merge patch)."""
    return {
        "state": h.state,
        "lastSeen": rfc3339(h.last_seen),
        "lastValue": h.last_value,
        "openAlerts": h.alerts.count,
        "alertSeverity": h.alerts.worst,
        "rejects": h.rejects,
        "healthScore": h.score,
    }


def asset_status(h: AssetHealth) -> dict[str, Any]:
    """The Asset status keys health owns (None deletes a key in a merge patch)."""
    return {
        "state": h.state,
        "lastSeen": rfc3339(h.last_seen),
        "openAlerts": h.alerts.count,
        "alertSeverity": h.alerts.worst,
        "healthScore": h.score,
    }


def site_health(
    facts: Mapping[str, SensorFacts], own: Mapping[str, Alerts], assets: Iterable[str], now: datetime
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Desired health status of every binding and every asset of a site, keyed by name."""
    bindings = {name: binding_status(binding_health(f, now)) for name, f in facts.items()}
    by_asset: dict[str, list[SensorFacts]] = {}
    for f in facts.values():
        by_asset.setdefault(f.asset, []).append(f)
    out = {a: asset_status(asset_health(by_asset.get(a, []), own.get(a, Alerts()), now)) for a in assets}
    return bindings, out
