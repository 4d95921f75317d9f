"""Process settings of the API: one pydantic-settings class, read from `DTWIN_API_*` environment variables.

There is no default JWT secret on purpose: a process started without `DTWIN_API_JWT_SECRET` refuses to
start rather than sign tokens anyone could forge. Rate limits use the `limits` notation
(`"600/minute"`, `"10/second;300/hour"`). `cors_origins` is a JSON list (`'["https://portal.example"]'`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dtwin_api.live import check_template


class DatabaseSettings(BaseSettings):
    """What the database commands of the CLI need (they run without a JWT secret)."""

    model_config = SettingsConfigDict(env_prefix="DTWIN_API_")

    database_url: str = "postgresql://dtwin@127.0.0.1:5432/dtwin"


class Settings(DatabaseSettings):
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)
    migrate_on_start: bool = True  # apply the dtwin_api schema migrations in the lifespan (idempotent, locked)

    jwt_secret: SecretStr  # HS256 key; at least 32 bytes
    jwt_issuer: str = "dtwin-api"
    jwt_audience: str = "dtwin"
    access_token_ttl_s: int = Field(default=900, ge=30)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, ge=60)

    # OpenID Connect bearer tokens (off unless an issuer is set): verified against the provider's JWKS, mapped
    # to a local user by `sub` (users.oidc_subject) or `email` (users.email); grants stay local.
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_user_claim: Literal["sub", "email"] = "sub"
    oidc_algorithms: list[str] = ["RS256", "ES256"]
    oidc_jwks_cache_s: int = Field(default=300, ge=1)  # how long fetched keys are trusted before a refetch
    oidc_leeway_s: int = Field(default=30, ge=0, le=300)  # clock skew tolerated on exp/nbf/iat

    # Kubernetes API server (ModelDeployments, readiness): in-cluster config, else `kubeconfig` / $KUBECONFIG.
    kube_enabled: bool = True
    kubeconfig: str | None = None
    kube_timeout_s: float = Field(default=3.0, gt=0)

    cors_origins: list[str] = []
    rate_limit_per_ip: str = "600/minute"  # every request, keyed by client address
    rate_limit_per_user: str = "300/minute"  # authenticated requests, keyed by user
    rate_limit_ws_per_user: str = "30/minute;300/hour"  # WebSocket subscriptions, keyed by user
    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    telemetry_max_points: int = Field(default=50_000, ge=1)  # beyond this a query is refused with 422
    telemetry_max_sensors: int = Field(default=20, ge=1)

    mqtt_enabled: bool = True  # subscribe to the bridge's live events (the WebSocket has no data without it)
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_topic_prefix_template: str = "sites/{site}"  # the Site CR's prefix; `{site}` one whole topic level
    ws_heartbeat_s: float = Field(default=15.0, gt=0)
    ws_subscribe_timeout_s: float = Field(default=10.0, gt=0)  # connect -> subscribe message
    ws_outbox_max_readings: int = Field(default=5000, ge=1)  # per client; beyond it: latest value per sensor
    ws_alert_backlog_max: int = Field(default=1000, ge=1)  # per client; beyond it the client is closed (1013)
    ws_replay_max_rows: int = Field(default=10_000, ge=1)  # resume: newest rows after `since`
    ws_replay_max_age_s: int = Field(default=3600, ge=1)  # resume: never further back than this

    host: str = "0.0.0.0"
    port: int = 8080
    log_level: str = "INFO"

    @field_validator("mqtt_topic_prefix_template")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_template(value)

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        # `none` and HMAC algorithms would let anyone who knows the public JWKS (or nobody) sign tokens.
        bad = [a for a in value if not a.startswith(("RS", "ES", "PS", "Ed"))]
        if bad or not value:
            raise ValueError(f"oidc_algorithms must be asymmetric (RS*/ES*/PS*/EdDSA), got {bad or value}")
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer and not (self.oidc_audience and self.oidc_jwks_url):
            raise ValueError("oidc_issuer needs oidc_audience and oidc_jwks_url")
        if self.oidc_issuer == self.jwt_issuer:
            raise ValueError("oidc_issuer must differ from jwt_issuer (the issuer picks the verifier)")
        return self

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("jwt_secret must be at least 32 bytes (e.g. `openssl rand -hex 32`)")
        return value
