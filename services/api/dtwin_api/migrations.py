"""The API's own tables in schema `dtwin_api` of the platform database, as versioned migrations.

Same approach as `dtwin_core.migrate` for site schemas: an ordered list of `Migration`s (append new
ones, never edit an applied one), each statement idempotent, each step committed together with its
`schema_migrations` row under a transaction-scoped advisory lock keyed on the schema name, so two API
replicas starting at once serialise instead of racing. `dtwin_core.migrate.apply` itself is not reused
because it also runs the site schemas' TimescaleDB settings, which have no meaning here.

Tables: users (argon2 hashes), grants (one role per user and site; site '*' is every site),
refresh_tokens (hashes, grouped in rotation families), api_keys (hashes, owned by a user whose grants
they carry), audit_log (every write: who, what, when, before/after).
"""

from __future__ import annotations

import asyncpg

from dtwin_core.schema import Migration, lock_key

SCHEMA = "dtwin_api"
ROLES = ("viewer", "technician", "manager", "engineer", "admin")

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "bootstrap",
        """CREATE SCHEMA IF NOT EXISTS dtwin_api;
CREATE TABLE IF NOT EXISTS dtwin_api.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);""",
    ),
    Migration(
        2,
        "identity",
        f"""CREATE TABLE IF NOT EXISTS dtwin_api.users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username text NOT NULL CHECK (username ~ '^[a-z0-9][a-z0-9._@-]{{0,127}}$'),
    password_hash text,  -- NULL: no password login (a machine user that only has API keys)
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_username ON dtwin_api.users (username);
CREATE TABLE IF NOT EXISTS dtwin_api.grants (
    user_id bigint NOT NULL REFERENCES dtwin_api.users ON DELETE CASCADE,
    site text NOT NULL,  -- a Site name, or '*' for every site
    role text NOT NULL CHECK (role IN ({", ".join(f"'{r}'" for r in ROLES)})),
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, site)
);
CREATE TABLE IF NOT EXISTS dtwin_api.refresh_tokens (
    token_hash bytea PRIMARY KEY,
    family_id uuid NOT NULL,
    user_id bigint NOT NULL REFERENCES dtwin_api.users ON DELETE CASCADE,
    issued_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    rotated_at timestamptz,  -- set when exchanged; a second use is a reuse
    revoked_at timestamptz
);
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON dtwin_api.refresh_tokens (family_id);
CREATE TABLE IF NOT EXISTS dtwin_api.api_keys (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    prefix text NOT NULL UNIQUE,  -- the public part of the key, to find its row
    key_hash bytea NOT NULL,
    user_id bigint NOT NULL REFERENCES dtwin_api.users ON DELETE CASCADE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz,
    revoked_at timestamptz
);""",
    ),
    Migration(
        3,
        "audit",
        """CREATE TABLE IF NOT EXISTS dtwin_api.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor_user_id bigint,  -- no foreign key: the record outlives the user
    actor text NOT NULL,
    action text NOT NULL,
    site text,
    target text NOT NULL,
    before jsonb,
    after jsonb,
    client text
);
CREATE INDEX IF NOT EXISTS audit_log_at ON dtwin_api.audit_log USING brin (at);""",
    ),
)


async def apply(conn: asyncpg.Connection) -> list[int]:
    """Run the missing migrations, each in its own locked transaction. Returns the versions it ran."""
    applied: list[int] = []
    for step in MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key(SCHEMA))
            # A plain MVCC query, not to_regclass(): see dtwin_core.migrate.recorded.
            exists = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables "
                "WHERE schemaname = $1 AND tablename = 'schema_migrations')",
                SCHEMA,
            )
            if exists and await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM dtwin_api.schema_migrations WHERE version = $1)", step.version
            ):
                continue
            await conn.execute(step.sql)
            await conn.execute(
                "INSERT INTO dtwin_api.schema_migrations (version, name) VALUES ($1, $2)", step.version, step.name
            )
            applied.append(step.version)
    return applied
