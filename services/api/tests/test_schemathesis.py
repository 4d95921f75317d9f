"""schemathesis against the app's own OpenAPI document (issue 5): no 5xx, every status code documented, every
response body conforming to its schema.

The real app (conftest's `World.serve`: lifespan, pool, migrations) on a fresh seeded database and the local
control plane (ModelDeployment CRD installed, so the models routes reach the API server), served over HTTP
by uvicorn on a free loopback port in a thread whose event loop also ran the lifespan (the asyncpg pool belongs to
that loop). The schema is loaded from `/openapi.json`, so routes added later are fuzzed without touching this file.
Two principals: a global admin (every route reaches its handler, writes included) and a viewer of `alpha` (403s
and the read routes). For a route with a `{site}` path parameter, about half of the cases use the seeded site
`alpha` instead of a generated name, so handlers get past authorization with fuzzed query/body values.

Bounded for CI: derandomized (fixed seed per test), `MAX_EXAMPLES` cases per operation and principal, no
shrinking, no example database; well under a minute. A failure lists every operation that failed, with the case's
curl reproduction (schemathesis prints it).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from dtwin_api.authz import Role

MAX_EXAMPLES = 20
SEEDED_SITE = "alpha"
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})
# No exclusions: every route declares its error answers (`errors.ERROR_RESPONSES`), so an undocumented status
# code or a body that does not match its declared schema fails.
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _served(world: Any, kubeconfig: Path) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    """Base URL of the app served by uvicorn, and auth headers per principal."""
    port = _free_port()
    ready = threading.Event()
    out: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    async def main() -> None:
        admin = await world.user("schema-admin", {"*": Role.admin})
        viewer = await world.user("schema-viewer", {SEEDED_SITE: Role.viewer})
        async with world.serve(kube_enabled=True, kubeconfig=str(kubeconfig)) as api:
            out["headers"] = {"admin": api.auth(admin), "viewer": api.auth(viewer)}
            server = uvicorn.Server(uvicorn.Config(api.app, host="127.0.0.1", port=port, lifespan="off",
                                                   log_level="warning", ws="none"))  # fmt: skip
            out["server"] = server
            task = asyncio.create_task(server.serve())
            async with asyncio.timeout(30):  # a deadline: uvicorn offers no event for "started"
                while not server.started and not task.done():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            ready.set()
            await task

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as e:  # surfaced to the test below
            out["error"] = e
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="schemathesis-app", daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "app did not start"
        if "error" in out:
            raise out["error"]
        yield f"http://127.0.0.1:{port}", out["headers"]
    finally:
        if "server" in out:
            out["server"].should_exit = True
        thread.join(30)
        loop.close()


def _fuzz(base_url: str, headers: dict[str, str]) -> dict[str, str]:
    """Every operation of the served OpenAPI document; returns {operation: failure} (empty when all pass)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(case=operation.as_strategy(), seeded=st.booleans())
        def check(case: Any, seeded: bool) -> None:
            # The document declares the bearer and API-key schemes, so cases carry generated credentials; keep
            # only the principal's (an invalid X-API-Key alone would make every case a 401).
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in CREDENTIAL_HEADERS}
            if seeded and "site" in {p.name for p in case.operation.path_parameters}:
                case.path_parameters = {**(case.path_parameters or {}), "site": SEEDED_SITE}
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS, timeout=30)

        try:
            check()
        except (Exception, BaseExceptionGroup) as e:  # one operation's failure must not hide the others'
            failures[operation.label] = f"{type(e).__name__}: {e}"[:3000]
    return failures


@pytest.mark.timeout(240)
def test_openapi_conformance(world: Any, model_crd: Any, kubeconfig: Path) -> None:
    with _served(world, kubeconfig) as (base_url, headers):
        failures = {f"[{who}] {op}": f for who, h in headers.items() for op, f in _fuzz(base_url, h).items()}
    assert not failures, "\n\n".join(f"{op}\n{f}" for op, f in failures.items())
