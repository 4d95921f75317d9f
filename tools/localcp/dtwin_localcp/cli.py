"""Command line for the local control plane: `up`, `down` and `status`.

`up` starts the plane in the background and returns, leaving the processes
running (each in its own session, logging to files, with no pipe to this process);
it prints the admin kubeconfig path on stdout and progress on stderr. If a ready
plane already runs in the run dir, `up` only reports it. `down` stops every process
recorded in the run dir's PID files. `status` shows each process and `/readyz`, and
exits non-zero unless the plane is ready. Used by `make cluster-up`/`cluster-down`
and as `python -m dtwin_localcp`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from dtwin_localcp import processes
from dtwin_localcp.controlplane import COMPONENTS, ControlPlane, ControlPlaneError, stop_run_dir
from dtwin_localcp.locations import default_bin_dir, default_run_dir

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A local Kubernetes control plane (etcd, kube-apiserver, controllers, KWOK) on 127.0.0.1.",
)

RunDir = Annotated[
    Path | None,
    typer.Option("--run-dir", help="Run dir of the plane (default: .run/cluster under the repo root)."),
]


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[localcp %(asctime)s] %(message)s")


@app.command()
def up(
    run_dir: RunDir = None,
    bin_dir: Annotated[
        Path | None,
        typer.Option("--bin-dir", help="Binaries (default: hack/build-control-plane.sh --print)."),
    ] = None,
    nodes: Annotated[bool, typer.Option("--nodes/--no-nodes", help="Start KWOK with one fake Node.")] = True,
) -> None:
    """Start the plane in the background and print its kubeconfig path."""
    _setup_logging()
    run_dir = (run_dir or default_run_dir()).resolve()
    try:
        plane = ControlPlane.attach(run_dir)
        logging.getLogger("dtwin_localcp").info("a ready control plane already runs in %s", run_dir)
    except ControlPlaneError:
        plane = ControlPlane(run_dir, bin_dir or default_bin_dir(), with_nodes=nodes)
        try:
            plane.start()
        except ControlPlaneError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from err
    typer.echo(str(plane.kubeconfig))
    typer.echo(f"try: {plane.kubectl} --kubeconfig {plane.kubeconfig} get ns", err=True)


@app.command()
def down(run_dir: RunDir = None) -> None:
    """Stop every process recorded in the run dir (by PID; SIGTERM, then SIGKILL)."""
    _setup_logging()
    run_dir = (run_dir or default_run_dir()).resolve()
    stopped = stop_run_dir(run_dir)
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else f"nothing running in {run_dir}", err=True)


@app.command()
def status(run_dir: RunDir = None) -> None:
    """Show the processes and readiness; exit 1 unless the plane is ready."""
    run_dir = (run_dir or default_run_dir()).resolve()
    records = {r.name: r for r in processes.read_records(run_dir)}
    total_rss = 0
    for name in COMPONENTS:
        record = records.get(name)
        if record is None:
            typer.echo(f"{name:<24} -")
            continue
        alive = processes.is_alive(record)
        rss = processes.rss_bytes(record.pid) if alive else 0
        total_rss += rss
        state = f"running  rss {rss / 2**20:6.0f} MiB" if alive else "dead"
        typer.echo(f"{name:<24} pid {record.pid:<8} {state}")
    try:
        plane = ControlPlane.attach(run_dir)
    except ControlPlaneError as err:
        typer.echo(f"not ready: {err}")
        raise typer.Exit(1) from err
    typer.echo(f"ready: {plane.server}  total rss {total_rss / 2**20:.0f} MiB")
    typer.echo(f"kubeconfig: {plane.kubeconfig}")
