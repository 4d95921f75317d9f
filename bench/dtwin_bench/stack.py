"""The benchmark's own PostgreSQL and Mosquitto, and the CPU accounting of every process in a run.

`Stack` starts both with `dtwin_localcp` (as the tests do) in a fresh run dir on free ports, switches on
`track_commit_timestamp` (so every stored row can say when its transaction committed: the end of a run and
each message's latency come from the database itself, not from a poll), and creates the two databases:
`dtwin_bench` for dtwin's site schemas, `bench` for the anchors' table. `CpuMeter` snapshots the CPU seconds
of the bridge processes, mosquitto, the whole PostgreSQL cluster (postmaster, backends alive and reaped)
and the box (`/proc/stat`), so a case can say where its cores went.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from dtwin_localcp import processes
from dtwin_localcp.mosquitto import Mosquitto
from dtwin_localcp.postgres import Postgres

DTWIN_DB = "dtwin_bench"
ANCHOR_DB = "bench"  # the name the anchors' common.py dials


class Stack:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.pg = Postgres(run_dir / "pg")
        self.mqtt = Mosquitto(run_dir / "mqtt")

    def start(self) -> None:
        self.run_dir.chmod(0o711)  # as root the server runs as `postgres`, which must reach pg/ (mkdtemp: 0700)
        (self.run_dir / "pg").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "mqtt").mkdir(parents=True, exist_ok=True)
        self.pg.start()
        # postgresql.auto.conf is read after dtwin.conf, so this survives the re-render at start; needs a restart.
        self.pg.sql("ALTER SYSTEM SET track_commit_timestamp = on")
        self.pg.restart()
        self.pg.create_database(DTWIN_DB)
        self.pg.create_database(ANCHOR_DB)
        self.mqtt.start()

    def stop(self) -> None:
        self.mqtt.stop()
        self.pg.stop()

    def dsn(self, db: str) -> str:
        return self.pg.dsn(db)

    def pids(self) -> dict[str, int]:
        out = {}
        for role, run_dir, name in (
            ("mosquitto", self.mqtt.run_dir, "mosquitto"),
            ("postgres", self.pg.run_dir, "postgres"),
        ):
            record = processes.read_record(run_dir, name)
            if record is not None:
                out[role] = record.pid
        return out


def _cpu(pid: int, tree: bool = False) -> float:
    """CPU seconds of a process; with `tree`, plus its live children and the children it reaped (for the
    postmaster that is every backend, including ones that exited in the window)."""
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        total = t.user + t.system
        if tree:
            total += t.children_user + t.children_system
            for c in p.children(recursive=True):
                try:
                    ct = c.cpu_times()
                    total += ct.user + ct.system
                except psutil.NoSuchProcess:
                    pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def _box_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + t.steal


@dataclass
class Snapshot:
    t: float
    box: float
    roles: dict[str, float]
    steal: float


class CpuMeter:
    """CPU seconds per role between two snapshots; `bridges` are the pids of the bridge processes."""

    def __init__(self, stack: Stack, bridges: Iterable[int] = ()) -> None:
        self.pids = stack.pids()
        self.bridges = list(bridges)

    def snap(self) -> Snapshot:
        self_ru = resource.getrusage(resource.RUSAGE_SELF)
        roles = {
            "bridge": sum(_cpu(p) for p in self.bridges),
            "mosquitto": _cpu(self.pids["mosquitto"]) if "mosquitto" in self.pids else 0.0,
            "postgres": _cpu(self.pids["postgres"], tree=True) if "postgres" in self.pids else 0.0,
            "orchestrator": self_ru.ru_utime + self_ru.ru_stime,
        }
        return Snapshot(time.time(), _box_busy(), roles, psutil.cpu_times().steal)

    @staticmethod
    def delta(a: Snapshot, b: Snapshot) -> dict[str, float]:
        d = {k: b.roles[k] - a.roles[k] for k in a.roles}
        d["box"] = b.box - a.box
        d["steal"] = b.steal - a.steal
        d["wall"] = b.t - a.t
        return d


def busy_cores(sample_s: float = 0.5) -> float:
    """Cores the whole box keeps busy right now (before a case: how shared the VM is)."""
    a = _box_busy()
    time.sleep(sample_s)
    return (_box_busy() - a) / sample_s


def box_info() -> dict[str, object]:
    return {"nproc": os.cpu_count(), "loadavg_1m": os.getloadavg()[0], "mem_gb": psutil.virtual_memory().total / 2**30}
