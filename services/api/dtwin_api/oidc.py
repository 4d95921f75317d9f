"""Bearer tokens from an external OpenID Connect provider, verified against its JWKS with PyJWT's `PyJWKClient`.

Which verifier a bearer token goes to is decided by its (unverified) `iss` claim: the provider's issuer goes
here, anything else to our own HS256 signer, so a token can never pick a weaker check. Here the algorithm list
is fixed by the settings (asymmetric only; `none` and HMAC are refused before any key is looked up), the key is
the JWKS key named by the header's `kid` (an unknown kid triggers at most one refetch per cooldown, then 401),
and `iss`, `aud`, `exp` (with a small leeway), `iat` and `sub` are required. Fetched keys are cached
(`cache_keys`, and the whole set for `oidc_jwks_cache_s`).

The identity maps to a local user by `sub` (users.oidc_subject) or by `email` (users.email, only when the
provider says `email_verified`); the user's grants stay in the local table. Verification may fetch the JWKS
over HTTP, so callers run `verify` in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWKClient

from dtwin_api.settings import Settings


class OidcUnavailableError(Exception):
    """The provider's JWKS could not be fetched."""


@dataclass(frozen=True)
class Identity:
    claim: str  # "sub" or "email": the users column it is matched against
    value: str


def unverified_issuer(token: str) -> str | None:
    """The `iss` claim read without verification, only to choose the verifier (never trusted beyond that)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


class OidcVerifier:
    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks_url
        self.issuer, self.audience = settings.oidc_issuer, settings.oidc_audience
        self.algorithms = list(settings.oidc_algorithms)
        self.claim = settings.oidc_user_claim
        self.leeway = settings.oidc_leeway_s
        self.jwks = PyJWKClient(settings.oidc_jwks_url, cache_keys=True, lifespan=settings.oidc_jwks_cache_s, timeout=5)

    def verify(self, token: str) -> Identity:
        """The caller's identity; raises jwt.PyJWTError (→ 401) or OidcUnavailableError (→ 503)."""
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in self.algorithms:  # checked before the kid is used to reach the network
            raise jwt.InvalidAlgorithmError(f"algorithm {header.get('alg')!r} is not accepted")
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as err:
            raise OidcUnavailableError(str(err)) from err
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=self.algorithms,
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        if self.claim == "email":
            email = claims.get("email")
            if not isinstance(email, str) or claims.get("email_verified") is not True:
                raise jwt.MissingRequiredClaimError("email (verified)")
            return Identity("email", email.lower())
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub:
            raise jwt.InvalidTokenError("sub must be a non-empty string")
        return Identity("sub", sub)
