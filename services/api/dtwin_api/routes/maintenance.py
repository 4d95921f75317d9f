"""Maintenance: work orders under `/api/v1/sites/{site}/work-orders`, created by hand (manager+) or from an
alert (technician+), and alert assignment and comments.

The rows live in schema `dtwin_api` keyed by site (see `migrations`); every query names the site that
`site_access` admitted, so another site's work order id is 404 here, as another site's alert id is.
Completing a work order, in one transaction: its state, the asset's last service date, and every linked
alert still unresolved set to `resolved` (the bridge's rules engine opens a new alert if the condition
persists: an alert's dedup key is unique among unresolved alerts only). Every write is audited with
before/after.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dtwin_api import repo, workorders
from dtwin_api.authz import Role
from dtwin_api.deps import Conn, SiteAccess, site_access
from dtwin_api.errors import ApiError, forbidden, not_found
from dtwin_api.routes.sites import AlertId, AlertOut

router = APIRouter(prefix="/api/v1/sites", tags=["maintenance"])
Viewer = Annotated[SiteAccess, Depends(site_access(Role.viewer))]
Technician = Annotated[SiteAccess, Depends(site_access(Role.technician))]
Manager = Annotated[SiteAccess, Depends(site_access(Role.manager))]

Priority = Literal["low", "medium", "high", "urgent"]
WorkOrderState = Literal["open", "scheduled", "in_progress", "completed", "cancelled"]
UserId = Annotated[int, Field(ge=1, le=2**63 - 1)]
WorkOrderId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Title = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=4000)]
# A date PostgreSQL and Python both hold; far-off dates are a typo, not a plan.
ScheduledFor = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2999, 12, 31))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkOrderCreate(Strict):
    asset: Annotated[str, Field(min_length=1, max_length=253)]
    title: Title
    description: Text = ""
    priority: Priority = "medium"
    scheduled_for: ScheduledFor | None = None
    assignee_user_id: UserId | None = None
    notes: Text = ""
    alert_ids: Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(max_length=50)] = []


class WorkOrderFromAlert(Strict):
    title: Title | None = None  # default: the alert's message
    description: Text = ""
    priority: Priority | None = None  # default: high for a critical alert, else medium
    scheduled_for: ScheduledFor | None = None
    assignee_user_id: UserId | None = None  # a technician may assign only themselves
    notes: Text = ""


class WorkOrderPatch(Strict):
    title: Title | None = None
    description: Text | None = None
    priority: Priority | None = None
    state: Literal["scheduled", "in_progress"] | None = None
    scheduled_for: ScheduledFor | None = None
    assignee_user_id: UserId | None = None
    notes: Text | None = None


class Closing(Strict):
    notes: Text = ""


class WorkOrderOut(BaseModel):
    id: int
    site: str
    asset: str
    title: str
    description: str
    priority: str
    state: str
    scheduled_for: date | None
    assignee_user_id: int | None
    notes: str
    alert_ids: list[int]
    created_by: int
    created_at: datetime
    updated_by: int
    updated_at: datetime
    completed_at: datetime | None
    completion_notes: str | None


class CompletionOut(BaseModel):
    work_order: WorkOrderOut
    last_service_at: datetime
    resolved_alerts: list[AlertOut]


class AssignIn(Strict):
    assignee_user_id: UserId


class AssignmentOut(BaseModel):
    alert_id: int
    assignee_user_id: int
    assigned_by: int
    assigned_at: datetime


class CommentIn(Strict):
    body: Annotated[str, Field(min_length=1, max_length=4000)]


class CommentOut(BaseModel):
    id: int
    alert_id: int
    author_user_id: int | None
    author: str
    body: str
    created_at: datetime


async def _audit(
    request: Request, conn: asyncpg.Connection, access: SiteAccess, action: str, target: str, before: Any, after: Any
) -> None:
    await repo.audit(
        conn,
        actor_user_id=access.principal.user_id,
        actor=access.principal.username,
        action=action,
        site=access.site,
        target=target,
        before=before,
        after=after,
        client=request.client.host if request.client else None,
    )


async def _check_assignee(conn: asyncpg.Connection, access: SiteAccess, user_id: int | None) -> None:
    if user_id is not None and not await repo.is_technician_at(conn, user_id, access.site):
        raise ApiError(
            422, "invalid_assignee", f"user {user_id} is not an active user with technician or higher at this site"
        )


async def _alert_or_404(conn: asyncpg.Connection, access: SiteAccess, alert_id: int) -> asyncpg.Record:
    alert = await repo.alert_row(conn, access.schema, alert_id)
    if alert is None:  # also another site's alert id: each site has its own table
        raise not_found(f"alert {alert_id} not found at site {access.site!r}")
    return alert


async def _locked(conn: asyncpg.Connection, access: SiteAccess, wo_id: int) -> dict[str, Any]:
    row = await repo.work_order(conn, access.site, wo_id, lock=True)
    if row is None:  # another site's id too: the site is part of the key
        raise not_found(f"work order {wo_id} not found at site {access.site!r}")
    return row


async def _create(request: Request, conn: asyncpg.Connection, access: SiteAccess, values: dict[str, Any]) -> Any:
    alert_ids: list[int] = values.pop("alert_ids")
    if not await repo.asset_exists(conn, access.schema, values["asset"]):
        raise ApiError(422, "unknown_asset", "no such asset at this site")
    await _check_assignee(conn, access, values["assignee_user_id"])
    missing = set(alert_ids) - await repo.existing_alert_ids(conn, access.schema, alert_ids)
    if missing:
        raise ApiError(422, "unknown_alert", f"no alert {sorted(missing)} at this site")
    values["state"] = "scheduled" if values["scheduled_for"] is not None else "open"
    async with conn.transaction():
        row = await repo.insert_work_order(conn, access.site, values, alert_ids, access.principal.user_id)
        await _audit(request, conn, access, "work_order.create", f"work_order/{row['id']}", None, row)
    return row


@router.get("/{site}/work-orders", response_model=list[WorkOrderOut])
async def list_work_orders(
    access: Viewer,
    conn: Conn,
    state: WorkOrderState | None = None,
    asset: Annotated[str | None, Query(max_length=253)] = None,
    assignee: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="assignee user id")] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="page: older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    return await repo.work_orders(
        conn, access.site, state=state, asset=asset, assignee=assignee, before_id=before_id, limit=limit
    )


@router.get("/{site}/work-orders/{wo_id}", response_model=WorkOrderOut)
async def get_work_order(access: Viewer, conn: Conn, wo_id: WorkOrderId) -> Any:
    row = await repo.work_order(conn, access.site, wo_id)
    if row is None:
        raise not_found(f"work order {wo_id} not found at site {access.site!r}")
    return row


@router.post("/{site}/work-orders", response_model=WorkOrderOut, status_code=201)
async def create_work_order(request: Request, access: Manager, conn: Conn, body: WorkOrderCreate) -> Any:
    return await _create(request, conn, access, body.model_dump())


@router.post("/{site}/alerts/{alert_id}/work-order", response_model=WorkOrderOut, status_code=201)
async def create_from_alert(
    request: Request,
    access: Technician,
    conn: Conn,
    alert_id: AlertId,
    body: Annotated[WorkOrderFromAlert | None, Body()] = None,
) -> Any:
    spec = body or WorkOrderFromAlert()
    alert = await _alert_or_404(conn, access, alert_id)
    if alert["state"] == "resolved":
        raise ApiError(409, "conflict", f"alert {alert_id} is already resolved")
    if alert["asset"] is None:
        raise ApiError(409, "conflict", f"alert {alert_id} names no asset")
    if access.role < Role.manager and spec.assignee_user_id not in (None, access.principal.user_id):
        raise forbidden("a technician may only assign a work order to themselves")
    values = spec.model_dump() | {
        "asset": alert["asset"],
        "title": spec.title or (alert["message"] or f"{alert['kind']} alert on {alert['asset']}")[:200],
        "priority": spec.priority or ("high" if alert["severity"] == "critical" else "medium"),
        "alert_ids": [alert_id],
    }
    return await _create(request, conn, access, values)


@router.patch("/{site}/work-orders/{wo_id}", response_model=WorkOrderOut)
async def patch_work_order(
    request: Request, access: Technician, conn: Conn, wo_id: WorkOrderId, body: WorkOrderPatch
) -> Any:
    changes = body.model_dump(exclude_unset=True)
    for key in ("title", "description", "priority", "state", "notes"):
        if key in changes and changes[key] is None:
            raise ApiError(422, "invalid_request", f"{key} cannot be null")
    async with conn.transaction():
        before = await _locked(conn, access, wo_id)
        if not changes:
            return before  # nothing changes, so nothing to audit
        if problem := workorders.may_patch(access.role, access.principal.user_id, before, changes):
            raise forbidden(problem)
        if problem := workorders.patch_problem(before, changes):
            raise ApiError(409, "conflict", problem)
        if "assignee_user_id" in changes:
            await _check_assignee(conn, access, changes["assignee_user_id"])
        changes["state"] = workorders.next_state(before, changes)
        after = await repo.update_work_order(conn, access.site, wo_id, changes, access.principal.user_id)
        await _audit(request, conn, access, "work_order.update", f"work_order/{wo_id}", before, after)
    return after


@router.post("/{site}/work-orders/{wo_id}/complete", response_model=CompletionOut)
async def complete_work_order(
    request: Request,
    access: Technician,
    conn: Conn,
    wo_id: WorkOrderId,
    body: Annotated[Closing | None, Body()] = None,
) -> CompletionOut:
    notes = (body or Closing()).notes
    async with conn.transaction():
        before = await _locked(conn, access, wo_id)
        if not workorders.may_complete(access.role, access.principal.user_id, before):
            raise forbidden("only the assignee or a manager may complete this work order")
        if before["state"] not in workorders.ACTIVE:
            raise ApiError(409, "conflict", f"work order is {before['state']}")
        after = await repo.close_work_order(conn, access.site, wo_id, "completed", notes, access.principal.user_id)
        served = await repo.record_service(conn, access.site, before["asset"], wo_id)
        await _audit(request, conn, access, "work_order.complete", f"work_order/{wo_id}", before, after)
        resolved = []
        for alert in await repo.open_alerts_for_update(conn, access.schema, before["alert_ids"]):
            done = await repo.set_alert_state(conn, access.schema, alert["id"], "resolved")
            await _audit(request, conn, access, "alert.resolve", f"alert/{alert['id']}", dict(alert), dict(done))
            resolved.append(AlertOut(**dict(done)))
    return CompletionOut(work_order=WorkOrderOut(**after), last_service_at=served, resolved_alerts=resolved)


@router.post("/{site}/work-orders/{wo_id}/cancel", response_model=WorkOrderOut)
async def cancel_work_order(
    request: Request,
    access: Manager,
    conn: Conn,
    wo_id: WorkOrderId,
    body: Annotated[Closing | None, Body()] = None,
) -> Any:
    async with conn.transaction():
        before = await _locked(conn, access, wo_id)
        if before["state"] not in workorders.ACTIVE:
            raise ApiError(409, "conflict", f"work order is {before['state']}")
        notes = (body or Closing()).notes
        after = await repo.close_work_order(conn, access.site, wo_id, "cancelled", notes, access.principal.user_id)
        await _audit(request, conn, access, "work_order.cancel", f"work_order/{wo_id}", before, after)
    return after


@router.post("/{site}/alerts/{alert_id}/assign", response_model=AssignmentOut)
async def assign_alert(request: Request, access: Technician, conn: Conn, alert_id: AlertId, body: AssignIn) -> Any:
    await _alert_or_404(conn, access, alert_id)
    await _check_assignee(conn, access, body.assignee_user_id)
    async with conn.transaction():
        before = await repo.alert_assignment(conn, access.site, alert_id)
        after = await repo.assign_alert(conn, access.site, alert_id, body.assignee_user_id, access.principal.user_id)
        await _audit(request, conn, access, "alert.assign", f"alert/{alert_id}", before, after)
    return after


@router.post("/{site}/alerts/{alert_id}/comments", response_model=CommentOut, status_code=201)
async def add_comment(request: Request, access: Technician, conn: Conn, alert_id: AlertId, body: CommentIn) -> Any:
    await _alert_or_404(conn, access, alert_id)
    async with conn.transaction():
        row = await repo.add_comment(
            conn, access.site, alert_id, access.principal.user_id, access.principal.username, body.body
        )
        await _audit(request, conn, access, "alert.comment", f"alert/{alert_id}", None, row)
    return row


@router.get("/{site}/alerts/{alert_id}/comments", response_model=list[CommentOut])
async def list_comments(
    access: Viewer,
    conn: Conn,
    alert_id: AlertId,
    after_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="page: newer than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    await _alert_or_404(conn, access, alert_id)
    return await repo.comments(conn, access.site, alert_id, after_id, limit)
