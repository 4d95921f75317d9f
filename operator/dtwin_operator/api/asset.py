"""Asset: one physical asset at a site (AHU, chiller, pump, ...) and its place in the building.

An Asset becomes a row in its site's registry, a place in the 3D view and in
dashboards; its status carries health, open alerts and failure risk.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dtwin_operator.api.common import NAME_PATTERN, Model, Status, ref_field, sub

AssetKind = Literal[
    "AHU", "Chiller", "Boiler", "Pump", "Fan", "Motor", "CoolingTower", "HeatPump", "VAV", "Meter", "Compressor"
]
ASSET_KINDS: tuple[str, ...] = AssetKind.__args__  # type: ignore[attr-defined]


class Position(Model):
    """Position in metres from the floor origin (x east, y north, z up from the floor)."""

    x: float = Field(default=0, description="Metres east of the floor origin.")
    y: float = Field(default=0, description="Metres north of the floor origin.")
    z: float = Field(default=0, description="Metres above the floor.", ge=-50, le=500)


class Placement(Model):
    """Where the asset stands in the site's layout."""

    floor: str = Field(
        description="Name of a floor in the Site's spec.layout.floors.", pattern=NAME_PATTERN, max_length=63
    )
    zone: str | None = Field(
        default=None, description="Name of a zone on that floor.", pattern=NAME_PATTERN, max_length=63
    )
    position: Position = sub(Position, "Position on the floor, in metres.")
    rotation_deg: float = Field(default=0, description="Rotation about the vertical axis, degrees.", ge=0, lt=360)


class Maintenance(Model):
    """Preventive maintenance plan."""

    interval_days: int = Field(default=180, description="Days between preventive services.", ge=1, le=3650)
    last_service_date: str | None = Field(
        default=None,
        description="Date of the last service (YYYY-MM-DD).",
        json_schema_extra={"format": "date"},
    )


class AssetSpec(Model):
    """Desired state of an Asset."""

    site_ref: str = ref_field("Site", "Name of the Site (same namespace) this asset belongs to. Immutable.")
    kind: AssetKind = Field(description="What sort of equipment this is; selects its 3D model, signals and ML.")
    display_name: str | None = Field(default=None, description="Name shown in the portal.", max_length=128)
    manufacturer: str | None = Field(default=None, description="Manufacturer.", max_length=128)
    model: str | None = Field(default=None, description="Manufacturer's model designation.", max_length=128)
    serial_number: str | None = Field(default=None, description="Serial number.", max_length=128)
    rated_power_kw: float | None = Field(
        default=None, description="Nameplate electrical power in kW.", ge=0, le=1000000
    )
    criticality: Literal["Low", "Medium", "High", "Critical"] = Field(
        default="Medium", description="How much its failure matters; orders alerts and work orders."
    )
    location: Placement = Field(description="Place in the site's layout.")
    maintenance: Maintenance = sub(Maintenance, "Preventive maintenance plan.")


class AssetStatus(Status):
    """Observed state of an Asset. state, lastSeen, openAlerts, alertSeverity and healthScore are the
    operator's health summary (dtwin_operator.health), refreshed from the site's database every
    DTWIN_OPERATOR_HEALTH_INTERVAL seconds and written only when they change."""

    site: str | None = Field(default=None, description="The resolved Site.")
    sensors: int = Field(default=0, description="Sensor bindings attached to this asset.")
    state: Literal["Healthy", "Degraded", "Alerting", "Offline", "NoData"] | None = Field(
        default=None,
        description="Healthy; Degraded (some sensor stale or silent); Alerting (an open alert on the asset or a "
        "sensor); Offline (every sensor stale or silent); NoData (no sensor has reported yet).",
    )
    health_score: int | None = Field(
        default=None,
        description="0 (failed) to 100 (healthy): 100 minus penalties for open alerts (40 per critical, 15 per "
        "warning, at most 60), silent sensors (up to 30) and recently rejected readings (up to 10).",
        ge=0,
        le=100,
    )
    open_alerts: int = Field(default=0, description="Alerts on the asset or its sensors not yet resolved.")
    alert_severity: Literal["warning", "critical"] | None = Field(
        default=None, description="Highest severity among the open alerts."
    )
    failure_risk: float | None = Field(
        default=None, description="Probability of failure within the model's horizon (0-1).", ge=0, le=1
    )
    last_seen: str | None = Field(
        default=None,
        description="Time of the newest reading of any of its sensors (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
