"""Creates and maintains each Site's schema through dtwin_core.migrate, one asyncpg pool per database.

A Site names a database (`spec.storage.database`); the operator's settings give
the server (`DTWIN_OPERATOR_DATABASE_URL`, with `{database}` where the name goes).
The database is created when missing. A schema is claimed by the first Site
(namespace/name) that uses it, so two Sites called `hq` in different namespaces
cannot silently share `site_hq` in the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from dtwin_core import migrate
from dtwin_core.schema import StorageSpec, ident

CLAIMS = """CREATE TABLE IF NOT EXISTS public.dtwin_schema_owners (
  schema_name text PRIMARY KEY, namespace text NOT NULL, site text NOT NULL, claimed_at timestamptz DEFAULT now())"""


class SchemaConflictError(Exception):
    """The schema already belongs to another Site."""


@dataclass(frozen=True)
class StorageState:
    backend: str
    schema: str
    version: int
    applied: tuple[int, ...]
    assets: int
    sensors: int


class Storage:
    def __init__(self, url_template: str) -> None:
        self.url_template = url_template
        self._pools: dict[str, asyncpg.Pool] = {}
        self._lock = asyncio.Lock()

    def url(self, database: str) -> str:
        return self.url_template.replace("{database}", database)

    async def pool(self, database: str) -> asyncpg.Pool:
        """The database's pool, created (and the database with it) on first use; shared by every caller."""
        async with self._lock:
            if database not in self._pools:
                await self._ensure_database(database)
                self._pools[database] = await asyncpg.create_pool(
                    self.url(database), min_size=0, max_size=4, timeout=10, command_timeout=120
                )
            return self._pools[database]

    async def _ensure_database(self, database: str) -> None:
        conn = await asyncpg.connect(self.url("postgres"), timeout=10)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # created concurrently
                    await conn.execute(f"CREATE DATABASE {ident(database)}")
        finally:
            await conn.close()

    async def reconcile(
        self,
        database: str,
        spec: StorageSpec,
        namespace: str,
        site: str,
        assets: list[dict[str, object]],
        sensors: list[dict[str, object]],
    ) -> StorageState:
        """Claim, migrate, sync the registry; on first creation also lay out partitions and rollups."""
        pool = await self.pool(database)
        async with pool.acquire() as conn:
            await self._claim(conn, spec.schema, namespace, site)
            result = await migrate.apply(conn, spec)
            await migrate.sync_registry(conn, spec.schema, assets, sensors)
            if result.applied:
                await migrate.maintain(conn, spec, datetime.now(UTC))
        return StorageState(
            result.backend, spec.schema, result.current_version, tuple(result.applied), len(assets), len(sensors)
        )

    async def _claim(self, conn: asyncpg.Connection, schema: str, namespace: str, site: str) -> None:
        await conn.execute(CLAIMS)
        await conn.execute(
            "INSERT INTO public.dtwin_schema_owners (schema_name, namespace, site) VALUES ($1, $2, $3) "
            "ON CONFLICT (schema_name) DO NOTHING",
            schema,
            namespace,
            site,
        )
        owner = await conn.fetchrow(
            "SELECT namespace, site FROM public.dtwin_schema_owners WHERE schema_name = $1", schema
        )
        if owner is not None and (owner["namespace"], owner["site"]) != (namespace, site):
            raise SchemaConflictError(f"schema {schema} already belongs to Site {owner['namespace']}/{owner['site']}")

    async def maintain(self, database: str, spec: StorageSpec) -> migrate.MaintainResult:
        pool = await self.pool(database)
        async with pool.acquire() as conn:
            return await migrate.maintain(conn, spec, datetime.now(UTC))

    async def drop(self, database: str, schema: str, namespace: str, site: str) -> bool:
        """deletionPolicy Delete: drop the schema (only if this Site owns it) and release the claim.

        With Retain nothing is called: the claim stays, so only a Site of the same namespace and
        name (re-created later) gets that data back, never another tenant's Site of the same name."""
        pool = await self.pool(database)
        async with pool.acquire() as conn:
            await self._claim(conn, schema, namespace, site)
            existed = await migrate.drop(conn, schema)
            await conn.execute("DELETE FROM public.dtwin_schema_owners WHERE schema_name = $1", schema)
        return existed

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
