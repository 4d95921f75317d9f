"""Authentication against real PostgreSQL: password login, refresh rotation with reuse detection, API keys,
and access tokens that are expired, tampered with, or signed for someone else (all 401 with a JSON body)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from dtwin_api import repo, security
from dtwin_api.authz import Role

PASSWORD = "correct horse battery staple"


def _unauthorized(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "unauthorized" and r.json()["message"]
    assert r.headers["www-authenticate"] == "Bearer"


async def _login(api: Any, username: str, password: str = PASSWORD) -> Any:
    return await api.client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_refresh_rotation_and_reuse_revokes_family(world: Any) -> None:
    async def scenario() -> None:
        await world.add_user("tech", {"alpha": Role.technician}, security.hash_password(PASSWORD))
        async with world.serve() as api:
            c = api.client
            _unauthorized(await _login(api, "tech", "wrong"))
            _unauthorized(await _login(api, "nobody"))
            first = (await _login(api, "tech")).json()
            assert first["token_type"] == "bearer" and first["expires_in"] == 900
            r = await c.get("/api/v1/sites/alpha/assets", headers={"Authorization": f"Bearer {first['access_token']}"})
            assert r.status_code == 200

            second = (await c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
            third = (await c.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})).json()
            assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
            claims = jwt.decode(third["access_token"], options={"verify_signature": False})
            assert {"sub", "exp", "iat", "jti", "iss", "aud"} <= claims.keys()

            # The first token was already rotated: its reuse revokes the whole family, the newest included.
            _unauthorized(await c.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}))
            _unauthorized(await c.post("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}))
            _unauthorized(await c.post("/api/v1/auth/refresh", json={"refresh_token": "not-a-token"}))

            # Another login is another family, unaffected.
            other = (await _login(api, "tech")).json()
            r = await c.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
            assert r.status_code == 200

        conn = await world.connect()
        try:
            audit = await conn.fetch("SELECT actor_user_id, action, after FROM dtwin_api.audit_log")
            assert [(a["actor_user_id"], a["action"], a["after"]) for a in audit] == [
                (world.users["tech"], "auth.refresh_token_reuse", {"revoked_tokens": 3})
            ]
            # An expired refresh token is refused too.
            await conn.execute("UPDATE dtwin_api.refresh_tokens SET expires_at = now() - interval '1 second'")
        finally:
            await conn.close()
        async with world.serve() as api:
            r = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
            assert r.status_code == 401

    asyncio.run(scenario())


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "1"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda api, uid: api.auth(uid, datetime.now(UTC) - timedelta(hours=1)), id="expired"),
        pytest.param(lambda api, uid: {"Authorization": "Bearer " + _tamper(api.auth(uid)["Authorization"][7:])},
                     id="tampered-claims"),
        pytest.param(lambda api, uid: {"Authorization": api.auth(uid)["Authorization"][:-3] + "AAA"},
                     id="tampered-signature"),
        pytest.param(lambda api, uid: {"Authorization": "Bearer " + jwt.encode(
            {"sub": str(uid), "exp": 2**40, "iat": 0, "jti": "x", "iss": "dtwin-api", "aud": "dtwin", "typ": "access"},
            "another-secret-another-secret-another-secret", algorithm="HS256")}, id="other-secret"),
        pytest.param(lambda api, uid: {"Authorization": "Bearer " + jwt.encode(
            {"sub": str(uid), "exp": 2**40, "iat": 0, "jti": "x", "iss": "dtwin-api", "aud": "dtwin"},
            "", algorithm="none")}, id="alg-none"),
        pytest.param(lambda api, uid: {"Authorization": "Bearer " + jwt.encode(
            {"sub": str(uid), "exp": 2**40, "iat": 0, "jti": "x", "iss": "dtwin-api", "aud": "elsewhere",
             "typ": "access"}, api.app.state.settings.jwt_secret.get_secret_value(), algorithm="HS256")},
            id="wrong-audience"),
        pytest.param(lambda api, uid: {"Authorization": "Bearer not.a.jwt"}, id="garbage"),
        pytest.param(lambda api, uid: {"X-API-Key": "dtw_000000000000_nope"}, id="unknown-api-key"),
        pytest.param(lambda api, uid: {"X-API-Key": "plain-garbage"}, id="malformed-api-key"),
    ],
)  # fmt: skip
def test_bad_credentials_are_401(shared_world: Any, make_token: Any) -> None:
    async def scenario() -> None:
        admin = await shared_world.user("root", {"*": Role.admin})
        async with shared_world.serve() as api:
            _unauthorized(await api.client.get("/api/v1/sites", headers=make_token(api, admin)))

    asyncio.run(scenario())


def test_api_key_acts_with_its_users_grants(world: Any) -> None:
    async def scenario() -> None:
        machine = await world.add_user("scada", {"alpha": Role.viewer})
        key, prefix, key_hash = security.new_api_key()
        conn = await world.connect()
        try:
            await repo.insert_api_key(conn, prefix, key_hash, machine, "scada export")
        finally:
            await conn.close()
        async with world.serve() as api:
            c = api.client
            assert (await c.get("/api/v1/sites/alpha/assets", headers={"X-API-Key": key})).status_code == 200
            assert (await c.get("/api/v1/sites/beta/assets", headers={"X-API-Key": key})).status_code == 403
            r = await c.get("/api/v1/sites/alpha/assets", headers={"X-API-Key": key[:-2] + "zz"})
            _unauthorized(r)
        conn = await world.connect()
        try:
            await conn.execute("UPDATE dtwin_api.api_keys SET revoked_at = now()")
        finally:
            await conn.close()
        async with world.serve() as api:
            _unauthorized(await api.client.get("/api/v1/sites/alpha/assets", headers={"X-API-Key": key}))

    asyncio.run(scenario())


def test_disabled_user_token_stops_working(world: Any) -> None:
    async def scenario() -> None:
        uid = await world.add_user("leaver", {"alpha": Role.manager})
        async with world.serve() as api:
            headers = api.auth(uid)
            assert (await api.client.get("/api/v1/sites", headers=headers)).status_code == 200
            conn = await world.connect()
            try:
                await conn.execute("UPDATE dtwin_api.users SET active = false WHERE id = $1", uid)
            finally:
                await conn.close()
            _unauthorized(await api.client.get("/api/v1/sites", headers=headers))

    asyncio.run(scenario())
