"""The command line against real PostgreSQL: the first admin gets a random password printed once, a second
bootstrap refuses, the printed password logs in; users and API keys from the CLI work over HTTP."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from typer.testing import CliRunner

from dtwin_api import migrations
from dtwin_api.cli import app

runner = CliRunner()


def test_bootstrap_admin_once_with_random_password(world: Any) -> None:
    first = runner.invoke(app, ["bootstrap-admin", "--database-url", world.dsn])
    assert first.exit_code == 0, first.output
    password = re.search(r"password \(shown once\): (\S+)", first.output)
    assert password and len(password.group(1)) >= 20
    second = runner.invoke(app, ["bootstrap-admin", "--username", "other", "--database-url", world.dsn])
    assert second.exit_code == 1 and "already exists" in second.output
    assert password.group(1) not in second.output

    async def scenario() -> None:
        async with world.serve() as api:
            form = {"username": "admin", "password": password.group(1)}
            token = (await api.client.post("/api/v1/auth/token", data=form)).json()["access_token"]
            r = await api.client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"})
            assert [s["name"] for s in r.json()] == ["alpha", "beta"]
        conn = await world.connect()
        try:
            assert await migrations.apply(conn) == []  # idempotent: already current
            hashes = await conn.fetch("SELECT password_hash FROM dtwin_api.users")
            assert [h["password_hash"][:9] for h in hashes] == ["$argon2id"]
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_add_user_and_api_key(world: Any) -> None:
    made = runner.invoke(app, ["add-user", "scada", "--machine", "--grant", "beta=viewer", "--database-url", world.dsn])
    assert made.exit_code == 0 and "password" not in made.output, made.output
    bad = runner.invoke(app, ["add-user", "x", "--grant", "beta=king", "--database-url", world.dsn])
    assert bad.exit_code != 0
    keyed = runner.invoke(app, ["create-api-key", "scada", "export", "--database-url", world.dsn])
    assert keyed.exit_code == 0, keyed.output
    key = keyed.output.rsplit(" ", 1)[-1].strip()

    async def scenario() -> None:
        async with world.serve() as api:
            assert (await api.client.get("/api/v1/sites/beta/alerts", headers={"X-API-Key": key})).status_code == 200
            assert (await api.client.get("/api/v1/sites/alpha/alerts", headers={"X-API-Key": key})).status_code == 403

    asyncio.run(scenario())
