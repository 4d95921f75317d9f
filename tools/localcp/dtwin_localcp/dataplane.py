"""Embedded mode's data plane: one bridge process per Site, and the simulator streaming the demo campus.

In a cluster the operator's bridge workloads run these; here KWOK's pods are
fake, so `make up` runs the same `python -m dtwin_bridge run` as local
processes, each fed the routing table the operator rendered into its ConfigMap,
which `dtwin_localcp.routing_sync` keeps current (kubectl edits hot-reload).
The simulator replays the last days of the campus at 60x with the demo faults,
so rows grow and the fault signatures build up while you watch.

Each bridge also heartbeats like a pod would (`dtwin_bridge.lease`): it gets the control plane's kubeconfig
and its Site's namespace, renews the Lease `dtwin-bridge-<site>-embedded` there, and the operator's
`BridgeReady` condition reads it — so that condition means the same in embedded mode as in a cluster.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from dtwin_localcp import kopf_process, ports, processes
from dtwin_localcp.kubeapi import wait_until
from dtwin_localcp.postgres import PgServer
from dtwin_localcp.timeline import BACKFILL, LIVE, Timeline, pin_faults
from dtwin_localcp.twin import Twin
from dtwin_simulator import times

log = logging.getLogger("dtwin")
SIM_ARGS = ["--speed", "60", "--duration", LIVE]
SEED = "7"


def env(extra: dict[str, str], kubeconfig: Path | None = None) -> dict[str, str]:
    """The services' environment; KUBECONFIG is /dev/null (no cluster) unless one is given."""
    root = kopf_process.ROOT
    dirs = ("services/bridge", "services/simulator", "services/api", "services/scorer", "services/trainer")
    paths = [str(root / p) for p in (*dirs, "libs/dtwin_core", "libs/dtwin_ml", "operator", "tools/localcp")]
    return kopf_process.env(kubeconfig or Path("/dev/null"), {"PYTHONPATH": ":".join(paths), **extra})


def _kubeconfig(run_dir: Path, given: Path | None) -> Path | None:
    """The given kubeconfig, else embedded mode's (`RUN/cluster/kubeconfig` next to `RUN/dataplane`)."""
    if given is not None:
        return given
    conventional = run_dir.parent / "cluster" / "kubeconfig"
    if conventional.is_file():
        return conventional
    log.warning("no kubeconfig for the bridges: they run without a heartbeat Lease (Sites show BridgeReady=False)")
    return None


def start_bridges(
    run_dir: Path, twin: Twin, sites: list[tuple[str, str]], pg: PgServer, kubeconfig: Path | None = None
) -> dict[str, int]:
    """One bridge per (namespace, site), each with its metrics port; already running ones are kept.

    `kubeconfig` (default: embedded mode's) lets each bridge renew its heartbeat Lease in its Site's namespace.
    """
    out: dict[str, int] = {}
    kubeconfig = _kubeconfig(run_dir, kubeconfig)
    for ns, site in sites:
        name = f"bridge-{ns}-{site}"
        cm = twin.get("ConfigMap", ns, f"dtwin-bridge-{site}-routing", "v1")
        if cm is None:
            raise RuntimeError(f"no routing ConfigMap for Site {ns}/{site}: is the operator running?")
        routing = run_dir / f"{name}.json"
        routing.parent.mkdir(parents=True, exist_ok=True)
        routing.write_text(cm["data"]["routing.json"])
        record = processes.read_record(run_dir, name)
        if record is not None and processes.is_alive(record):
            out[site] = int((run_dir / f"{name}.port").read_text())
            continue
        port = ports.free_port()
        (run_dir / f"{name}.port").write_text(str(port))
        bridge_env = env(
            {
                "DTWIN_BRIDGE_DATABASE_URL": pg.dsn("{database}"),
                "DTWIN_BRIDGE_REPLICA": "embedded",
                "DTWIN_BRIDGE_METRICS_HOST": "127.0.0.1",
                "DTWIN_BRIDGE_METRICS_PORT": str(port),
                "DTWIN_BRIDGE_LEASE_NAMESPACE": ns,
            },
            kubeconfig,
        )
        processes.start(
            run_dir, name, [sys.executable, "-m", "dtwin_bridge", "run", "--routing", str(routing)], bridge_env
        )
        out[site] = port
        log.info("bridge for Site %s/%s started (metrics :%d)", ns, site, port)
    if kubeconfig is not None:
        start_routing_sync(run_dir, kubeconfig)
    return out


