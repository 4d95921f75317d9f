"""Liveness, readiness and Prometheus metrics (not part of the versioned API)."""

from __future__ import annotations

import asyncio

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process answers; says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "the database is unreachable"}})
async def ready(request: Request) -> JSONResponse:
    """The database answers within 2 s; the live-event broker's state is reported alongside, not required."""
    pool: asyncpg.Pool = request.app.state.pool
    try:
        async with asyncio.timeout(2):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        return JSONResponse({"error": "not_ready", "message": f"database: {type(err).__name__}"}, status_code=503)
    # The broker is reported, not required: REST works without it, and the subscriber reconnects by itself.
    subscriber = request.app.state.subscriber
    broker = "disabled" if subscriber is None else "subscribed" if subscriber.subscribed.is_set() else "connecting"
    return JSONResponse({"status": "ready", "database": "ok", "broker": broker})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
