"""A Site under benchmark: the routing table the operator would render, its schema, and what got stored.

Made as `dtwin_localcp.bridge_harness.SiteUnderTest` makes one: the operator's own renderer
(`render.routing.table`) turns SensorBindings into `routing.json`, and `dtwin_core.migrate` builds the schema;
then `migrate.maintain` creates the partitions around now, as the operator's Site timer would, so readings
land in a real partition. Each case gets a Site (and so an empty telemetry table) of its own. The queries read
commit times through `pg_xact_commit_timestamp(xmin)` (needs `track_commit_timestamp`, see `stack`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import psycopg

from dtwin_bench import workload
from dtwin_bridge.site import SiteConfig
from dtwin_core import migrate
from dtwin_core.schema import StorageSpec
from dtwin_operator.api.sensorbinding import SensorBindingSpec
from dtwin_operator.api.site import SiteSpec
from dtwin_operator.render import routing
from dtwin_operator.render.context import BindingView, SiteContext

NAMESPACE = "bench"


@dataclass(frozen=True)
class Stored:
    rows: int
    first_commit: float | None  # Unix seconds
    last_commit: float | None
    dead_letters: int


def render_table(name: str, shape: workload.Shape, broker_port: int, database: str, batch_size: int | None = None,
                 flush_ms: int | None = None) -> dict[str, Any]:  # fmt: skip
    """The routing table the operator would render for a Site with the shape's bindings (pure)."""
    bridge = {k: v for k, v in (("batchSize", batch_size), ("flushIntervalMs", flush_ms)) if v is not None}
    spec = SiteSpec.model_validate(
        {"mqtt": {"host": "127.0.0.1", "port": broker_port}, "storage": {"database": database}, "bridge": bridge}
    )
    views = tuple(
        BindingView(n, SensorBindingSpec.model_validate(s)) for n, s in sorted(workload.bindings(name, shape))
    )
    return routing.table(SiteContext(NAMESPACE, name, "uid", spec, (), views))


class BenchSite:
    def __init__(self, key: str, shape: workload.Shape, dsn: str, broker_port: int, run_dir: Path,
                 batch_size: int | None, flush_ms: int | None) -> None:  # fmt: skip
        self.name = f"bench-{key}-{uuid.uuid4().hex[:6]}"
        self.shape, self.dsn = shape, dsn
        self.database = dsn.rsplit("/", 1)[1]
        self.dsn_template = dsn.rsplit("/", 1)[0] + "/{database}"
        self.table = render_table(self.name, shape, broker_port, self.database, batch_size, flush_ms)
        self.config = SiteConfig.from_dict(self.table)
        self.schema = self.config.schema
        self.batch_size, self.flush_ms = self.config.batch_size, round(self.config.flush_interval_s * 1000)
        self.dir = run_dir / self.name
        self.dir.mkdir(parents=True)
        self.path = self.dir / "routing.json"
        self.path.write_text(routing.serialize(self.table))
        self.storage = StorageSpec(schema=self.schema)
        asyncio.run(self._create_schema())

    async def _create_schema(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await migrate.apply(conn, self.storage)
            await migrate.maintain(conn, self.storage, datetime.now(UTC))
        finally:
            await conn.close()

    def query(self, sql: str, *args: Any) -> Sequence[Any]:
        """Rows of `sql`; the word SCHEMA stands for the site schema."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql.replace("SCHEMA", f'"{self.schema}"'), args or None).fetchall()

    def count(self) -> int:
        probe = workload.probe_sensor(self.name)
        return int(self.query("SELECT count(*) FROM SCHEMA.telemetry WHERE sensor <> %s", probe)[0][0])

    def stored(self) -> Stored:
        """Rows of the run (the probe sensor excluded), when they committed, and any dead letters."""
        probe = workload.probe_sensor(self.name)
        (rows, first, last), = self.query(
            "SELECT count(*), extract(epoch FROM min(pg_xact_commit_timestamp(xmin)))::float8, "
            "extract(epoch FROM max(pg_xact_commit_timestamp(xmin)))::float8 "
            "FROM SCHEMA.telemetry WHERE sensor <> %s",
            probe,
        )  # fmt: skip
        dead = int(self.query("SELECT count(*) FROM SCHEMA.dead_letters")[0][0])
        return Stored(int(rows), first, last, dead)

    def latency_ms(self) -> dict[str, float]:
        """Per reading, commit time minus the payload's timestamp (the publisher's send time), in ms."""
        probe = workload.probe_sensor(self.name)
        (p50, p95, p99, mx, mean), = self.query(
            "WITH l AS (SELECT (extract(epoch FROM pg_xact_commit_timestamp(xmin) - ts) * 1000)::float8 AS ms "
            "FROM SCHEMA.telemetry WHERE sensor <> %s) "
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms), avg(ms) FROM l",
            probe,
        )  # fmt: skip
        return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": mx, "mean_ms": mean}

    def dead_letter_reasons(self) -> list[tuple[str, int]]:
        return [(r, int(c)) for r, c in self.query("SELECT reason, count(*) FROM SCHEMA.dead_letters GROUP BY 1")]
