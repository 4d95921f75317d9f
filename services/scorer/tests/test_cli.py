"""`python -m dtwin_scorer run` as a real process: scores on its interval, serves its metrics, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ASSETS = {f"pump-{i}": 10.0 * i for i in range(10)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_run_scores_every_interval_serves_metrics_and_stops_on_sigterm(
    tmp_path: Path, site: Any, fake_model: Any, routing_writer: Any
) -> None:
    now = datetime.now(UTC)
    port = _free_port()

    async def main() -> tuple[dict[Any, float], int]:
        await site.create(ASSETS, now - timedelta(hours=3), now)
        async with fake_model("1.0") as stable:
            routing_writer(tmp_path, "pumps", stable, assets=[f"demo/{a}" for a in ASSETS])
            env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path), "DTWIN_SCORER_KUBE_ENABLED": "false"}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dtwin_scorer", "run", "--routing-dir", str(tmp_path), "--database-url",
                site.dsn, "--interval-s", "0.2", "--metrics-port", str(port),
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                async with httpx.AsyncClient() as http, asyncio.timeout(60):
                    passes: set[float] = set()
                    while len(passes) < 3:  # three passes seen: it keeps scoring on its interval
                        try:
                            got = _samples((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
                            passes.add(got.get(("dtwin_scorer_last_pass_timestamp_seconds", ()), 0.0))
                            passes.discard(0.0)
                        except httpx.HTTPError:
                            pass
                        await asyncio.sleep(0.1)
            finally:
                proc.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    code = await proc.wait()
            return got, code

    got, code = asyncio.run(main())
    assert code == 0
    # Each asset once per complete bucket, not once per pass (twice if a 10-minute boundary fell in the test).
    windows = got[("dtwin_scorer_windows_total", (("model", "demo/pumps"), ("track", "stable")))]
    assert windows in (10, 20) and got[("dtwin_scorer_predictions_total", (("model", "demo/pumps"),))] == windows
    assert got[("dtwin_scorer_alerts_total", (("model", "demo/pumps"), ("transition", "opened")))] == 3
