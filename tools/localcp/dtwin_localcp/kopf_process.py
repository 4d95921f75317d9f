"""Runs the dtwin operator (`kopf run -m dtwin_operator.main`) as a supervised local process.

Used by the operator's integration tests and by `make up`: the operator is a
real separate process (so a test can SIGKILL it mid-reconcile), logging to
`RUN/logs/operator.log`, stopped by its stored PID.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from dtwin_localcp import processes

ROOT = Path(__file__).resolve().parents[3]
NAME = "operator"


def argv(python: str = sys.executable, log_format: str = "full") -> list[str]:
    """`full` is easiest to read in a test's log; `json` is for log pipelines (embedded mode, the chart)."""
    return [
        python,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        f"--log-format={log_format}",
        "-m",
        "dtwin_operator.main",
    ]


def env(kubeconfig: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    paths = [str(ROOT / d) for d in ("operator", "libs/dtwin_core")]
    pythonpath = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": pythonpath,
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }


def start(
    run_dir: Path, kubeconfig: Path, extra_env: Mapping[str, str] | None = None, log_format: str = "full"
) -> processes.ProcessRecord:
    return processes.start(run_dir, NAME, argv(log_format=log_format), env(kubeconfig, extra_env))


def stop(run_dir: Path) -> bool:
    return processes.stop(run_dir, NAME)


@contextmanager
def running(
    run_dir: Path, kubeconfig: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[processes.ProcessRecord]:
    record = start(run_dir, kubeconfig, extra_env)
    try:
        yield record
    finally:
        stop(run_dir)
