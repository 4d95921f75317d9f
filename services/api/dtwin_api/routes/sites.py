"""`/api/v1/sites`: sites, assets, sensors, alerts (read, acknowledge, resolve) and telemetry history
(JSON or CSV). Work orders and alert assignment/comments are in `maintenance`.

Every route reaches data only through `site_access` (one site's schema, after the role check) or a
`SiteScope` (the list of sites), so no query can touch a site the caller holds no grant on.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from dtwin_api import repo, repo_ml, telemetry
from dtwin_api.authz import Role
from dtwin_api.deps import Conn, CurrentPrincipal, SiteAccess, get_settings, site_access
from dtwin_api.errors import ApiError, not_found
from dtwin_api.settings import Settings

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])
Viewer = Annotated[SiteAccess, Depends(site_access(Role.viewer))]
Technician = Annotated[SiteAccess, Depends(site_access(Role.technician))]
AlertState = Literal["open", "acknowledged", "resolved"]
Severity = Literal["warning", "critical"]


class OpenAlerts(BaseModel):
    critical: int
    warning: int


class SiteOut(BaseModel):
    name: str
    namespace: str
    role: str
    open_alerts: OpenAlerts | None


class FailureRisk(BaseModel):
    probability: float
    horizon_hours: int | None
    at: datetime
    model: str
    version: str


class MaintenanceDue(BaseModel):
    date: date
    overdue: bool  # the date is before today (the database's current_date)
    work_order_id: int


class AssetOut(BaseModel):
    name: str
    kind: str
    display_name: str | None
    floor: str | None
    zone: str | None
    x: float | None
    y: float | None
    z: float | None
    criticality: str | None
    updated_at: datetime
    open_alerts: int
    last_service_at: datetime | None  # set by completing a work order on the asset
    failure_risk: FailureRisk | None  # the latest failure prediction (None until a failure model scored it)
    maintenance_due: MaintenanceDue | None  # the earliest scheduled active work order


class AlertOut(BaseModel):
    id: int
    sensor: str | None
    asset: str | None
    kind: str
    severity: str
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    last_value: float | None
    message: str
    details: dict[str, Any] | None  # predictive alerts: probability, horizon_hours, model, version, top features


class AlertListItem(AlertOut):
    assignee_user_id: int | None  # see POST .../alerts/{id}/assign


SensorState = Literal["ok", "alerting", "stale", "no_data"]


class SensorOut(BaseModel):
    name: str
    asset: str
    metric: str
    unit: str
    canonical_unit: str
    last_ts: datetime | None
    last_value: float | None
    open_alerts: int
    state: SensorState


class TelemetryOut(BaseModel):
    bucket: str
    rows: list[dict[str, Any]]


@router.get("", response_model=list[SiteOut])
async def list_sites(principal: CurrentPrincipal, conn: Conn) -> list[SiteOut]:
    out = []
    for row in await repo.sites(conn, principal.scope()):
        role = principal.role_at(row["site"])
        assert role is not None  # the scope holds only sites with a grant
        try:
            counts: OpenAlerts | None = OpenAlerts(**await repo.open_alert_counts(conn, row["schema_name"]))
        except asyncpg.UndefinedTableError:
            counts = None  # claimed by the operator, schema not built yet
        out.append(SiteOut(name=row["site"], namespace=row["namespace"], role=role.name, open_alerts=counts))
    return out


@router.get("/{site}/assets", response_model=list[AssetOut])
async def list_assets(access: Viewer, conn: Conn) -> list[Any]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await repo.assets(conn, access.schema, access.site)
        derived = await repo_ml.assets_ml(conn, access.schema, access.site)
    return [dict(r) | _derived(derived.get(r["name"], {})) for r in rows]


def _derived(d: dict[str, Any]) -> dict[str, Any]:
    risk = due = None
    if d.get("risk_at") is not None:
        risk = FailureRisk(probability=d["risk_probability"], horizon_hours=d["risk_horizon_hours"], at=d["risk_at"],
                           model=d["risk_model"], version=d["risk_version"])  # fmt: skip
    if d.get("due_date") is not None:
        due = MaintenanceDue(date=d["due_date"], overdue=bool(d["due_overdue"]), work_order_id=d["due_work_order_id"])
    return {"failure_risk": risk, "maintenance_due": due}


@router.get("/{site}/alerts", response_model=list[AlertListItem])
async def list_alerts(
    access: Viewer,
    conn: Conn,
    state: AlertState | None = None,
    severity: Severity | None = None,
    asset: Annotated[str | None, Query(max_length=253)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="page: alerts older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Any]:
    rows = await repo.alerts(
        conn, access.schema, access.site, state=state, severity=severity, asset=asset, before_id=before_id, limit=limit
    )
    return [dict(r) for r in rows]


async def _transition(request: Request, access: SiteAccess, conn: Conn, alert_id: int, target: str) -> Any:
    async with conn.transaction():
        before = await repo.alert_for_update(conn, access.schema, alert_id)
        if before is None:  # also an id of another site's alert: each site has its own table
            raise not_found(f"alert {alert_id} not found at site {access.site!r}")
        if before["state"] == target:
            return dict(before)  # nothing changes, so nothing to audit
        if before["state"] == "resolved":
            raise ApiError(409, "conflict", f"alert {alert_id} is already resolved")
        after = await repo.set_alert_state(conn, access.schema, alert_id, target)
        await repo.audit(
            conn,
            actor_user_id=access.principal.user_id,
            actor=access.principal.username,
            action=f"alert.{'acknowledge' if target == 'acknowledged' else 'resolve'}",
            site=access.site,
            target=f"alert/{alert_id}",
            before=dict(before),
            after=dict(after),
            client=request.client.host if request.client else None,
        )
    return dict(after)


AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.post("/{site}/alerts/{alert_id}/acknowledge", response_model=AlertOut)
async def acknowledge_alert(request: Request, access: Technician, conn: Conn, alert_id: AlertId) -> Any:
    return await _transition(request, access, conn, alert_id, "acknowledged")


@router.post("/{site}/alerts/{alert_id}/resolve", response_model=AlertOut)
async def resolve_alert(request: Request, access: Technician, conn: Conn, alert_id: AlertId) -> Any:
    return await _transition(request, access, conn, alert_id, "resolved")


SENSOR_LOOKBACK = timedelta(hours=24)


def sensor_state(last_ts: datetime | None, open_alerts: int, silent: bool) -> SensorState:
    """`stale`: an open stale/offline alert on the sensor (the bridge's rules engine raises it after 3 missed
    expected intervals; the registry table has no interval column, it lives in the SensorBinding CR);
    `alerting`: another open alert; `no_data`: never reported."""
    if silent:
        return "stale"
    if last_ts is None:
        return "no_data"
    return "alerting" if open_alerts else "ok"


@router.get("/{site}/sensors", response_model=list[SensorOut])
async def list_sensors(
    access: Viewer, conn: Conn, asset: Annotated[str | None, Query(max_length=253)] = None
) -> list[SensorOut]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await repo.sensors_with_last(conn, access.schema, asset, datetime.now().astimezone() - SENSOR_LOOKBACK)
        alerts = await repo.open_alerts_by_sensor(conn, access.schema)
    out = []
    for r in rows:
        n, silent = alerts.get(r["name"], (0, False))
        out.append(SensorOut(**dict(r), open_alerts=n, state=sensor_state(r["last_ts"], n, silent)))
    return out


_CSV_COLUMNS = {"raw": ("sensor", "ts", "value")}
_ROLLUP_COLUMNS = ("sensor", "ts", "avg", "min", "max", "count")


def _csv(bucket: str, rows: list[asyncpg.Record]) -> str:
    columns = _CSV_COLUMNS.get(bucket, _ROLLUP_COLUMNS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r[c].isoformat() if c == "ts" else r[c] for c in columns])
    return buf.getvalue()


@router.get(
    "/{site}/telemetry",
    response_model=TelemetryOut,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_telemetry(
    request: Request,
    access: Viewer,
    conn: Conn,
    settings: Annotated[Settings, Depends(get_settings)],
    sensor: Annotated[list[str], Query(min_length=1, description="repeat for several sensors")],
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
    bucket: telemetry.Bucket = "auto",
    format: Annotated[
        Literal["json", "csv"] | None, Query(description="csv: same rows as CSV (or send Accept: text/csv)")
    ] = None,
) -> Any:
    if len(sensor) > settings.telemetry_max_sensors:
        raise ApiError(422, "too_many_sensors", f"at most {settings.telemetry_max_sensors} sensors per query")
    if problem := telemetry.check_range(start, end):
        raise ApiError(422, "invalid_range", problem)
    chosen = telemetry.choose_bucket(start, end, bucket)
    limit = settings.telemetry_max_points
    rows = await repo.telemetry(conn, access.schema, sorted(set(sensor)), start, end, chosen, limit + 1)
    if len(rows) > limit:
        raise ApiError(
            422,
            "too_many_points",
            f"more than {limit} rows at bucket {chosen}: narrow the range, use fewer sensors or a coarser bucket",
        )
    wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return Response(
            _csv(chosen, rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{access.site}-telemetry.csv"', "X-Bucket": chosen},
        )
    return TelemetryOut(bucket=chosen, rows=[dict(r) for r in rows])
