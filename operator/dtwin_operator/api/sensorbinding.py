"""SensorBinding: one sensor point bound to an asset metric.

A binding becomes an entry in its site bridge's routing/validation table (topic,
payload format, unit conversion, valid range), broker ACL entries and the
thresholds the rules engine alerts on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic.json_schema import JsonDict

from dtwin_operator.api.common import Model, Status, cel, ref_field, sub, with_rules

# Units a binding may declare; the bridge converts each to its quantity's
# canonical unit (first of each group) before storing.
Unit = Literal[
    "degC",
    "degF",
    "K",  # temperature
    "Pa",
    "kPa",
    "bar",
    "psi",
    "inH2O",  # pressure
    "percent",
    "percentRH",  # ratios, relative humidity
    "m3/h",
    "L/s",
    "gpm",
    "cfm",  # flow
    "kW",
    "W",
    "hp",  # power
    "kWh",
    "Wh",
    "MWh",  # energy
    "A",
    "V",
    "Hz",
    "rpm",  # electrical, speed
    "mm/s",
    "in/s",
    "g",  # vibration
    "ppm",
    "m/s",
    "count",
    "bool",  # air quality, velocity, counters, states
]
UNITS: tuple[str, ...] = Unit.__args__  # type: ignore[attr-defined]


class ValidRange(Model):
    """Physically possible values; readings outside go to the dead-letter table."""

    min: float = Field(description="Smallest plausible value, in the binding's unit.")
    max: float = Field(description="Largest plausible value, in the binding's unit.")

    model_config = with_rules(
        cel("self.min < self.max", "validRange.min must be less than validRange.max", fieldPath=".min"),
    )


def _order(lower: str, upper: str, blame: str) -> JsonDict:
    """`lower < upper` when both are set; the error is reported on field `blame`."""
    return cel(
        f"!has(self.{lower}) || !has(self.{upper}) || self.{lower} < self.{upper}",
        f"thresholds.{lower} must be less than thresholds.{upper}",
        fieldPath=f".{blame}",
    )


class Thresholds(Model):
    """Alert thresholds, in the binding's unit. Each level fires once the value stays past it for `forSeconds`
    and clears once it is back by more than `hysteresis`."""

    warning_high: float | None = Field(default=None, description="Warn above this value.")
    critical_high: float | None = Field(default=None, description="Critical above this value; above warningHigh.")
    warning_low: float | None = Field(default=None, description="Warn below this value.")
    critical_low: float | None = Field(default=None, description="Critical below this value; below warningLow.")
    for_seconds: int = Field(
        default=0, description="How long a value must stay past a threshold to alert.", ge=0, le=86400
    )
    hysteresis: float = Field(
        default=0, description="How far back inside a threshold a value must return to clear the alert.", ge=0
    )

    model_config = with_rules(
        _order("warningHigh", "criticalHigh", blame="criticalHigh"),
        _order("criticalLow", "warningLow", blame="criticalLow"),
        _order("warningLow", "warningHigh", blame="warningLow"),
    )


class SensorBindingSpec(Model):
    """Desired state of a SensorBinding."""

    asset_ref: str = ref_field("Asset", "Name of the Asset (same namespace) this sensor measures. Immutable.")
    metric: str = Field(
        description="Metric name on the asset, snake_case (e.g. supply_air_temp, vibration_rms).",
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=63,
    )
    topic: str = Field(
        description="MQTT topic the device publishes this sensor on, without wildcards.",
        min_length=1,
        max_length=256,
        pattern=r"^[^+#]+$",
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.contains('#') && !self.contains('+')",
                    "topic must not contain the MQTT wildcards '#' or '+'; "
                    "give the exact topic the device publishes on",
                )
            ]
        },
    )
    payload_format: Literal["json", "senml", "sparkplugb"] = Field(
        default="json", description="Payload encoding: json, senml (RFC 8428) or sparkplugb."
    )
    field: str | None = Field(
        default=None,
        description="Where the value is in the payload: a dotted JSON path, a SenML name or a Sparkplug metric "
        "name (default: the metric name).",
        max_length=128,
    )
    unit: Unit = Field(description="Unit the device sends; converted to the quantity's canonical unit.")
    valid_range: ValidRange | None = Field(default=None, description="Plausible values; others are rejected.")
    thresholds: Thresholds = sub(Thresholds, "Alert thresholds with duration and hysteresis.")
    expected_interval_seconds: int = Field(
        default=60, description="How often the sensor reports; 3 missed intervals make it stale.", ge=1, le=86400
    )

    model_config = with_rules(
        cel(
            "!has(self.validRange) || !has(self.thresholds.criticalHigh) "
            "|| self.thresholds.criticalHigh <= self.validRange.max",
            "thresholds.criticalHigh must be within validRange (<= validRange.max)",
            fieldPath=".thresholds.criticalHigh",
        ),
        cel(
            "!has(self.validRange) || !has(self.thresholds.criticalLow) "
            "|| self.thresholds.criticalLow >= self.validRange.min",
            "thresholds.criticalLow must be within validRange (>= validRange.min)",
            fieldPath=".thresholds.criticalLow",
        ),
    )


class SensorBindingStatus(Status):
    """Observed state of a SensorBinding. Every field but site and the conditions is the operator's health
    summary (dtwin_operator.health), refreshed from the site's database every DTWIN_OPERATOR_HEALTH_INTERVAL
    seconds and written only when it changes."""

    site: str | None = Field(default=None, description="Site whose bridge routes this sensor.")
    state: Literal["Healthy", "Alerting", "Stale", "NoData"] | None = Field(
        default=None,
        description="Healthy; Alerting (an open alert on this sensor); Stale (no reading for 3 expected "
        "intervals); NoData (no reading stored yet).",
    )
    last_value: float | None = Field(default=None, description="Newest accepted value, canonical unit.")
    last_seen: str | None = Field(
        default=None,
        description="Time of the newest accepted reading (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    open_alerts: int = Field(default=0, description="Alerts on this sensor not yet resolved.")
    alert_severity: Literal["warning", "critical"] | None = Field(
        default=None, description="Highest severity among the open alerts."
    )
    rejects: int = Field(
        default=0,
        description="Readings of this sensor (or unparseable payloads on its topic) rejected to the dead-letter "
        "table in the last 15 minutes.",
    )
    health_score: int | None = Field(
        default=None,
        description="0 (failed) to 100 (healthy): 100 minus penalties for open alerts (40 per critical, 15 per "
        "warning, at most 60), silence (30) and recently rejected readings (up to 10).",
        ge=0,
        le=100,
    )
