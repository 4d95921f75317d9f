"""`dtwin model ...`: train a model on your own CSV (or a Site's stored history), score a CSV with it, export it.

`train` reads the CSV with the import's column rules (`dtwin_cli.readings`), writes the trainer's long CSV and
events file to a temporary folder and calls `dtwin_trainer.train.train`, the function the trainer's CronJob calls,
so a model trained here is the same kind of bundle the platform serves. Progress goes to stderr; the model's tag
is the last line on stdout (`TAG=$(dtwin model train ...)`). `score` runs `dtwin_cli.scoring` (the online code
path over a whole history). `export` writes the ONNX edge package (`dtwin_ml.onnx_export`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from dtwin_cli import labels, readings, scoring
from dtwin_cli.errors import CliError, reported

app = typer.Typer(help="Train, score and export models on your own data.", no_args_is_help=True)
TASKS = ("anomaly", "failure", "rul", "energy")

HomeOpt = Annotated[
    Path | None, typer.Option(envvar="BENTOML_HOME", help="Model store folder (default: BentoML's, ~/bentoml).")
]
FormatOpt = Annotated[str, typer.Option("--format", help="wide (a column per ASSET.METRIC) or long.")]
TimeOpt = Annotated[str, typer.Option(help="Header of the timestamp column.")]
ZoneOpt = Annotated[str, typer.Option(help="Zone of timestamps written without a UTC offset.")]
MapOpt = Annotated[list[str] | None, typer.Option("--map", help="COL=ASSET.METRIC; default: the header.")]
SkipOpt = Annotated[list[str] | None, typer.Option(help="A column that is not a reading.")]


def _progress() -> Any:
    t0 = time.monotonic()

    def say(message: str) -> None:
        typer.echo(f"[{time.monotonic() - t0:6.1f}s] {message}", err=True)

    return say


def _train_module() -> Any:
    from dtwin_trainer import train as trainer  # heavy (pandas, scikit-learn): only for the commands that need it

    return trainer


def _source_args(trainer: Any, **fields: Any) -> Any:
    return trainer.SourceArgs(**fields)


def _label_events(extras: pd.DataFrame, long: pd.DataFrame, column: str, task: str, asset: str | None) -> pd.DataFrame:
    if "asset" not in extras:  # wide: a label row stands for the asset named, or for every asset of the file
        names = [asset] if asset else sorted(long["asset"].unique())
        extras = pd.concat([extras.assign(asset=a) for a in names], ignore_index=True)
    ev = labels.events(extras, column, "failure" if task in ("failure", "rul") else "fault")
    if ev.empty:
        raise CliError(f"--label-column {column}: no row is labelled (expected 1/true/fault on abnormal rows)")
    return ev


@app.command()
@reported
def train(
    task: Annotated[str, typer.Option(help="anomaly, failure, rul or energy.", show_default=False)],
    name: Annotated[str, typer.Option(help="Model name; each run stores a new version.", show_default=False)],
    csv: Annotated[Path | None, typer.Option(help="History CSV (wide or long).")] = None,
    events: Annotated[Path | None, typer.Option(help="Events CSV: asset,start,end,kind.")] = None,
    label_column: Annotated[str | None, typer.Option(help="CSV column marking abnormal rows (1/true).")] = None,
    label_asset: Annotated[str | None, typer.Option(help="Wide CSV: the asset the label column is about.")] = None,
    unit_column: Annotated[str | None, typer.Option(help="rul: column naming each run-to-failure unit.")] = None,
    site: Annotated[str | None, typer.Option(help="Train on this Site's stored history: <namespace>/<site>.")] = None,
    dsn: Annotated[str, typer.Option(envvar="DTWIN_DSN", help="--site: PostgreSQL DSN ({database} filled).")] = "",
    from_yaml: Annotated[Path | None, typer.Option(help="--site: the Site's YAML instead of the cluster.")] = None,
    kubeconfig: Annotated[Path | None, typer.Option(envvar="KUBECONFIG", help="--site: cluster to read.")] = None,
    days: Annotated[int | None, typer.Option(min=1, help="--site: days of history (default 30).")] = None,
    end: Annotated[str | None, typer.Option(help="--site: end of the history, ISO 8601 (default now).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Asset keys: <namespace>/<asset>; default: the site's.")] = None,
    site_timezone: Annotated[str, typer.Option(help="The assets' local zone (daily profile, calendar).")] = "UTC",
    holdout: Annotated[float, typer.Option(min=0.05, max=0.5, help="Share of the history kept for the test.")] = 0.2,
    format_: FormatOpt = "wide",
    time_column: TimeOpt = "timestamp",
    timezone: ZoneOpt = "UTC",
    map_: MapOpt = None,
    skip: SkipOpt = None,
    bentoml_home: HomeOpt = None,
) -> None:
    """Train TASK on a CSV (labels from --events, --label-column, or run-to-failure units) or on a Site's history
    (--site, --dsn), store it as a new version of NAME and print its tag (the last line on stdout)."""
    if task not in TASKS:
        raise CliError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if unit_column is not None and (task != "rul" or csv is None):
        raise CliError("--unit-column names run-to-failure units: it is for --task rul --csv FILE")
    if (csv is None) == (site is None):
        raise CliError("pass the history as --csv FILE or --site <namespace>/<site> (one of them)")
    if events is not None and label_column is not None:
        raise CliError("--events and --label-column are alternatives: pass one")
    if events is not None and not events.is_file():
        raise CliError(f"{events}: no such file")
    trainer = _train_module()
    if task not in trainer.TASKS:
        raise CliError(f"task {task!r} is not in this trainer yet (it has {', '.join(trainer.TASKS)})")
    say = _progress()
    with tempfile.TemporaryDirectory(prefix="dtwin-train-") as tmp:
        if site is not None:
            source, args = _db_source(trainer, site, dsn, from_yaml, kubeconfig, days, end, namespace, site_timezone,
                                      holdout, events)  # fmt: skip
        elif unit_column is not None:  # rul: the trainer reads run-to-failure units itself (id, age, sensors)
            assert csv is not None
            if not csv.is_file():
                raise CliError(f"{csv}: no such file")
            source = "csv"
            args = _source_args(trainer, csv=csv, namespace=namespace or "default", timezone=site_timezone,
                                holdout=holdout, unit_column=unit_column, time_column=time_column)  # fmt: skip
        else:
            assert csv is not None
            keep = (label_column,) if label_column else ()
            opts = readings.Options(format_, time_column, timezone, map_ or (), skip or (), keep)
            long, extras = readings.read(csv, opts)
            say(f"read {len(long)} readings of {long['asset'].nunique()} asset(s) from {csv.name}")
            ev_path = events
            if label_column is not None:
                ev = _label_events(extras, long, label_column, task, label_asset)
                ev_path = Path(tmp) / "events.csv"
                labels.write(ev, ev_path)
                say(f"{len(ev)} labelled event(s) from column {label_column}")
            source = "csv"
            args = _source_args(
                trainer,
                csv=readings.write_long(long, Path(tmp) / "readings.csv"),
                events=ev_path,
                namespace=namespace or "default",
                timezone=site_timezone,
                holdout=holdout,
            )
        try:
            result = trainer.train(task, source, name=name, args=args, home=bentoml_home, progress=say)
        except ValueError as err:
            raise CliError(str(err)) from None
    typer.echo(result.tag)


def _db_source(
    trainer: Any,
    site: str,
    dsn: str,
    from_yaml: Path | None,
    kubeconfig: Path | None,
    days: int | None,
    end: str | None,
    namespace: str | None,
    site_timezone: str,
    holdout: float,
    events: Path | None,
) -> tuple[str, Any]:
    from dtwin_cli.history import DEFAULT_DSN, resolve

    if events is not None:  # dtwin_trainer's database source reads no ground truth (yet): say so, don't drop it
        raise CliError("--events is not used with --site (the trainer's database source has no events); train "
                       "from the CSV (--csv FILE --events FILE), or without events")  # fmt: skip
    target = resolve(site, kubeconfig, None, from_yaml)
    try:
        until = None if end is None else pd.Timestamp(end)
    except ValueError:
        raise CliError(f"--end {end!r} is not an ISO 8601 time") from None
    if until is not None and until.tzinfo is None:
        until = until.tz_localize("UTC")
    args = _source_args(
        trainer,
        dsn=(dsn or DEFAULT_DSN).replace("{database}", target.database),
        schemas=(target.storage.schema,),
        days=days,
        end=until,
        namespace=namespace or target.namespace,
        timezone=site_timezone,
        holdout=holdout,
        events=events,
    )
    return "db", args


def _load(tag: str, home: Path | None) -> Any:
    from dtwin_ml import store

    try:
        return store.load(tag, home)
    except store.ModelVersionMismatch as err:
        raise CliError(str(err)) from None
    except Exception as err:  # bentoml's NotFound and friends: the user named a model that is not there
        if type(err).__name__ in ("NotFound", "BentoMLException", "InvalidArgument"):
            raise CliError(f"model {tag!r}: {err}") from None
        raise


@app.command()
@reported
def score(
    model: Annotated[str, typer.Option(help="Model tag (name, name:latest or name:version).", show_default=False)],
    csv: Annotated[Path, typer.Option(help="History CSV (wide or long).", show_default=False)],
    out: Annotated[Path, typer.Option(help="Scores CSV to write.", show_default=False)],
    asset: Annotated[str | None, typer.Option(help="Score only this asset of the CSV.")] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace of the CSV's assets in the model.")] = None,
    unit_column: Annotated[str | None, typer.Option(help="rul (run-to-failure units): the unit id column.")] = None,
    format_: FormatOpt = "wide",
    time_column: TimeOpt = "timestamp",
    timezone: ZoneOpt = "UTC",
    map_: MapOpt = None,
    skip: SkipOpt = None,
    bentoml_home: HomeOpt = None,
) -> None:
    """Score every 10-minute row of CSV with MODEL exactly as the online scorer would, into OUT."""
    bundle = _load(model, bentoml_home)
    if unit_column is not None or getattr(bundle, "per_asset", True) is False:
        if unit_column is None:
            raise CliError("this rul model scores run-to-failure units: pass --unit-column (and --time-column)")
        result = scoring.score_units(bundle, csv, unit_column, time_column, only=asset)
    else:
        long, _ = readings.read(csv, readings.Options(format_, time_column, timezone, map_ or (), skip or ()))
        result = scoring.score(
            bundle, scoring.grids(long), namespace=namespace, only=asset, warn=lambda m: typer.echo(m, err=True)
        )
    scoring.write(result, out)
    typer.echo(f"{len(result)} rows -> {out}", err=True)


@app.command()
@reported
def export(
    model: Annotated[str, typer.Option(help="Model tag.", show_default=False)],
    out: Annotated[Path, typer.Option(help="Folder for model.onnx and model.json.", show_default=False)],
    bentoml_home: HomeOpt = None,
) -> None:
    """Write MODEL as an ONNX edge package (model.onnx + model.json) for `dtwin edge`."""
    from dtwin_ml import onnx_export

    bundle = _load(model, bentoml_home)
    try:
        written = onnx_export.export(bundle, out, tag=model)
    except onnx_export.ExportError as err:
        raise CliError(str(err)) from None
    for path in written:
        typer.echo(str(path))
