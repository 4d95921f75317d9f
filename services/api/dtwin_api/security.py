"""Credentials as pure functions: argon2 password hashes, HS256 access tokens, opaque refresh tokens and API keys.

Access tokens carry only who the caller is (`sub`) and when they expire: roles are read from the database on
every request, so revoking a grant takes effect at once. Refresh tokens and API keys are 32 random bytes;
only their SHA-256 is stored (a fast hash is right for high-entropy secrets; argon2 is for passwords).
An API key reads `dtw_<prefix>_<secret>`: the prefix finds the row, the secret is compared in constant time.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALGORITHM = "HS256"
_hasher = PasswordHasher()  # argon2id with the library's current defaults (RFC 9106 low-memory profile)


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this when the user does not exist costs the same time as a real check."""
    return _hasher.hash(secrets.token_urlsafe(16))


class InvalidTokenError(Exception):
    """The token is malformed, tampered with, expired or for another issuer/audience."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class TokenSigner:
    secret: str
    issuer: str
    audience: str
    ttl: timedelta

    def issue(self, subject: str, now: datetime) -> tuple[str, datetime]:
        expires = now + self.ttl
        claims = {
            "sub": subject,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex,
            "iss": self.issuer,
            "aud": self.audience,
            "typ": "access",
        }
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM), expires

    def verify(self, token: str) -> str:
        """The token's subject; raises InvalidTokenError for anything not issued by us and still valid."""
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],  # never taken from the token header
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["sub", "exp", "iat", "jti", "iss", "aud"]},
            )
        except jwt.PyJWTError as err:
            raise InvalidTokenError(str(err)) from err
        if claims.get("typ") != "access" or not isinstance(claims["sub"], str):
            raise InvalidTokenError("not an access token")
        return claims["sub"]


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_api_key() -> tuple[str, str, bytes]:
    """(full key shown once, prefix stored in clear, hash of the secret part)."""
    prefix, secret = secrets.token_hex(6), new_secret()
    return f"dtw_{prefix}_{secret}", prefix, digest(secret)


def split_api_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "dtw" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def same_digest(stored: bytes, secret: str) -> bool:
    return hmac.compare_digest(stored, digest(secret))


def utcnow() -> datetime:
    return datetime.now(UTC)
