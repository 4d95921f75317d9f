"""The API's command line: `serve`, `migrate`, `bootstrap-admin`, `add-user`, `create-api-key`.

Generated secrets (passwords, API keys) are printed once on stdout and stored only as hashes; nothing
has a fixed default. The database commands need only `DTWIN_API_DATABASE_URL` (or `--database-url`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import asyncpg
import typer
from pydantic import ValidationError

from dtwin_api import migrations, repo, security
from dtwin_api.authz import ALL_SITES, Role
from dtwin_api.settings import DatabaseSettings, Settings
from dtwin_core import logs

app = typer.Typer(add_completion=False, help="dtwin API gateway.")
T = TypeVar("T")
DatabaseUrl = Annotated[str | None, typer.Option(help="PostgreSQL URL (default: $DTWIN_API_DATABASE_URL)")]


def _with_db(url: str | None, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await asyncpg.connect(url or DatabaseSettings().database_url)
        await repo.init_connection(conn)
        try:
            await migrations.apply(conn)
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def configure_logging(level: str) -> None:
    logs.configure(level)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Run the API with uvicorn (settings from DTWIN_API_* environment variables)."""
    import uvicorn

    from dtwin_api.main import create_app
    from dtwin_core import tracing

    try:
        settings = Settings()  # type: ignore[call-arg]  # jwt_secret comes from the environment
    except ValidationError as err:
        # Name the variables only: pydantic's message would echo the values (the database URL's password).
        wrong = ", ".join("DTWIN_API_" + str(e["loc"][0]).upper() + f" ({e['msg']})" for e in err.errors())
        typer.echo(f"invalid settings: {wrong}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    tracing.setup("dtwin-api")  # OTEL_* environment; a no-op unless OTEL_TRACES_EXPORTER is set
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        access_log=False,  # RequestMetrics writes one structured line per request
        proxy_headers=True,  # trusts X-Forwarded-For only from --forwarded-allow-ips (default 127.0.0.1)
    )


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Create or upgrade the dtwin_api schema."""
    _with_db(database_url, lambda conn: asyncio.sleep(0))
    typer.echo("dtwin_api schema is current")


@app.command("bootstrap-admin")
def bootstrap_admin(
    username: Annotated[str, typer.Option(help="name of the first admin")] = "admin",
    if_missing: Annotated[bool, typer.Option(help="exit 0 (not 1) when an admin exists: install jobs")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create the first global admin with a random password, printed once. Refuses if an admin exists."""

    async def work(conn: asyncpg.Connection) -> str | None:
        async with conn.transaction():
            # One bootstrap at a time, even from two install jobs.
            await conn.execute("LOCK TABLE dtwin_api.grants IN SHARE ROW EXCLUSIVE MODE")
            if await repo.admin_exists(conn):
                return None
            password = security.generate_password()
            user_id = await repo.create_user(conn, username, security.hash_password(password))
            await repo.set_grant(conn, user_id, ALL_SITES, Role.admin)
            await repo.audit(
                conn, actor_user_id=None, actor="cli", action="user.bootstrap_admin", target=f"user/{username}"
            )
            return password

    password = _with_db(database_url, work)
    if password is None:
        typer.echo("an admin already exists; nothing done", err=True)
        raise typer.Exit(0 if if_missing else 1)
    typer.echo(f"admin user: {username}\npassword (shown once): {password}")


@app.command("add-user")
def add_user(
    username: str,
    grant: Annotated[list[str], typer.Option(help="SITE=ROLE, repeatable; SITE '*' is every site")] = [],  # noqa: B006
    machine: Annotated[bool, typer.Option(help="no password: the user only authenticates with API keys")] = False,
    oidc_subject: Annotated[str | None, typer.Option(help="the OpenID Connect `sub` that logs in as this user")] = None,
    email: Annotated[str | None, typer.Option(help="email matched when DTWIN_API_OIDC_USER_CLAIM=email")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user with per-site roles; prints a random password once (unless --machine)."""
    try:
        grants = [(site, Role[role]) for site, _, role in (g.partition("=") for g in grant)]
    except KeyError as err:
        raise typer.BadParameter(f"unknown role {err}; roles: {', '.join(r.name for r in Role)}") from err
    password = None if machine else security.generate_password()

    async def work(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            user_id = await repo.create_user(conn, username, security.hash_password(password) if password else None)
            if oidc_subject or email:
                await repo.set_identity(conn, user_id, oidc_subject, email)
            for site, role in grants:
                await repo.set_grant(conn, user_id, site, role)
            await repo.audit(
                conn,
                actor_user_id=None,
                actor="cli",
                action="user.create",
                target=f"user/{username}",
                after={"grants": {s: r.name for s, r in grants}, "oidc_subject": oidc_subject, "email": email},
            )

    _with_db(database_url, work)
    typer.echo(f"user: {username}" + (f"\npassword (shown once): {password}" if password else ""))


@app.command("create-api-key")
def create_api_key(username: str, name: str, database_url: DatabaseUrl = None) -> None:
    """Create an API key acting as USERNAME (with that user's grants); prints the key once."""
    key, prefix, key_hash = security.new_api_key()

    async def work(conn: asyncpg.Connection) -> bool:
        async with conn.transaction():
            user_id = await repo.user_id_by_name(conn, username)
            if user_id is None:
                return False
            await repo.insert_api_key(conn, prefix, key_hash, user_id, name)
            await repo.audit(conn, actor_user_id=None, actor="cli", action="api_key.create", target=f"api_key/{prefix}")
            return True

    if not _with_db(database_url, work):
        typer.echo(f"no user {username!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"API key (shown once): {key}")
