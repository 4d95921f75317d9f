"""Liveness, readiness and Prometheus metrics (not part of the versioned API).

Readiness needs all three dependencies, each checked within its own deadline and concurrently: the database
answers a query, the live-event broker subscription is established (when MQTT is enabled), and the Kubernetes
API server answers `/readyz` (when enabled; models and the operator's claims come from there). A failure is
503 with the JSON body naming every check and which failed, so a probe log says what to fix.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from dtwin_api.cluster import Cluster, ClusterUnavailableError

router = APIRouter(tags=["ops"])
CHECK_TIMEOUT_S = 2.0


class ReadyOut(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]  # database / broker / kubernetes -> "ok", "disabled"


class NotReadyOut(BaseModel):
    error: Literal["not_ready"]
    message: str  # names what failed
    checks: dict[str, str]  # every check: "ok", "disabled", or why it failed


@router.get("/health")
async def health() -> dict[str, str]:
    """The process answers; says nothing about its dependencies."""
    return {"status": "ok"}


async def _database(request: Request) -> str:
    pool: asyncpg.Pool = request.app.state.pool
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        return f"failed: {type(err).__name__}"
    return "ok"


async def _broker(request: Request) -> str:
    if not request.app.state.settings.mqtt_enabled:
        return "disabled"
    subscriber = request.app.state.subscriber
    # The subscriber reconnects by itself; until it is subscribed the WebSocket would get no live events.
    return "ok" if subscriber is not None and subscriber.subscribed.is_set() else "failed: not subscribed"


async def _kubernetes(request: Request) -> str:
    if not request.app.state.settings.kube_enabled:
        return "disabled"
    cluster: Cluster | None = request.app.state.cluster
    if cluster is None:
        return "failed: no usable configuration (in-cluster or kubeconfig)"
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S + cluster.timeout):
            await cluster.call(cluster.ping)
    except (TimeoutError, ClusterUnavailableError) as err:
        return f"failed: {err or type(err).__name__}"
    return "ok"


@router.get("/ready", response_model=ReadyOut, responses={503: {"model": NotReadyOut, "description": "not ready"}})
async def ready(request: Request) -> JSONResponse:
    """Ready when the database, the broker subscription and the Kubernetes API all answer."""
    results = await asyncio.gather(_database(request), _broker(request), _kubernetes(request))
    checks = dict(zip(("database", "broker", "kubernetes"), results, strict=True))
    failed = [name for name, state in checks.items() if state.startswith("failed")]
    if failed:
        body = {"error": "not_ready", "message": f"not ready: {', '.join(failed)}", "checks": checks}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