def start_routing_sync(run_dir: Path, kubeconfig: Path) -> None:
    """What kubelet does for a pod's ConfigMap volume: routing edits reach the bridges' files (hot reload)."""
    record = processes.read_record(run_dir, "routing-sync")
    if record is not None and processes.is_alive(record):
        return
    argv = [sys.executable, "-m", "dtwin_localcp.routing_sync", str(run_dir)]
    processes.start(run_dir, "routing-sync", argv, env({}, kubeconfig))


def _sim_argv(examples: Path, mqtt_port: int, faults: Path, truth: Path, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "dtwin_simulator", "run", "-f", str(examples), "--port", str(mqtt_port)]
    return [*argv, "--qos", "1", "--faults", str(faults), "--truth", str(truth), "--seed", SEED, *extra]


def start_simulator(run_dir: Path, mqtt_port: int, examples: Path, faults: Path) -> None:
    """Backfill the history before the live stream (once per run dir), then stream the campus at 60x."""
    record = processes.read_record(run_dir, "simulator")
    if record is not None and processes.is_alive(record):
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    line = Timeline.now()
    pinned = pin_faults(faults, run_dir / "faults.yaml", line)
    backfilled = run_dir / "truth-backfill.jsonl"
    if not backfilled.exists():
        start = times.iso(line.backfill_start_ms)
        log.info("backfilling %s of campus history from %s at full speed (MQTT -> bridge -> database)", BACKFILL, start)
        argv = _sim_argv(examples, mqtt_port, pinned, backfilled, "--speed", "max", "--start", start)
        done = subprocess.run([*argv, "--duration", BACKFILL], env=env({}), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the history backfill failed: {done.stderr.strip()[-2000:]}")
        result = [line for line in done.stderr.splitlines() if line.startswith("RESULT")]
        log.info("backfill done: %s", result[-1] if result else "(no RESULT line)")
    start = times.iso(line.live_start_ms)
    argv = _sim_argv(examples, mqtt_port, pinned, run_dir / "truth.jsonl", *SIM_ARGS, "--start", start)
    processes.start(run_dir, "simulator", argv, env({}))
    log.info(
        "simulator streaming the demo campus from %s (%s), ground truth in %s",
        start,
        " ".join(SIM_ARGS),
        run_dir / "truth.jsonl",
    )


def rows(pg: PgServer, database: str, schema: str) -> int:
    return int(pg.sql(f"SELECT count(*) FROM {schema}.telemetry", database) or 0)


def wait_for_rows(pg: PgServer, database: str, schemas: list[str], timeout: float) -> dict[str, int]:
    """Until every site schema has telemetry: proof the stream goes device -> MQTT -> bridge -> database."""
    wait_until(
        lambda: all(rows(pg, database, s) > 0 for s in schemas), timeout, f"telemetry rows in {', '.join(schemas)}"
    )
    return {s: rows(pg, database, s) for s in schemas}


def stop(run_dir: Path) -> list[str]:
    """Stop every process of the data plane; the supervisors first, or they would restart what was just stopped."""
    supervisors = ("serving-sync", "routing-sync")
    records = sorted(processes.read_records(run_dir), key=lambda r: r.name not in supervisors)
    return [r.name for r in records if processes.stop(run_dir, r.name)]
