"""The app factory: `create_app(settings)` wires settings, middleware, error handlers and routes; the
lifespan opens the asyncpg pool (and applies the `dtwin_api` migrations), the Kubernetes API adapter
(`cluster.py`), starts the MQTT subscriber of the WebSocket's live events (`live.py`), and closes them on
the way out.

Nothing is global: the pool, token signer, rate limiter and metrics registry hang off `app.state`, so
two apps in one process (tests) share nothing. Middleware, outermost first: OpenTelemetry server spans,
request metrics and access log, security headers, CORS (so refusals below it still carry CORS headers a
browser can read), request size limit. Rate limits are dependencies (`deps`): per client address on every
route, per user once the caller is known.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
import structlog
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from kubernetes.config.config_exception import ConfigException
from limits import parse_many
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from slowapi import Limiter
from slowapi.util import get_remote_address

from dtwin_api import errors, migrations, repo
from dtwin_api.cluster import Cluster
from dtwin_api.deps import ip_rate_limit
from dtwin_api.live import Hub, LiveMetrics, Subscriber
from dtwin_api.middleware import BodySizeLimit, RequestMetrics, SecurityHeaders
from dtwin_api.oidc import OidcVerifier
from dtwin_api.routes import auth, maintenance, ml, ops, sites, ws
from dtwin_api.security import TokenSigner
from dtwin_api.settings import Settings

log = structlog.get_logger("dtwin_api")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        init=repo.init_connection,
    )
    try:
        if settings.migrate_on_start:
            async with pool.acquire() as conn:
                await migrations.apply(conn)
        app.state.pool = pool
        app.state.cluster = _cluster(settings)
        subscriber = None
        if settings.mqtt_enabled:
            subscriber = Subscriber(app.state.hub, settings.mqtt_host, settings.mqtt_port, asyncio.get_running_loop())
            subscriber.start()
        app.state.subscriber = subscriber
        try:
            yield
        finally:
            if subscriber is not None:
                await asyncio.to_thread(subscriber.stop)
            if app.state.cluster is not None:
                app.state.cluster.close()
    finally:
        await pool.close()


def _cluster(settings: Settings) -> Cluster | None:
    """The API server adapter; None when disabled or without a usable configuration (then `/ready` says so)."""
    if not settings.kube_enabled:
        return None
    try:
        return Cluster(settings.kubeconfig, settings.kube_timeout_s)
    except (ConfigException, OSError) as err:
        log.warning("kube_config_unusable", error=str(err))
        return None


def create_app(settings: Settings, tracer_provider: TracerProvider | None = None) -> FastAPI:
    """`tracer_provider`: the process's (`dtwin_core.tracing.setup`) unless given (tests: in-memory exporter)."""
    app = FastAPI(
        title="dtwin API",
        version="0.1.0",
        description="Sites, assets, alerts and telemetry of the dtwin digital twin, per-site authorization.",
        lifespan=lifespan,
        dependencies=[Depends(ip_rate_limit)],
        responses=errors.ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.cluster = None
    app.state.oidc = OidcVerifier(settings) if settings.oidc_issuer else None
    app.state.signer = TokenSigner(
        settings.jwt_secret.get_secret_value(),
        settings.jwt_issuer,
        settings.jwt_audience,
        timedelta(seconds=settings.access_token_ttl_s),
    )
    app.state.refresh_ttl = timedelta(seconds=settings.refresh_token_ttl_s)
    # slowapi's limiter (its `limits` storage and moving-window strategy) is used from two dependencies, not
    # through SlowAPIMiddleware: with FastAPI >= 0.137 that middleware cannot find the handlers of included
    # routers and silently skips every limit (https://github.com/laurentS/slowapi/issues/281); its ASGI
    # variant also breaks streamed responses (https://github.com/laurentS/slowapi/issues/249).
    app.state.limiter = Limiter(key_func=get_remote_address, storage_uri="memory://")
    app.state.ip_limits = parse_many(settings.rate_limit_per_ip)
    app.state.user_limits = parse_many(settings.rate_limit_per_user)
    app.state.ws_user_limits = parse_many(settings.rate_limit_ws_per_user)
    app.state.metrics_registry = CollectorRegistry()
    app.state.live_metrics = LiveMetrics(app.state.metrics_registry)
    tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("dtwin_api")
    app.state.hub = Hub(settings.mqtt_topic_prefix_template, app.state.live_metrics, tracer)

    errors.install(app)
    for router in (ops.router, auth.router, sites.router, maintenance.router, ml.router, ws.router):
        app.include_router(router)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH"],
        allow_headers=["Authorization", "Content-Type", "X-API-Key"],
        max_age=600,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, registry=app.state.metrics_registry)
    # Outermost: one server span per HTTP request / WebSocket connection, continuing an incoming traceparent.
    app.add_middleware(
        OpenTelemetryMiddleware,
        tracer_provider=tracer_provider,
        excluded_urls="/health,/metrics",
        exclude_spans=["receive", "send"],  # no span per ASGI message (a WebSocket has thousands)
    )
    return app
