"""The scorer's command line: `python -m dtwin_scorer run` (every interval, until SIGTERM) and `... once`
(one pass, for tests and cron; prints what it did as JSON). Options override the `DTWIN_SCORER_*` settings."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from dtwin_core import logs, tracing
from dtwin_scorer.scorer import run
from dtwin_scorer.settings import Settings

app = typer.Typer(add_completion=False, help="Online scoring: recent telemetry -> model servers -> predictions.")

RoutingDirOpt = Annotated[Path | None, typer.Option(help="directory of routing *.json files")]
DsnOpt = Annotated[str | None, typer.Option(help="PostgreSQL URL")]
KubeOpt = Annotated[bool | None, typer.Option("--kube/--no-kube", help="report call statistics in Leases")]
LevelOpt = Annotated[str, typer.Option(help="log level")]


def configure_logging(level: str) -> None:
    logs.configure(level)
    # httpx logs every request at INFO: the scorer's own metrics and per-pass log line say it better.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _settings(**options: Any) -> Settings:
    return Settings(**{k: v for k, v in options.items() if v is not None})


@app.callback()
def _main() -> None:
    """Keeps `run` and `once` subcommands."""


@app.command("run")
def run_command(
    routing_dir: RoutingDirOpt = None,
    database_url: DsnOpt = None,
    interval_s: Annotated[float | None, typer.Option(help="seconds between passes")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port; 0 turns it off")] = None,
    kube: KubeOpt = None,
    log_level: LevelOpt = "INFO",
) -> None:
    """Score every interval until SIGTERM/SIGINT."""
    configure_logging(log_level)
    settings = _settings(
        routing_dir=routing_dir, database_url=database_url, interval_s=interval_s, metrics_port=metrics_port,
        kube_enabled=kube,
    )  # fmt: skip
    provider = tracing.setup("dtwin-scorer")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    try:
        asyncio.run(main())
    finally:
        if provider is not None:
            provider.shutdown()


@app.command("once")
def once_command(
    routing_dir: RoutingDirOpt = None,
    database_url: DsnOpt = None,
    at: Annotated[datetime | None, typer.Option(help="score as of this instant (UTC if naive); default now")] = None,
    kube: KubeOpt = None,
    log_level: LevelOpt = "WARNING",
) -> None:
    """One pass; prints a JSON line per model (windows, calls per track, versions answered, errors, rows)."""
    configure_logging(log_level)
    settings = _settings(routing_dir=routing_dir, database_url=database_url, kube_enabled=kube, metrics_port=0)
    provider = tracing.setup("dtwin-scorer")
    try:
        reports = asyncio.run(run(settings, passes=1, at=None if at is None else pd.Timestamp(at)))
    finally:
        if provider is not None:
            provider.shutdown()
    for r in reports:
        typer.echo(json.dumps(r.summary(), sort_keys=True))
