"""Typed dependencies of the routes: a pooled connection, the authenticated caller, their access to one site.

Callers authenticate with `Authorization: Bearer <access token>` (ours, or an OpenID Connect provider's: see
`oidc`) or `X-API-Key: dtw_...`. Their grants are
read from the database on every request. `site_access(minimum)` answers 403 when the caller holds no role
(or too low a role) at the site, whether or not the site exists, so probing site names reveals nothing;
404 only for a site the caller could see but which has no schema.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
import jwt
from fastapi import Depends, Path, Request, WebSocketException
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from limits import RateLimitItem
from starlette.requests import HTTPConnection

from dtwin_api import oidc, repo, security
from dtwin_api.authz import Principal, Role
from dtwin_api.errors import ApiError, forbidden, not_found, unauthorized
from dtwin_api.oidc import OidcVerifier
from dtwin_api.settings import Settings

SITE_NAME = r"^[a-z][-a-z0-9]{0,62}$"
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def enforce(
    request: HTTPConnection, items: list[RateLimitItem], key: tuple[str, str], what: str, *, refuse_upgrade: bool = True
) -> None:
    """Hit every limit of `items` for `key`; over one: 429 (or, for a WebSocket handshake with `refuse_upgrade`,
    close 1008 before accept; without it the WebSocket route reports the ApiError in its own error frame)."""
    limiter = request.app.state.limiter.limiter  # slowapi's `limits` strategy on its configured storage
    for item in items:
        if not limiter.hit(item, *key):
            if request.scope["type"] == "websocket" and refuse_upgrade:
                raise WebSocketException(1008, f"rate limit exceeded: {item} {what}")
            reset = limiter.get_window_stats(item, *key).reset_time
            retry = {"Retry-After": str(max(1, math.ceil(reset - time.time())))}
            raise ApiError(429, "rate_limited", f"rate limit exceeded: {item} {what}", retry)


def client_address(conn: HTTPConnection) -> str:
    """As slowapi's `get_remote_address`, for HTTP requests and WebSocket connects alike."""
    return conn.client.host if conn.client and conn.client.host else "127.0.0.1"


async def ip_rate_limit(request: HTTPConnection) -> None:
    """Every route (WebSocket connects too): the budget of one client address (the proxy's, unless uvicorn
    trusts X-Forwarded-For)."""
    enforce(request, request.app.state.ip_limits, ("ip", client_address(request)), "per client address")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        yield conn


Conn = Annotated[asyncpg.Connection, Depends(connection)]


async def _from_api_key(conn: asyncpg.Connection, key: str) -> int:
    parts = security.split_api_key(key)
    row = await repo.api_key_row(conn, parts[0]) if parts else None
    if parts is None or row is None or not security.same_digest(row["key_hash"], parts[1]):
        raise unauthorized("invalid API key")
    return int(row["user_id"])


async def user_from_bearer(conn_: HTTPConnection, conn: asyncpg.Connection, token: str) -> tuple[int, str]:
    """(user id, how) of a bearer token: ours (HS256), or the OpenID Connect provider's when its `iss` says so."""
    verifier: OidcVerifier | None = conn_.app.state.oidc
    if verifier is not None and oidc.unverified_issuer(token) == verifier.issuer:
        try:
            identity = await asyncio.to_thread(verifier.verify, token)  # may fetch the JWKS over HTTP
        except jwt.PyJWTError as err:
            raise unauthorized(f"invalid OpenID Connect token: {err}") from err
        except oidc.OidcUnavailableError as err:
            raise ApiError(503, "oidc_unavailable", "the identity provider's keys could not be fetched") from err
        found = await repo.user_id_by_identity(conn, identity.claim, identity.value)
        if found is None:
            raise unauthorized(f"no local user for this identity ({identity.claim})")
        return found, "oidc"
    try:
        return int(conn_.app.state.signer.verify(token)), "password"
    except (security.InvalidTokenError, ValueError) as err:
        raise unauthorized(f"invalid access token: {err}") from err


async def current_principal(
    request: Request,
    conn: Conn,
    token: Annotated[str | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    if api_key:
        user_id, via = await _from_api_key(conn, api_key), "api_key"
    elif token:
        user_id, via = await user_from_bearer(request, conn, token)
    else:
        raise unauthorized()
    user = await repo.active_user(conn, user_id)
    if user is None:
        raise unauthorized("the user no longer exists or is disabled")
    principal = Principal(user_id, user[0], via, user[1])  # type: ignore[arg-type]
    enforce(request, request.app.state.user_limits, ("user", principal.rate_key), "per user")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True)
class SiteAccess:
    site: str
    schema: str
    role: Role
    principal: Principal


def site_access(minimum: Role) -> Callable[..., Awaitable[SiteAccess]]:
    async def dependency(
        site: Annotated[str, Path(pattern=SITE_NAME)], principal: CurrentPrincipal, conn: Conn
    ) -> SiteAccess:
        role = principal.role_at(site)
        if role is None:
            raise forbidden(f"no access to site {site!r}")
        if role < minimum:
            raise forbidden(f"this needs role {minimum.name} or higher at site {site!r}; you are {role.name}")
        schemas = await repo.site_schemas(conn, site, principal.scope(minimum))
        if not schemas:
            raise not_found(f"site {site!r} not found")
        if len(schemas) > 1:
            raise ApiError(409, "ambiguous_site", f"site name {site!r} is claimed in several namespaces")
        return SiteAccess(site, schemas[0], role, principal)

    return dependency
