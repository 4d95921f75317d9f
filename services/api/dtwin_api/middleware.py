"""Pure ASGI middleware: request size limit, security headers, Prometheus request metrics and access logs.

Pure ASGI rather than `BaseHTTPMiddleware` so bodies are streamed through untouched and a size limit can
stop a chunked upload after `max_bytes` without reading the rest.
"""

from __future__ import annotations

import json
import time

import structlog
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("dtwin_api.access")

_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Swagger UI and ReDoc load scripts and styles from a CDN; everything else is JSON and needs nothing.
_API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_DOC_PATHS = ("/docs", "/redoc")


async def _send_json(send: Send, status: int, payload: dict[str, str]) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"error": "too_large", "message": f"request body exceeds {self.max_bytes} bytes"}
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _send_json(send, 413, too_large)
            return
        seen, started, rejected = 0, False, False

        async def limited_receive() -> Message:
            # Raising here would not work: FastAPI turns any error while reading the body into a 400.
            # Instead answer 413 ourselves, tell the app the client left, and drop whatever it sends.
            nonlocal seen, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    rejected = True
                    if not started:
                        await _send_json(send, 413, too_large)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:  # the app's own failure; after a rejection, only the aftermath of the disconnect
                raise


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"].startswith(_DOC_PATHS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _HEADERS if docs else [*_HEADERS, _API_CSP, (b"cache-control", b"no-store")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _name_server_span(scope: Scope) -> None:
    """The OpenTelemetry server span (started outside the router) is named after the raw path; name it after the
    route template, as the semantic conventions ask (ids in names explode their cardinality). Done when the
    response starts: the instrumentation ends the span with the last body chunk."""
    route = getattr(scope.get("route"), "path", None)
    span = trace.get_current_span()
    if route and span.is_recording():
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)


class RequestMetrics:
    """Latency histogram and request counter labelled by route template (never the raw path, whose
    ids would explode the label set), method and status; one structured access log line per request."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.latency = Histogram(
            "dtwin_api_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.requests = Counter(
            "dtwin_api_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _name_server_span(scope)
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - start
            # FastAPI sets scope["route"] for its API routes; docs/openapi are plain Starlette routes.
            route = getattr(scope.get("route"), "path", None) or ("unmatched" if status == 404 else "other")
            self.latency.labels(scope["method"], route).observe(elapsed)
            self.requests.labels(scope["method"], route, str(status)).inc()
            client = scope.get("client")
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                ms=round(elapsed * 1000, 2),
                client=client[0] if client else None,
            )
