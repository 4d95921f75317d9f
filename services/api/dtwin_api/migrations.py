"""The API's own tables in schema `dtwin_api` of the platform database, as versioned migrations.

Same approach as `dtwin_core.migrate` for site schemas: an ordered list of `Migration`s (append new
ones, never edit an applied one), each statement idempotent, each step committed together with its
`schema_migrations` row under a transaction-scoped advisory lock keyed on the schema name, so two API
replicas starting at once serialise instead of racing. `dtwin_core.migrate.apply` itself is not reused
because it also runs the site schemas' TimescaleDB settings, which have no meaning here.

Tables: users (argon2 hashes), grants (one role per user and site; site '*' is every site),
refresh_tokens (hashes, grouped in rotation families), api_keys (hashes, owned by a user whose grants
they carry), audit_log (every write: who, what, when, before/after); from version 4 the maintenance tables:
work_orders (+ work_order_alerts), asset_service (last service date per (site, asset)), alert_assignments
and alert_comments (keyed by (site, alert id)); version 5: users.oidc_subject / users.email, the external
OpenID Connect identity a local user is mapped from.

Maintenance data lives here, not in the site schemas: those are built and migrated by the operator
(`dtwin_core.migrate`) and dropped with their Site; the API must not add tables the operator does not
know. Every maintenance row carries its `site`, and every query of it names the site the caller's
`site_access` admitted (`WHERE site = $1`), so the scoping stays in SQL. Alert ids are per-site
(each site has its own `alerts` table), hence the (site, alert id) keys and no foreign key to them.
"""

from __future__ import annotations

import asyncpg

from dtwin_core.schema import Migration, lock_key

SCHEMA = "dtwin_api"
ROLES = ("viewer", "technician", "manager", "engineer", "admin")
PRIORITIES = ("low", "medium", "high", "urgent")
WORK_ORDER_STATES = ("open", "scheduled", "in_progress", "completed", "cancelled")

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
    Migration(
        4,
        "maintenance",
        f"""CREATE TABLE IF NOT EXISTS dtwin_api.work_orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site text NOT NULL,
    asset text NOT NULL,
    title text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    priority text NOT NULL DEFAULT 'medium' CHECK (priority IN ({", ".join(f"'{p}'" for p in PRIORITIES)})),
    state text NOT NULL DEFAULT 'open' CHECK (state IN ({", ".join(f"'{s}'" for s in WORK_ORDER_STATES)})),
    scheduled_for date,
    assignee_user_id bigint REFERENCES dtwin_api.users ON DELETE SET NULL,
    notes text NOT NULL DEFAULT '',
    created_by bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_by bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    completion_notes text
);
CREATE INDEX IF NOT EXISTS work_orders_site_id ON dtwin_api.work_orders (site, id DESC);
CREATE TABLE IF NOT EXISTS dtwin_api.work_order_alerts (
    work_order_id bigint NOT NULL REFERENCES dtwin_api.work_orders ON DELETE CASCADE,
    site text NOT NULL,
    alert_id bigint NOT NULL,  -- an id of the site's own alerts table
    PRIMARY KEY (work_order_id, alert_id)
);
CREATE INDEX IF NOT EXISTS work_order_alerts_alert ON dtwin_api.work_order_alerts (site, alert_id);
CREATE TABLE IF NOT EXISTS dtwin_api.asset_service (
    site text NOT NULL,
    asset text NOT NULL,
    last_service_at timestamptz NOT NULL,
    work_order_id bigint,
    PRIMARY KEY (site, asset)
);
CREATE TABLE IF NOT EXISTS dtwin_api.alert_assignments (
    site text NOT NULL,
    alert_id bigint NOT NULL,
    assignee_user_id bigint NOT NULL REFERENCES dtwin_api.users ON DELETE CASCADE,
    assigned_by bigint NOT NULL,
    assigned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, alert_id)
);
CREATE TABLE IF NOT EXISTS dtwin_api.alert_comments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site text NOT NULL,
    alert_id bigint NOT NULL,
    author_user_id bigint,
    author text NOT NULL,
    body text NOT NULL CHECK (length(body) BETWEEN 1 AND 4000),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_comments_alert ON dtwin_api.alert_comments (site, alert_id, id);""",
    ),
    Migration(
        5,
        "external_identity",
        """ALTER TABLE dtwin_api.users ADD COLUMN IF NOT EXISTS oidc_subject text;
ALTER TABLE dtwin_api.users ADD COLUMN IF NOT EXISTS email text;
CREATE UNIQUE INDEX IF NOT EXISTS users_oidc_subject ON dtwin_api.users (oidc_subject) WHERE oidc_subject IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON dtwin_api.users (email) WHERE email IS NOT NULL;""",
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
