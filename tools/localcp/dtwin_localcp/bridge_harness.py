"""Test harness for the bridge end to end: a Site rendered by the operator's renderer, and the bridge process.

Shared by the bridge's integration tests (test files cannot import each other under
pytest's importlib mode). `SiteUnderTest` writes the routing table the operator would
render for the given bindings into a file and creates the site schema in a real
database; `BridgeProcess` runs `python -m dtwin_bridge run` on it as a subprocess with
a fixed replica name, so a restart resumes the broker's persistent session.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from dtwin_core import migrate
from dtwin_core.schema import StorageSpec
from dtwin_localcp import ports
from dtwin_localcp.kopf_process import ROOT
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.render import routing
from dtwin_operator.render.context import BindingView, SiteContext


class SiteUnderTest:
    """A uniquely named Site (so topics, shared group and sessions never meet another test's) and its schema."""

    def __init__(self, pg_dsn: str, broker_port: int, tmp: Path, flush_ms: int = 100, max_replicas: int = 3) -> None:
        self.name = f"t{uuid.uuid4().hex[:8]}"
        self.pg_dsn = pg_dsn
        self.database = pg_dsn.rsplit("/", 1)[1]
        self.dsn_template = pg_dsn.rsplit("/", 1)[0] + "/{database}"
        bindings = tuple(BindingView(n, SensorBindingSpec.model_validate(s)) for n, s in self.bindings())
        spec = SiteSpec.model_validate(
            {
                "mqtt": {"host": "127.0.0.1", "port": broker_port},
                "storage": {"database": self.database},
                "bridge": {"batchSize": 500, "flushIntervalMs": flush_ms, "maxReplicas": max_replicas},
            }
        )
        self.table = routing.table(SiteContext("test", self.name, "uid", spec, (), bindings))
        self.schema = self.table["schema"]
        self.path = tmp / "routing.json"
        self.path.write_text(routing.serialize(self.table))
        asyncio.run(self._create_schema())

    def bindings(self) -> Sequence[tuple[str, Mapping[str, Any]]]:
        """(name, SensorBinding spec) pairs; subclasses say which sensors the Site has."""
        raise NotImplementedError

    async def _create_schema(self) -> None:
        conn = await asyncpg.connect(self.pg_dsn)
        try:
            await migrate.apply(conn, StorageSpec(schema=self.schema))
        finally:
            await conn.close()

    def query(self, sql: str) -> list[Any]:
        """Rows of `sql`, where the word SCHEMA stands for the site schema."""

        async def q() -> list[Any]:
            conn = await asyncpg.connect(self.pg_dsn)
            try:
                return list(await conn.fetch(sql.replace("SCHEMA", self.schema)))
            finally:
                await conn.close()

        return asyncio.run(q())

    def count(self) -> int:
        return int(self.query("SELECT count(*) FROM SCHEMA.telemetry")[0][0])


class BridgeProcess:
    """`python -m dtwin_bridge run` on a SiteUnderTest, logging to `tmp/bridge-<replica>.log`."""

    def __init__(self, site: SiteUnderTest, tmp: Path, replica: str = "r0", env: Mapping[str, str] | None = None):
        self.site, self.replica, self.log = site, replica, tmp / f"bridge-{replica}.log"
        self.metrics_port = ports.free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("services/bridge", "libs/dtwin_core")),
            "DTWIN_BRIDGE_DATABASE_URL": site.dsn_template,
            "DTWIN_BRIDGE_REPLICA": replica,
            "DTWIN_BRIDGE_METRICS_HOST": "127.0.0.1",
            "DTWIN_BRIDGE_LEASE_ENABLED": "false",  # no Site object behind these tests' bridges
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-m", "dtwin_bridge", "run", "--routing", str(self.site.path),
                "--metrics-port", str(self.metrics_port)]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def metric(self, name: str, **labels: str) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        want = {"site": self.site.name, **labels}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == want:
                    return float(sample.value)
        raise AssertionError(f"no sample {name}{want}")

    def tail(self) -> str:
        return "\n--- bridge log ---\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
