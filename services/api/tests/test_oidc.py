"""OpenID Connect bearer tokens: a real JWKS served over HTTP by a tiny local server (RSA key made with
`cryptography`), the real app and PostgreSQL. Valid tokens map to local users by `sub` or verified email and
carry the local grants; wrong issuer / audience, expired, unknown kid, `alg: none`, HMAC with the public key,
a foreign key under a known kid, and unmapped identities are 401; an unreachable JWKS is 503. Keys are cached.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from dtwin_api import repo
from dtwin_api.authz import Role

ISSUER, AUDIENCE, KID = "https://idp.example/realms/dtwin", "dtwin-portal", "key-1"


class Jwks:
    """A JWKS endpoint on a free loopback port; counts the fetches."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.body, self.fetches = json.dumps({"keys": keys}).encode(), 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks(key: rsa.RSAPrivateKey) -> Iterator[Jwks]:
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": KID, "use": "sig", "alg": "RS256"}
    served = Jwks([public])
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.server.shutdown()
        served.server.server_close()


def _token(key: Any, alg: str = "RS256", kid: str | None = KID, **claims: Any) -> str:
    now = datetime.now(UTC)
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "idp-user-1", "iat": now, "exp": now + timedelta(minutes=5)}
    return jwt.encode(body | claims, key, algorithm=alg, headers={"kid": kid} if kid else None)


def _oidc(url: str, **extra: Any) -> dict[str, Any]:
    return {"oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": url} | extra


def test_oidc_tokens(world: Any, jwks: Jwks, key: rsa.RSAPrivateKey) -> None:
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    past = datetime.now(UTC) - timedelta(hours=1)

    async def scenario() -> None:
        alice = await world.add_user("alice", {"alpha": Role.manager})
        await world.add_user("bob", {"beta": Role.viewer})
        conn = await world.connect()
        try:
            await repo.set_identity(conn, alice, "idp-user-1", "Alice@Example.org")
            await repo.set_identity(conn, world.users["bob"], "idp-user-2", None)
        finally:
            await conn.close()
        async with world.serve(**_oidc(jwks.url)) as api:
            c = api.client

            async def sites(token: str) -> Any:
                return await c.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"})

            for _ in range(3):
                r = await sites(_token(key))
                assert r.status_code == 200, r.text
                assert [(s["name"], s["role"]) for s in r.json()] == [("alpha", "manager")]
            assert jwks.fetches == 1  # the key set is cached
            r = await c.get("/api/v1/sites/beta/assets", headers={"Authorization": f"Bearer {_token(key)}"})
            assert r.status_code == 403  # grants are the local ones
            r = await sites(_token(key, sub="idp-user-2"))
            assert [s["name"] for s in r.json()] == ["beta"]
            # Our own HS256 tokens keep working next to the provider's.
            assert (await c.get("/api/v1/sites", headers=api.auth(alice))).status_code == 200

            refused = {
                "wrong issuer": _token(key, iss="https://evil.example"),
                "wrong audience": _token(key, aud="someone-else"),
                "expired": _token(key, iat=past - timedelta(minutes=5), exp=past),
                "unknown kid": _token(key, kid="key-2"),
                "no kid": _token(key, kid=None),
                "alg none": jwt.encode(
                    {"iss": ISSUER, "aud": AUDIENCE, "sub": "idp-user-1", "exp": 4102444800, "iat": 1700000000},
                    None,
                    algorithm="none",
                    headers={"kid": KID},
                ),
                "HS256 with the public key": _hmac_with(public_pem),
                "another key under a known kid": _token(other_key),
                "unmapped sub": _token(key, sub="nobody"),
                "no sub": _token(key, sub=None),
                "garbage": "not.a.jwt",
            }
            for what, token in refused.items():
                r = await sites(token)
                assert r.status_code == 401, (what, r.status_code, r.text)
                assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer", what

    asyncio.run(scenario())


def _hmac_with(secret: bytes) -> str:
    """The classic algorithm-confusion forgery: HS256 keyed with the provider's public key (PyJWT refuses a PEM
    as an HMAC key, so the signature is made by hand)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}).encode())
    now = int(datetime.now(UTC).timestamp())
    claims = b64(
        json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "idp-user-1", "iat": now, "exp": now + 300}).encode()
    )
    signature = hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def test_oidc_email_mapping_and_unreachable_jwks(world: Any, jwks: Jwks, key: rsa.RSAPrivateKey) -> None:
    async def scenario() -> None:
        alice = await world.add_user("alice", {"alpha": Role.viewer})
        conn = await world.connect()
        try:
            await repo.set_identity(conn, alice, None, "alice@example.org")
        finally:
            await conn.close()
        async with world.serve(**_oidc(jwks.url, oidc_user_claim="email")) as api:
            c = api.client
            good = _token(key, sub="whatever", email="Alice@example.org", email_verified=True)
            r = await c.get("/api/v1/sites", headers={"Authorization": f"Bearer {good}"})
            assert r.status_code == 200 and [s["name"] for s in r.json()] == ["alpha"]
            unverified = _token(key, sub="whatever", email="alice@example.org", email_verified=False)
            r = await c.get("/api/v1/sites", headers={"Authorization": f"Bearer {unverified}"})
            assert r.status_code == 401
        dead = jwks.url.replace(str(jwks.server.server_address[1]), "1")
        async with world.serve(**_oidc(dead)) as api:
            r = await api.client.get("/api/v1/sites", headers={"Authorization": f"Bearer {_token(key)}"})
            assert r.status_code == 503 and r.json()["error"] == "oidc_unavailable", r.text

    asyncio.run(scenario())


def test_oidc_settings_refuse_symmetric_algorithms() -> None:
    from pydantic import ValidationError

    from dtwin_api.settings import Settings

    for algorithms in (["none"], ["HS256"], []):
        with pytest.raises(ValidationError):
            Settings(jwt_secret="x" * 32, oidc_algorithms=algorithms)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(jwt_secret="x" * 32, oidc_issuer=ISSUER)  # type: ignore[call-arg]  # no audience / JWKS URL
