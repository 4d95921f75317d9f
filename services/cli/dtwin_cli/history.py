"""`dtwin history ...`: commands on a Site's stored telemetry. `import` backfills a CSV through the bridge's rules.

Thin: options are parsed here, the site is resolved (`dtwin_cli.sitecfg`), the work is `dtwin_cli.importer`, the
summary text is `dtwin_cli.report`. A progress bar (rich, on stderr, only on a terminal) follows the rows.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dtwin_cli import importer, report, sitecfg
from dtwin_cli.errors import CliError, reported

app = typer.Typer(help="A Site's telemetry history: backfill it from files.", no_args_is_help=True)
# The bridge's default, `{database}` filled from the Site's storage.database (see dtwin_bridge.settings).
DEFAULT_DSN = "postgresql://dtwin@127.0.0.1:5432/{database}"


def resolve(site: str, kubeconfig: Path | None, routing: Path | None, from_yaml: Path | None) -> sitecfg.SiteTarget:
    namespace, name = sitecfg.parse_ref(site)
    if routing is not None and from_yaml is not None:
        raise CliError("--routing and --from-yaml are alternatives: pass one")
    if from_yaml is not None:
        return sitecfg.from_yaml(from_yaml, namespace, name)
    if routing is not None:
        return sitecfg.from_routing_file(routing, namespace, name)
    return sitecfg.from_cluster(kubeconfig, namespace, name)


@app.command("import")
@reported
def import_(
    file: Annotated[Path, typer.Argument(help="CSV of timestamped readings.", show_default=False)],
    site: Annotated[str, typer.Option(help="Target Site as <namespace>/<site>.", show_default=False)],
    kubeconfig: Annotated[Path | None, typer.Option(envvar="KUBECONFIG", help="Cluster to read the Site from.")] = None,
    routing: Annotated[Path | None, typer.Option(help="Use this routing.json instead of the cluster's.")] = None,
    from_yaml: Annotated[
        Path | None, typer.Option(help="Render the routing table from these Site/Asset/SensorBinding YAML files.")
    ] = None,
    dsn: Annotated[
        str, typer.Option(envvar="DTWIN_DSN", help="PostgreSQL DSN; {database} becomes the Site's database.")
    ] = DEFAULT_DSN,
    map_: Annotated[
        list[str] | None, typer.Option("--map", help="COL=ASSET.METRIC (or =SENSOR); default: the header.")
    ] = None,
    skip: Annotated[list[str] | None, typer.Option(help="A column not to import.")] = None,
    time_column: Annotated[str, typer.Option(help="Header of the timestamp column.")] = "timestamp",
    timezone: Annotated[str, typer.Option(help="Zone of timestamps written without a UTC offset.")] = "UTC",
    format_: Annotated[str, typer.Option("--format", help="wide (a column per sensor) or long.")] = "wide",
    unit: Annotated[list[str] | None, typer.Option(help="COL=UNIT when a column is not in the binding's unit.")] = None,
    batch: Annotated[int, typer.Option(min=1, max=50000, help="Readings per database transaction.")] = 5000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and summarise; write nothing.")] = False,
) -> None:
    """Backfill FILE into the Site's telemetry through the bridge's validation; refused values become dead
    letters with a reason. Re-importing a file stores nothing twice."""
    if format_ not in ("wide", "long"):
        raise CliError(f"--format must be wide or long, got {format_!r}")
    if not file.is_file():
        raise CliError(f"{file}: no such file" if not file.exists() else f"{file} is not a file")
    target = resolve(site, kubeconfig, routing, from_yaml)
    req = importer.Request(
        path=file,
        target=target,
        format="wide" if format_ == "wide" else "long",
        time_column=time_column,
        timezone=timezone,
        maps=map_ or (),
        units=unit or (),
        skip=skip or (),
        batch=batch,
        dsn=None if dry_run else dsn.replace("{database}", target.database),
        dry_run=dry_run,
    )
    err = Console(stderr=True)
    with Progress(
        TextColumn("[bold]importing[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal or bool(os.environ.get("CI")),
    ) as bar:
        task = bar.add_task(file.name, total=None)

        def step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = asyncio.run(importer.run(req, step))
    typer.echo(report.render(summary, f"{target.namespace}/{target.site} ({target.storage.schema})", file.name))
    sys.stdout.flush()
