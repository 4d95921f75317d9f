"""`/api/v1/auth`: OAuth2 password flow and refresh-token rotation."""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from dtwin_api import repo, security, sessions
from dtwin_api.deps import Conn, get_settings
from dtwin_api.errors import unauthorized
from dtwin_api.settings import Settings

log = structlog.get_logger("dtwin_api.auth")
router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


def _response(pair: sessions.TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token)


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post("/token", response_model=TokenResponse)
async def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    conn: Conn,
    settings: Annotated[Settings, Depends(get_settings)],
) -> TokenResponse:
    row = await repo.login_row(conn, form.username)
    # argon2 costs tens of milliseconds of CPU: off the event loop. Runs for unknown users too (timing).
    ok = await asyncio.to_thread(security.verify_password, row["password_hash"] if row else None, form.password)
    if row is None or not ok:
        log.info("login_failed", username=form.username, client=_client(request))
        raise unauthorized("invalid username or password")
    async with conn.transaction():
        pair = await sessions.issue(conn, request.app.state.signer, request.app.state.refresh_ttl, row["id"])
    return _response(pair)


@router.post("/refresh", response_model=TokenResponse)
async def refresh(request: Request, body: RefreshRequest, conn: Conn) -> TokenResponse:
    pair = await sessions.rotate(
        conn, request.app.state.signer, request.app.state.refresh_ttl, body.refresh_token, _client(request)
    )
    return _response(pair)
