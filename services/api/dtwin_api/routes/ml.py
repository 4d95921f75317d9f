"""`/api/v1/sites/{site}/...` for the ML side: predictions, energy recommendations, ModelDeployments.

Predictions and recommendations are rows the scorers write into the site schema (empty until they run);
every route reaches them through `site_access`. ModelDeployments are read from the cluster through the
`cluster` adapter and kept to the ones serving this site (`ml.serves_site`: the site's namespace, and a
selector naming this site or none). All reads are viewer+; changing a recommendation's status is manager+
(operations managers act on savings) and audited. Anything beyond reading models (none yet) is engineer+.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict

from dtwin_api import ml, repo, repo_ml
from dtwin_api.authz import Role
from dtwin_api.cluster import Cluster, ClusterUnavailableError
from dtwin_api.deps import Conn, SiteAccess, site_access
from dtwin_api.errors import ApiError, not_found

router = APIRouter(prefix="/api/v1/sites", tags=["ml"])
Viewer = Annotated[SiteAccess, Depends(site_access(Role.viewer))]
Manager = Annotated[SiteAccess, Depends(site_access(Role.manager))]
Task = Literal["anomaly", "failure", "energy"]
Name = Annotated[str | None, Query(max_length=253)]


class PredictionOut(BaseModel):
    asset: str
    model: str
    version: str
    task: str | None
    ts: datetime
    score: float
    horizon_hours: int | None
    rul_hours: float | None
    explanation: Any


class RecommendationOut(BaseModel):
    id: int
    asset: str | None
    kind: str
    title: str
    detail: str | None
    kwh_saved: float | None
    cost_saved: float | None
    currency: str | None
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime
    model: str | None
    version: str | None
    status: ml.RecommendationStatus
    status_changed_at: datetime | None


class RecommendationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: ml.RecommendationStatus


class ConditionOut(BaseModel):
    type: str
    status: str
    reason: str | None
    message: str | None
    last_transition_time: str | None


class VersionCallsOut(BaseModel):
    version: str
    calls: int
    errors: int
    error_rate: float | None
    mean_score: float | None  # of the successful calls


class ModelOut(BaseModel):
    name: str
    namespace: str
    task: str
    model: str
    site: str | None  # the selector's site; None: every site of the namespace
    desired_version: str | None
    active_version: str | None
    canary_version: str | None  # served or about to be; never a rolled-back version
    canary_traffic_percent: int | None
    canary_state: ml.CanaryState | None  # None until the operator has written the status
    rolled_back_version: str | None  # stays off until spec.canary.version changes
    ready_replicas: int | None  # of the stable serving Deployment
    canary_ready_replicas: int | None
    endpoint: str | None
    selected_assets: int | None
    observed_generation: int | None
    generation: int | None
    conditions: list[ConditionOut]
    calls: list[VersionCallsOut]  # per version, summed over the callers' calls Leases; empty before any call


@router.get("/{site}/predictions", response_model=list[PredictionOut])
async def list_predictions(
    access: Viewer,
    conn: Conn,
    asset: Name = None,
    task: Task | None = None,
    model: Name = None,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[Any]:
    """Predictions in [from, to), newest first; filter by asset, task, model."""
    return await repo_ml.predictions(
        conn, access.schema, asset=asset, task=task, model=model, start=start, end=end, limit=limit
    )


@router.get("/{site}/predictions/latest", response_model=list[PredictionOut])
async def latest_predictions(access: Viewer, conn: Conn, task: Task | None = None, asset: Name = None) -> list[Any]:
    """The newest prediction of every (asset, model)."""
    return await repo_ml.latest_predictions(conn, access.schema, task, asset)


@router.get("/{site}/energy-recommendations", response_model=list[RecommendationOut])
async def list_recommendations(
    access: Viewer,
    conn: Conn,
    status: ml.RecommendationStatus | None = None,
    asset: Name = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="page: older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Any]:
    return await repo_ml.recommendations(
        conn, access.schema, status=status, asset=asset, kind=kind, before_id=before_id, limit=limit
    )


@router.patch("/{site}/energy-recommendations/{rec_id}", response_model=RecommendationOut)
async def patch_recommendation(
    request: Request,
    access: Manager,
    conn: Conn,
    rec_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    patch: RecommendationPatch,
) -> Any:
    """Accept, dismiss or reopen a recommendation (audited as `energy_recommendation.<action>`)."""
    async with conn.transaction():
        before = await repo_ml.recommendation_for_update(conn, access.schema, rec_id)
        if before is None:
            raise not_found(f"energy recommendation {rec_id} not found at site {access.site!r}")
        action = ml.recommendation_change(before["status"], patch.status)
        if action is None:
            return before  # nothing changes, nothing to audit
        after = await repo_ml.set_recommendation_status(conn, access.schema, rec_id, patch.status)
        await repo.audit(
            conn,
            actor_user_id=access.principal.user_id,
            actor=access.principal.username,
            action=f"energy_recommendation.{action}",
            site=access.site,
            target=f"energy_recommendation/{rec_id}",
            before=before,
            after=after,
            client=request.client.host if request.client else None,
        )
    return after


async def _site_models(request: Request, access: SiteAccess, conn: Conn) -> list[dict[str, Any]]:
    cluster: Cluster | None = request.app.state.cluster
    if cluster is None:
        raise ApiError(503, "cluster_unavailable", "the Kubernetes API is not configured for this API")
    namespace = await repo_ml.site_namespace(conn, access.schema)
    if namespace is None:
        raise not_found(f"site {access.site!r} not found")
    try:
        items = await cluster.call(cluster.model_deployments, namespace)
        calls = ml.calls_by_model(await cluster.call(cluster.model_call_leases, namespace))
    except ClusterUnavailableError as err:
        raise ApiError(503, "cluster_unavailable", f"the Kubernetes API did not answer: {err}") from err
    chosen = [
        ml.model_summary(md, calls.get(md.get("metadata", {}).get("name", "")))
        for md in items
        if ml.serves_site(md, access.site, namespace)
    ]
    return sorted(chosen, key=lambda m: str(m["name"]))


@router.get("/{site}/models", response_model=list[ModelOut])
async def list_models(request: Request, access: Viewer, conn: Conn) -> list[Any]:
    """ModelDeployments serving this site, read from the cluster."""
    return await _site_models(request, access, conn)


@router.get("/{site}/models/{name}", response_model=ModelOut)
async def get_model(request: Request, access: Viewer, conn: Conn, name: Annotated[str, Path(max_length=253)]) -> Any:
    for m in await _site_models(request, access, conn):
        if m["name"] == name:
            return m
    raise not_found(f"model {name!r} not found at site {access.site!r}")
