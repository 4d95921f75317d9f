"""Fixtures of the API tests: two seeded sites (`alpha`, `beta`) in a fresh database, users per role, and
the real app served in-process over httpx's ASGI transport (lifespan included, real PostgreSQL).

Beta's alert ids start at 1001, so an alpha user asking for `/sites/alpha/alerts/1001` names an alert
that exists, but at another site.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml
from fastapi import FastAPI
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from dtwin_api import migrations, repo
from dtwin_api.authz import Role
from dtwin_api.main import create_app
from dtwin_api.settings import Settings
from dtwin_core import migrate
from dtwin_core.schema import StorageSpec
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.postgres import PgServer

SITES = ("alpha", "beta")
CRD = Path(__file__).resolve().parents[3] / "crds" / "modeldeployments.dtwin.io.yaml"
SECRET = "test-secret-" + "x" * 32
NOW = datetime.now(UTC).replace(microsecond=0)
CLAIMS = """CREATE TABLE IF NOT EXISTS public.dtwin_schema_owners (
  schema_name text PRIMARY KEY, namespace text NOT NULL, site text NOT NULL, claimed_at timestamptz DEFAULT now())"""


def settings_for(dsn: str, **overrides: Any) -> Settings:
    """Generous rate limits unless a test asks otherwise."""
    values: dict[str, Any] = {
        "database_url": dsn,
        "jwt_secret": SECRET,
        "db_pool_min": 1,
        "db_pool_max": 4,
        "rate_limit_per_ip": "10000/minute",
        "rate_limit_per_user": "10000/minute",
        "mqtt_enabled": False,  # the WebSocket tests turn it on with their broker
        "kube_enabled": False,  # the cluster tests turn it on with the local control plane's kubeconfig
    } | overrides
    return Settings(**values)


@dataclass
class Api:
    client: httpx.AsyncClient
    app: FastAPI

    def auth(self, user_id: int, now: datetime | None = None) -> dict[str, str]:
        """Headers with an access token for the user, as /auth/token would issue it (at `now`)."""
        token, _ = self.app.state.signer.issue(str(user_id), now or datetime.now(UTC))
        return {"Authorization": f"Bearer {token}"}


class Problems(list[str]):
    """What an authorization matrix found wrong, collected so one assertion shows all of it."""

    def expect(self, what: str, status: int, wanted: int, body: Any) -> None:
        if status != wanted:
            self.append(f"{what}: {status} != {wanted} ({body})")
        elif status >= 400 and not (isinstance(body, dict) and "error" in body and "message" in body):
            self.append(f"{what}: error without JSON body: {body}")


@dataclass
class World:
    """The seeded database; tests get everything through it (importlib mode: no importing conftest)."""

    dsn: str
    users: dict[str, int] = field(default_factory=dict)  # username -> id

    sites: tuple[str, ...] = SITES
    now: datetime = NOW

    @staticmethod
    def problems() -> Problems:
        return Problems()

    @asynccontextmanager
    async def serve(self, **overrides: Any) -> AsyncIterator[Api]:
        """The real app on this database (lifespan run), with an httpx client over ASGI."""
        app = create_app(settings_for(self.dsn, **overrides))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
                yield Api(client, app)

    async def connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.dsn)
        await repo.init_connection(conn)
        return conn

    async def user(self, name: str, grants: dict[str, Role]) -> int:
        """The user of that name, created on first use (grants as given then)."""
        return self.users[name] if name in self.users else await self.add_user(name, grants)

    async def add_user(self, name: str, grants: dict[str, Role], password_hash: str | None = None) -> int:
        conn = await self.connect()
        try:
            user_id = await repo.create_user(conn, name, password_hash)
            for site, role in grants.items():
                await repo.set_grant(conn, user_id, site, role)
        finally:
            await conn.close()
        self.users[name] = user_id
        return user_id

    async def new_alert(self, site: str, **values: Any) -> int:
        conn = await self.connect()
        try:
            row = {"asset": "ahu-1", "sensor": "ahu-1-temp", "kind": "threshold", "severity": "warning"} | values
            return int(
                await conn.fetchval(
                    f"INSERT INTO site_{site}.alerts (asset, sensor, kind, severity, message, dedup_key) "
                    "VALUES ($1, $2, $3, $4, $5, gen_random_uuid()::text) RETURNING id",
                    row["asset"],
                    row["sensor"],
                    row["kind"],
                    row["severity"],
                    f"{site} alert",
                )
            )
        finally:
            await conn.close()


async def seed(dsn: str) -> World:
    """Site schemas as the operator builds them, claims, registry rows, alerts and an hour of readings."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(CLAIMS)
        for site in SITES:
            schema = f"site_{site}"
            spec = StorageSpec(schema=schema)
            await migrate.apply(conn, spec)
            await conn.execute(
                "INSERT INTO public.dtwin_schema_owners (schema_name, namespace, site) VALUES ($1, 'dtwin-demo', $2)",
                schema,
                site,
            )
            await conn.execute(
                f"INSERT INTO {schema}.assets (name, kind, display_name) VALUES ('ahu-1', 'ahu', $1), ('pump-{site}', "
                "'pump', NULL)",
                f"{site} AHU",
            )
            if site == "beta":
                await conn.execute("SELECT setval('site_beta.alerts_id_seq', 1000)")
            await conn.execute(
                f"INSERT INTO {schema}.alerts (asset, sensor, kind, severity, message, dedup_key) VALUES "
                f"('ahu-1', 'ahu-1-temp', 'threshold', 'critical', '{site} hot', 'k1'), "
                f"('pump-{site}', NULL, 'offline', 'warning', '{site} offline', 'k2')"
            )
            await conn.execute(
                f"INSERT INTO {schema}.telemetry (sensor, ts, value) "
                "SELECT 'ahu-1-temp', $1::timestamptz - make_interval(secs => g * 10), g "
                "FROM generate_series(1, 360) g",
                NOW,
            )
            await migrate.maintain(conn, spec, NOW)  # rollups (both backends)
        await migrations.apply(conn)
    finally:
        await conn.close()
    return World(dsn)


@pytest.fixture
def world(pg_dsn: str) -> World:
    """A fresh seeded database for a test that writes."""
    return asyncio.run(seed(pg_dsn))


@pytest.fixture(scope="session")
def shared_world(postgres_server: PgServer) -> Iterator[World]:
    """One seeded database for read-only tests (users via `World.user`, which reuses them)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    try:
        yield asyncio.run(seed(postgres_server.dsn(name)))
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def model_crd(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """An API client with the ModelDeployment CRD installed and Established."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    body = yaml.safe_load(CRD.read_text())
    extensions = client.ApiextensionsV1Api(api)
    try:
        extensions.create_custom_resource_definition(body)
    except ApiException as err:
        if err.status != 409:  # already there (another module of the session)
            raise

    def established() -> bool:
        crd = extensions.read_custom_resource_definition(body["metadata"]["name"])
        conditions = (crd.status.conditions if crd.status else None) or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)

    wait_until(established, timeout=60, what="the ModelDeployment CRD to be Established")
    try:
        yield api
    finally:
        api.close()
