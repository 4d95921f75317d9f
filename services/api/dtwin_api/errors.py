"""Every error leaves the API as JSON `{"error": <code>, "message": <text>}` with a 4xx status when the
caller can fix it; only a fault of ours is a 500, and that one is logged with its traceback.

PostgreSQL's data errors (a value it cannot convert or compare, SQLSTATE class 22) are the caller's input
reaching the database in a form validation let through, so they are 400, not 500. A missing table means
a site schema the operator has claimed but not finished building (or a column of a migration it has not
applied yet): 503, retry later. `ERROR_RESPONSES` documents these answers in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("dtwin_api")


class ErrorOut(BaseModel):
    """The body of every error answer (422 adds `detail`: the validation errors, without input values)."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str


_MEANINGS = {
    400: "a value PostgreSQL rejects",
    401: "missing, invalid or expired credentials",
    403: "no role (or too low a role) at the site; the same whether the site exists or not",
    404: "not found at this site",
    409: "conflict with the current state",
    413: "request body too large",
    422: "invalid input",
    429: "rate limit exceeded (see Retry-After)",
    503: "not ready: a site schema being built, or a dependency (cluster) unavailable",
}
# Declared on every router, so the OpenAPI document lists each answer the API can give.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": meaning} for code, meaning in _MEANINGS.items()
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def unauthorized(message: str = "missing or invalid credentials") -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status_code, "http_error")
    return JSONResponse(body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # ctx may hold exception objects; `input` may echo a password back: drop both.
    details = [{k: v for k, v in e.items() if k not in ("ctx", "input")} for e in exc.errors()]
    return JSONResponse(
        body("invalid_request", "the request is not valid", detail=jsonable_encoder(details)), status_code=422
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    log.info("data_error", path=request.url.path, sqlstate=getattr(exc, "sqlstate", None), error=str(exc))
    return JSONResponse(body("invalid_value", "a value in the request is out of range or malformed"), status_code=400)


async def _schema_missing(request: Request, exc: Exception) -> JSONResponse:
    # A claimed site whose schema is still being built (or dropped under us): try again later, not a bug.
    log.warning("schema_not_ready", path=request.url.path, error=str(exc))
    return JSONResponse(body("not_ready", "the site's tables are not ready yet; retry later"), status_code=503)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled_error", path=request.url.path, method=request.method)
    return JSONResponse(body("internal_error", "internal error; it has been logged"), status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(asyncpg.DataError, _data_error)
    app.add_exception_handler(asyncpg.UndefinedTableError, _schema_missing)
    app.add_exception_handler(asyncpg.UndefinedColumnError, _schema_missing)  # a site schema mid-migration
    app.add_exception_handler(Exception, _unexpected)
