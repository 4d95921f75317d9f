"""pytest fixtures for real PostgreSQL and Mosquitto: `postgres_server`, `pg_dsn`, `mosquitto_server`.

Loaded from the root `conftest.py`. Nothing starts until a test asks for a fixture, so unit-only
runs stay fast; every test that uses one is marked `services` (deselect with `-m "not services"`).
`postgres_server` (session) reuses the server named by `DTWIN_PG_DSN` (e.g. the one `make up`
runs) and never stops it; otherwise it starts a `Postgres` in `/tmp/dtwin-pg-*`. `pg_dsn` gives
each test a fresh database `t_<hex>` and drops it afterwards. `mosquitto_server` (session) is a
`Mosquitto` in `/tmp/dtwin-mqtt-*`; a test may `restart()`, `stop()`/`start()` or `kill()` it but
must leave it running. Run dirs (with their logs) are deleted when no test failed, and their
paths printed in the terminal summary otherwise, like the control plane's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtwin_localcp.mosquitto import Mosquitto, MosquittoError
from dtwin_localcp.postgres import PgServer, Postgres, PostgresError

SERVICE_FIXTURES = frozenset({"postgres_server", "pg_dsn", "mosquitto_server"})
_KEPT_RUN_DIRS = pytest.StashKey[list[Path]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "services: needs real PostgreSQL / Mosquitto processes (started on first use)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


def _keep(config: pytest.Config, run_dir: Path) -> None:
    config.stash.setdefault(_KEPT_RUN_DIRS, []).append(run_dir)


def _finish(request: pytest.FixtureRequest, run_dir: Path) -> None:
    """Keep the run dir for inspection if anything failed, else delete it."""
    if request.session.testsfailed:
        _keep(request.config, run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PgServer]:
    """A PostgreSQL server answering queries: `DTWIN_PG_DSN`'s, or a `Postgres` started for this session."""
    dsn = os.environ.get("DTWIN_PG_DSN")
    if dsn:
        live = PgServer.from_dsn(dsn)
        if not live.is_ready():
            pytest.fail(f"DTWIN_PG_DSN={dsn} does not answer queries", pytrace=False)
        yield live
        return
    run_dir = Path(tempfile.mkdtemp(prefix="dtwin-pg-", dir="/tmp"))
    server = Postgres(run_dir)
    try:
        server.start()
    except PostgresError as err:
        _keep(request.config, run_dir)
        pytest.fail(f"PostgreSQL did not start (logs in {run_dir / 'logs'}):\n{err}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        _finish(request, run_dir)


@pytest.fixture
def pg_dsn(postgres_server: PgServer) -> Iterator[str]:
    """DSN of a fresh, empty database for this test; dropped afterwards (its sessions terminated)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    postgres_server.create_database(name)
    try:
        yield postgres_server.dsn(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def mosquitto_server(request: pytest.FixtureRequest) -> Iterator[Mosquitto]:
    """A running Mosquitto broker on 127.0.0.1 (`.host`, `.port`), started for this session."""
    run_dir = Path(tempfile.mkdtemp(prefix="dtwin-mqtt-", dir="/tmp"))
    try:
        broker = Mosquitto(run_dir)
        broker.start()
    except MosquittoError as err:
        _keep(request.config, run_dir)
        pytest.fail(f"Mosquitto did not start (logs in {run_dir / 'logs'}):\n{err}", pytrace=False)
    try:
        yield broker
    finally:
        broker.stop()
        _finish(request, run_dir)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for run_dir in config.stash.get(_KEPT_RUN_DIRS, []):
        terminalreporter.write_line(f"dtwin_localcp: service run dir kept for inspection: {run_dir} (logs/)")
