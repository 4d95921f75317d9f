"""`WebSocket /api/v1/ws`: a site's live telemetry and alerts, filtered, with heartbeats and resume.

Protocol (JSON text frames; see the README): connect with `?token=<access JWT>` (browsers cannot set
headers on a WebSocket), send one `subscribe`, receive `subscribed`, optionally a replay ending with
`replay_done`, then live `telemetry` / `alert` frames and a `heartbeat` every `ws_heartbeat_s`. Errors are
`{"type": "error", "status": ..., "error": ..., "message": ...}` followed by a close (4400/4401/4403/4404/
4409, 4429 over the per-user subscription rate, 1013 when the alert backlog is full).

Authorization is the REST routes': viewer or higher at the site, checked against the database's grants when
subscribing; a site without a role is 403 whether or not it exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from dtwin_api import repo
from dtwin_api.authz import Principal, Role
from dtwin_api.deps import SITE_NAME, enforce, user_from_bearer
from dtwin_api.errors import ApiError
from dtwin_api.live import Client, Filter, Hub, LiveMetrics, Outbox, Reading
from dtwin_api.settings import Settings

router = APIRouter(tags=["live"])
log = structlog.get_logger("dtwin_api.ws")
REPLAY_CHUNK = 1000
GONE = (WebSocketDisconnect, OSError, RuntimeError)  # the client went away; RuntimeError: send after close


class Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^subscribe$")
    site: str = Field(pattern=SITE_NAME)
    assets: list[str] | None = Field(default=None, max_length=1000)
    metrics: list[str] | None = Field(default=None, max_length=1000)
    alerts: bool = True
    since: AwareDatetime | None = None


class RefusedError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


async def _principal(ws: WebSocket, conn: asyncpg.Connection, token: str | None, *, count: bool) -> Principal:
    if not token:
        raise RefusedError(401, "unauthorized", "missing access token (?token=)")
    try:
        user_id, via = await user_from_bearer(ws, conn, token)
    except ApiError as err:
        raise RefusedError(err.status, err.code, err.message) from err
    user = await repo.active_user(conn, user_id)
    if user is None:
        raise RefusedError(401, "unauthorized", "the user no longer exists or is disabled")
    principal = Principal(user_id, user[0], via, user[1])  # type: ignore[arg-type]
    if not count:
        return principal
    try:  # per user: a client reconnecting in a loop must not turn each connect into a replay query
        limits = ws.app.state.ws_user_limits
        enforce(ws, limits, ("ws-user", principal.rate_key), "WebSocket subscriptions per user", refuse_upgrade=False)
    except ApiError as err:
        raise RefusedError(429, err.code, err.message) from err
    return principal


async def _schema(conn: asyncpg.Connection, principal: Principal, site: str) -> str:
    """The same checks as `deps.site_access(Role.viewer)`."""
    if principal.role_at(site) is None:
        raise RefusedError(403, "forbidden", f"no access to site {site!r}")
    schemas = await repo.site_schemas(conn, site, principal.scope(Role.viewer))
    if not schemas:
        raise RefusedError(404, "not_found", f"site {site!r} not found")
    if len(schemas) > 1:
        raise RefusedError(409, "ambiguous_site", f"site name {site!r} is claimed in several namespaces")
    return schemas[0]


async def _subscribe_message(ws: WebSocket, wait_s: float) -> Subscribe:
    try:
        async with asyncio.timeout(wait_s):
            text = await ws.receive_text()
    except TimeoutError as err:
        raise RefusedError(400, "timeout", "no subscribe message in time") from err
    try:
        return Subscribe.model_validate_json(text)
    except ValidationError as err:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "message" for e in err.errors()})
        message = f"invalid subscribe message (fields: {', '.join(fields)})"
        raise RefusedError(400, "invalid_subscribe", message) from err


async def _replay(
    ws: WebSocket, conn: asyncpg.Connection, settings: Settings, sub: Subscribe, schema: str
) -> dict[str, datetime]:
    """Stored readings and alerts since `sub.since` (bounded); returns sensor -> newest replayed ts."""
    assert sub.since is not None
    floor = datetime.now(UTC) - timedelta(seconds=settings.ws_replay_max_age_s)
    since = max(sub.since, floor)
    limit = settings.ws_replay_max_rows
    rows = await repo.replay_readings(conn, schema, since, sub.assets, sub.metrics, limit)
    alerts = await repo.replay_alerts(conn, schema, since, sub.assets, limit) if sub.alerts else []
    watermark: dict[str, datetime] = {}
    for a in alerts:
        await ws.send_text(_json({"type": "alert", "site": sub.site, "replay": True, **dict(a)}))
    for i in range(0, len(rows), REPLAY_CHUNK):
        chunk = [dict(r) for r in rows[i : i + REPLAY_CHUNK]]
        for r in chunk:
            watermark[r["sensor"]] = max(r["ts"], watermark.get(r["sensor"], r["ts"]))
        await ws.send_text(_json({"type": "telemetry", "site": sub.site, "replay": True, "readings": chunk}))
    truncated = len(rows) >= limit
    note = []
    if since > sub.since:
        note.append(f"replay starts at {since.isoformat()}: at most {settings.ws_replay_max_age_s} s back")
    if truncated:
        note.append(f"only the newest {limit} readings were replayed; query /sites/{{site}}/telemetry for the rest")
    await ws.send_text(
        _json({"type": "replay_done", "site": sub.site, "since": since, "readings": len(rows), "alerts": len(alerts),
               "truncated": truncated or since > sub.since, "note": "; ".join(note) or None})
    )  # fmt: skip
    return watermark


def _fresh(readings: list[Reading], watermark: dict[str, datetime]) -> list[dict[str, Any]]:
    """Live readings not already replayed: dedupe by (sensor, ts) — anything at or before the newest replayed
    ts of its sensor was in the replay (the bridge publishes only after commit)."""
    out = []
    for r in readings:
        mark = watermark.get(r.sensor)
        if mark is None or r.ts > mark:
            out.append(r.doc)
    return out


async def _pump(ws: WebSocket, client: Client, watermark: dict[str, datetime], settings: Settings) -> None:
    metrics: LiveMetrics = ws.app.state.live_metrics
    loop = asyncio.get_running_loop()
    outbox, site = client.outbox, client.site
    next_beat = loop.time() + settings.ws_heartbeat_s

    async def send(kind: str, doc: dict[str, Any]) -> None:
        await ws.send_text(_json(doc))
        metrics.sent.labels(kind).inc()

    try:
        while True:
            if outbox.overflowed:
                await _close_overflowed(ws, outbox.max_alerts)
                return
            if loop.time() >= next_beat:
                await send("heartbeat", {"type": "heartbeat", "at": datetime.now(UTC)})
                next_beat = loop.time() + settings.ws_heartbeat_s
            outbox.ready.clear()
            item = outbox.take()
            if item is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_beat - loop.time())):
                        await outbox.ready.wait()
                continue
            kind, payload = item
            if kind == "alert":
                await send("alert", {**payload, "type": "alert", "site": site})
            elif rows := _fresh(payload, watermark):
                doc: dict[str, Any] = {"type": "telemetry", "site": site, "readings": rows}
                if kind == "coalesced":
                    doc["coalesced"] = True
                await send("telemetry", doc)
    except asyncio.CancelledError:
        if not outbox.overflowed:
            raise
        await _close_overflowed(ws, outbox.max_alerts)  # cancelled by the hub: the client stopped reading


async def _close_overflowed(ws: WebSocket, limit: int) -> None:
    """Error frame and close 1013, if the socket takes them within a second (a stalled client will not)."""
    message = f"more than {limit} alerts pending: reconnect with since"
    doc = {"type": "error", "status": 1013, "error": "alert_backlog_full", "message": message}
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(1):
            await ws.send_text(_json(doc))
            await ws.close(1013, "alert backlog full")


async def _drain_input(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends after subscribing, until it goes away."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return


@router.websocket("/api/v1/ws")
async def live(ws: WebSocket, token: str | None = None) -> None:
    settings: Settings = ws.app.state.settings
    hub: Hub = ws.app.state.hub
    metrics: LiveMetrics = ws.app.state.live_metrics
    await ws.accept()
    metrics.connections.inc()
    client: Client | None = None
    try:
        try:
            async with ws.app.state.pool.acquire() as conn:
                principal = await _principal(ws, conn, token, count=True)
            sub = await _subscribe_message(ws, settings.ws_subscribe_timeout_s)  # no pooled connection held
            async with ws.app.state.pool.acquire() as conn:
                principal = await _principal(ws, conn, token, count=False)  # grants as of now, not as of the handshake
                schema = await _schema(conn, principal, sub.site)
                client = Client(
                    sub.site,
                    Filter(
                        frozenset(sub.assets) if sub.assets is not None else None,
                        frozenset(sub.metrics) if sub.metrics is not None else None,
                        sub.alerts,
                    ),
                    Outbox(settings.ws_outbox_max_readings, settings.ws_alert_backlog_max),
                )
                hub.add(client)  # before the replay query: nothing published meanwhile is missed
                log.info("ws_subscribed", client=client.id, user=principal.username, site=sub.site, since=sub.since)
                await ws.send_text(_json({"type": "subscribed", **sub.model_dump(exclude={"type"})}))
                watermark = await _replay(ws, conn, settings, sub, schema) if sub.since is not None else {}
        except RefusedError as err:
            log.info("ws_refused", status=err.status, error=err.code)
            refusal = {"type": "error", "status": err.status, "error": err.code, "message": err.message}
            await ws.send_text(_json(refusal))
            await ws.close(4000 + err.status, err.code)
            return
        client.pump = asyncio.create_task(_pump(ws, client, watermark, settings))
        reader = asyncio.create_task(_drain_input(ws))
        try:
            await asyncio.wait({client.pump, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (client.pump, reader):
                task.cancel()
            results = await asyncio.gather(client.pump, reader, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, GONE):
                log.error("ws_failed", client=client.id, error=repr(result))
    except GONE:
        pass  # the client went away (RuntimeError: sending on a closed socket)
    finally:
        if client is not None:
            hub.remove(client)
            log.info("ws_closed", client=client.id, site=client.site, peak=client.outbox.peak,
                     coalesced=client.outbox.coalesced, dropped=client.outbox.dropped)  # fmt: skip
        metrics.connections.dec()
