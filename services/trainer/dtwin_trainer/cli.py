"""`python -m dtwin_trainer train ...`: train one task and store it (typer); `evaluate` stays its own module.

Progress lines go to stderr with the elapsed time; stdout gets the tag alone on its last line, so a script or the
operator's CronJob can capture it (`TAG=$(python -m dtwin_trainer train ... | tail -1)`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from dtwin_trainer import train as training

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])


@app.callback()
def main() -> None:
    """dtwin model trainer."""


@app.command("train")
def train_cmd(
    task: Annotated[str, typer.Option(help="anomaly | failure | energy | rul")],
    name: Annotated[str, typer.Option(help="model name in the BentoML store (a new version per train)")],
    source: Annotated[str, typer.Option(help="sim | csv | db")] = "sim",
    seeds: Annotated[int, typer.Option(help="sim: simulated runs")] = 1,
    days: Annotated[
        int | None, typer.Option(help="sim: days simulated (15; failure 40); db: days back from now (30)")
    ] = None,
    site: Annotated[str, typer.Option(help="sim: only this site ('' = the whole campus)")] = "plant",
    sample_s: Annotated[
        int,
        typer.Option(
            help="sim: slowest a sensor reports, seconds; 0 = each at its own rate, as the live stream sends it "
            "(a model meant for the live stream should see that: thinned sensors give other bucket statistics)"
        ),
    ] = 0,
    no_cache: Annotated[bool, typer.Option(help="sim: regenerate instead of reading .bench/cache")] = False,
    csv: Annotated[Path | None, typer.Option(help="csv: readings, columns timestamp,asset,metric,value")] = None,
    events: Annotated[
        Path | None, typer.Option(help="csv: fault/failure windows, columns asset,start,end,kind")
    ] = None,
    label_column: Annotated[
        str, typer.Option(help="csv: a readings column of 1/0 or event kinds per row, read as events")
    ] = "",
    unit_column: Annotated[str, typer.Option(help="csv, rul: run-to-failure unit id column")] = "",
    time_column: Annotated[str, typer.Option(help="csv, rul: the units' age column (cycles or timestamps)")] = "",
    dsn: Annotated[str, typer.Option(envvar=training.DSN_ENV, help="db: PostgreSQL DSN", show_envvar=True)] = "",
    schema: Annotated[list[str] | None, typer.Option(help="db: a site schema; repeat for several sites")] = None,
    namespace: Annotated[str, typer.Option(help="asset keys are <namespace>/<asset>")] = "dtwin-demo",
    timezone: Annotated[str, typer.Option(help="csv/db: the site's time zone")] = "UTC",
    holdout: Annotated[float, typer.Option(help="share of the history at the end kept for evaluation")] = 0.2,
    bentoml_home: Annotated[Path | None, typer.Option(help="store under DIR/models (default: $BENTOML_HOME)")] = None,
    version: Annotated[
        str | None, typer.Option(help="the model version to save (e.g. 1.2.0); default: a fresh unique one")
    ] = None,
) -> None:
    """Train TASK on a history, evaluate it on the holdout, save it to the model store; prints the tag last."""
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        typer.echo(f"[{time.monotonic() - t0:6.1f}s] {msg}", err=True)

    args = training.SourceArgs(
        seeds=seeds,
        days=days,
        site=site,
        sample_s=sample_s,
        cache=None if no_cache else training.SourceArgs().cache,
        csv=csv,
        events=events,
        label_column=label_column,
        unit_column=unit_column,
        time_column=time_column,
        dsn=dsn,
        schemas=tuple(schema or ()),
        namespace=namespace,
        timezone=timezone,
        holdout=holdout,
    )
    try:
        result = training.train(
            task, source, name=name, args=args, home=bentoml_home, progress=progress, version=version
        )
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(json.dumps(result.metrics), err=True)
    typer.echo(f"report: {result.report_path}", err=True)
    typer.echo(result.tag)


@app.command("recommend")
def recommend_cmd(
    dsn: Annotated[str, typer.Option(envvar=training.DSN_ENV, help="PostgreSQL DSN", show_envvar=True)] = "",
    schema: Annotated[
        list[str] | None,
        typer.Option(help="a site schema, or SCHEMA=TIMEZONE for a site in its own time zone; repeat for several"),
    ] = None,
    days: Annotated[int, typer.Option(help="whole days back from today's UTC midnight")] = 7,
    tariff: Annotated[float, typer.Option(help="price per kWh")] = 0.25,
    currency: Annotated[str, typer.Option()] = "EUR",
    timezone: Annotated[
        str, typer.Option(help="time zone of the sites given without one (occupied hours are local)")
    ] = "UTC",
    occupied: Annotated[
        str, typer.Option(help="occupied hours: DAYS,START-END with days 0=Mon (0-4,7-19)")
    ] = "0-4,7-19",
) -> None:
    """Run the energy-saving detectors over each schema's recent history and insert new recommendations."""
    from dtwin_trainer import recommend as rec

    try:
        if not dsn:
            raise ValueError(f"needs --dsn or the environment variable {training.DSN_ENV}")
        if not schema:
            raise ValueError("needs --schema (once per site schema)")
        sites = [rec.site(s, timezone) for s in schema]
        for name, tz in sites:
            found, added = rec.run(dsn, name, days, rec.settings(tariff, currency, tz, occupied))
            typer.echo(f"{name} ({tz}): {found} recommendation(s), {added} new", err=True)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def run(argv: list[str] | None = None) -> int:
    try:
        app(args=argv, prog_name="python -m dtwin_trainer")
    except SystemExit as e:
        return int(e.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(run())
