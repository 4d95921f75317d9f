"""Call statistics reach the operator: a scoring pass with a canary, then the Lease read back from the real
kube-apiserver of the local control plane and decoded with `dtwin_core.model_calls` as the operator does."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from kubernetes import client, config

from dtwin_core import model_calls
from dtwin_scorer import lease
from dtwin_scorer.scorer import Scorer
from dtwin_scorer.settings import Settings

pytestmark = pytest.mark.cluster
T0 = datetime(2026, 1, 5, tzinfo=UTC)


def test_a_pass_reports_calls_in_the_models_lease(
    kubeconfig: Path, tmp_path: Path, site: Any, fake_model: Any, routing_writer: Any
) -> None:
    namespace = f"scorer-{uuid.uuid4().hex[:8]}"
    config.load_kube_config(str(kubeconfig))
    core = client.CoreV1Api()
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    assets = {f"pump-{i}": 50.0 + i for i in range(10)}
    try:

        async def main() -> Any:
            await site.create(assets, T0 - timedelta(hours=3), T0 + timedelta(hours=1))
            async with fake_model("1.0") as stable, fake_model("1.1") as canary:
                routing_writer(
                    tmp_path, "pumps", stable, canary, percent=20, namespace=namespace,
                    assets=[f"{namespace}/{a}" for a in assets],
                )  # fmt: skip
                s = Settings(database_url=site.dsn, routing_dir=tmp_path, metrics_port=0, reporter="scorer-0")
                api = lease.connect()
                assert api is not None
                pool = await asyncpg.create_pool(site.dsn, min_size=0, max_size=2)
                try:
                    async with httpx.AsyncClient() as http:
                        scorer = Scorer(s, pool, http, reporter=lease.Reporter(api, s.reporter, 5.0))
                        for k in range(5):
                            await scorer.pass_once(T0 + timedelta(minutes=5 + 10 * k))
                finally:
                    await pool.close()
                    api.close()
                return len(stable.windows), len(canary.windows)

        n_stable, n_canary = asyncio.run(main())
        leases = client.CoordinationV1Api().list_namespaced_lease(
            namespace, label_selector=model_calls.selector("pumps")
        )
        (got,) = leases.items
        assert got.metadata is not None and got.spec is not None
        assert got.metadata.name == "dtwin-model-pumps-calls-scorer-0" and got.spec.holder_identity == "scorer-0"
        stable, canary = model_calls.decode(got.metadata.annotations)
        assert n_stable + n_canary == 50 and n_canary == 10  # 20 % of 5 passes x 10 assets
        assert stable is not None and (stable.version, stable.calls, stable.errors) == ("1.0", n_stable, 0)
        assert canary is not None and (canary.version, canary.calls, canary.errors) == ("1.1", n_canary, 0)
        assert canary.mean_score is not None and 0.5 <= canary.mean_score <= 0.6  # temperatures 50..59
        ok, why = model_calls.verdict(stable, canary, min_calls=10, max_error_rate=0.05, max_score_drift=0.1)
        assert ok is True, why
    finally:
        core.delete_namespace(namespace)
