"""The bridge's command line: `python -m dtwin_bridge run --routing PATH [--database-url URL] [--metrics-port N]`.

The operator's StatefulSet passes `--routing /etc/dtwin/routing/routing.json`; everything else comes from
`DTWIN_BRIDGE_*` environment variables (see `dtwin_bridge.settings`), which the options here override. The
process exits non-zero when the task tree fails, so Kubernetes restarts it; a clean SIGTERM exits 0.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from dtwin_bridge.runner import run
from dtwin_bridge.settings import Settings

app = typer.Typer(add_completion=False, help="MQTT -> PostgreSQL ingestion bridge of one dtwin Site.")


@app.callback()
def _main() -> None:
    """Keeps `run` a subcommand (typer flattens a single-command app otherwise)."""


@app.command("run")
def run_command(
    routing: Annotated[Path | None, typer.Option(help="routing.json rendered by the operator")] = None,
    database_url: Annotated[str | None, typer.Option(help="PostgreSQL URL; {database} is filled in")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Prometheus port; 0 turns it off")] = None,
    log_level: Annotated[str, typer.Option(help="Python logging level")] = "INFO",
) -> None:
    """Consume the site's MQTT topics and store every reading, acknowledging only after commit."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {
        k: v for k, v in {"routing": routing, "database_url": database_url, "metrics_port": metrics_port}.items() if v
    }
    if metrics_port == 0:
        overrides["metrics_port"] = 0
    settings = Settings(**overrides)
    asyncio.run(run(settings))


if __name__ == "__main__":
    app()
