"""Embedded mode's ML plane: the demo models in a local store, their servers, and the scorer.

`make up` trains what the store lacks (`demo_models`, cached), starts `serving_sync` (the operator's serving
Deployments as local `bentoml serve` processes, routing tables pointing at them) and one scorer over those routing
tables, which writes predictions and predictive alerts into the site schemas and reports its calls in Leases (the
operator's canary verdict reads them). The energy models' recommendations CronJobs run once, as local processes,
over the backfilled history.
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.request
from pathlib import Path
from typing import Any

from dtwin_localcp import dataplane, ports, processes
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.twin import Twin

log = logging.getLogger("dtwin")


def start_serving(run_dir: Path, kubeconfig: Path, store: Path) -> None:
    record = processes.read_record(run_dir, "serving-sync")
    if record is not None and processes.is_alive(record):
        return
    argv = [sys.executable, "-m", "dtwin_localcp.serving_sync", str(run_dir), str(store)]
    processes.start(run_dir, "serving-sync", argv, dataplane.env({}, kubeconfig))
    log.info("model servers: the serving Deployments run as local bentoml processes (model store %s)", store)


def start_scorer(run_dir: Path, database_url: str, kubeconfig: Path) -> None:
    record = processes.read_record(run_dir, "scorer")
    if record is not None and processes.is_alive(record):
        return
    env = {
        "DTWIN_SCORER_DATABASE_URL": database_url,
        "DTWIN_SCORER_ROUTING_DIR": str(run_dir / "routing"),
        "DTWIN_SCORER_REPORTER": "embedded",
        "DTWIN_SCORER_INTERVAL_S": "20",
        "DTWIN_SCORER_CLOCK": "stream",  # the demo replays days-old history: score it in stream time
        "DTWIN_SCORER_BACKOFF_INITIAL_S": "10",  # a local model server restarts in seconds
        "DTWIN_SCORER_METRICS_HOST": "127.0.0.1",
        "DTWIN_SCORER_METRICS_PORT": str(ports.free_port()),
    }
    argv = [sys.executable, "-m", "dtwin_scorer", "run"]
    processes.start(run_dir, "scorer", argv, dataplane.env(env, kubeconfig))
    log.info("scorer started: predictions and predictive alerts every 20 s")


RECOMMEND_SELECTOR = "app.kubernetes.io/component=recommend,app.kubernetes.io/part-of=dtwin"


def recommend_argv(cronjob: dict[str, Any]) -> list[str]:
    """The recommendations CronJob's container command, run by this interpreter."""
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    argv = [str(a) for a in container["command"]]
    return [sys.executable, *argv[1:]] if argv and argv[0] == "python" else argv


def run_recommendations(run_dir: Path, twin: Twin, namespaces: list[str], database_url: str) -> list[str]:
    """Run each energy model's recommendations CronJob once, now, as a local process (KWOK's Jobs do not run):
    the history `make up` backfilled gets its energy-saving recommendations. Returns the process names."""
    started = []
    for ns in namespaces:
        for cj in twin.items("CronJob", ns, "batch/v1", RECOMMEND_SELECTOR):
            if cj["spec"].get("suspend"):
                continue
            name = f"recs-{ns}.{cj['metadata']['name']}"
            env = dataplane.env({"DTWIN_TRAINER_DSN": database_url})
            processes.start(run_dir, name, recommend_argv(cj), env)
            started.append(name)
    if started:
        log.info("energy recommendations: %s running once over the backfilled history", ", ".join(started))
    return started


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def servers(run_dir: Path) -> dict[str, str]:
    """model name -> local URL of its stable track, from the routing tables serving_sync wrote."""
    out = {}
    for path in sorted((run_dir / "routing").glob("*.json")):
        routing = json.loads(path.read_text())
        out[routing["name"]] = routing["stable"]["url"]
    return out


def wait_for_servers(run_dir: Path, names: list[str], timeout: float) -> dict[str, str]:
    """Until every named model's stable server answers /readyz (it has loaded its model)."""

    def ready() -> bool:
        urls = servers(run_dir)
        return all(n in urls and urls[n].startswith("http://127.0.0.1") and _ready(urls[n]) for n in names)

    wait_until(ready, timeout, f"model servers {', '.join(names)} ready")
    return servers(run_dir)
