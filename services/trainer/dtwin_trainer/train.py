"""`train(task, source, ...)`: fit one task on a history, score its holdout, save the bundle to the model store.

The history comes from the simulator (as `make eval`, quick defaults), a long CSV or a site's database. It is split
in time (the last `holdout` share is never trained on), the task is fitted and tuned on the training part exactly
as the evaluation does (`tasks.py`, the same code), scored once on the holdout, and the resulting bundle
(`dtwin_ml.bundle`) is saved to the BentoML store with its metrics; `report.json` and one plot go inside the model
folder, so they travel with it. The CLI (`python -m dtwin_trainer train`) and the operator's CronJob call this.

The rul task is the exception to the time split: it holds out whole units (assets), see `rultask.py`. From a
run-to-failure CSV (`--unit-column`, `--time-column`) it trains on the units' raw sensors; from any other source
it needs failure events and trains on the failure task's health inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from dtwin_ml import bundle as mlbundle
from dtwin_ml import store
from dtwin_ml.features import FeatureConfig
from dtwin_trainer import csvsource, dataset, rultask, tasks, trainreport
from dtwin_trainer.assets import AssetData, prepare
from dtwin_trainer.report import _clean

TASKS = ("anomaly", "failure", "energy", "rul")
SOURCES = ("sim", "csv", "db")
ROOT = Path(__file__).resolve().parents[3]
# Simulated days by task: a failure holdout (the last 20 %) must hold whole 4-7 day wear faults, which 15 days never
# give; 40 days on the plant site still train in under a minute (about 25 s of CPU, simulation included).
SIM_DAYS = {"anomaly": 15, "failure": 40, "energy": 15, "rul": 40}
DSN_ENV = "DTWIN_TRAINER_DSN"
DB_DAYS = 30


@dataclass(frozen=True)
class TrainResult:
    tag: str
    metrics: dict[str, Any]
    report_path: Path


@dataclass(frozen=True)
class SourceArgs:
    """Where the history comes from; only the fields of the chosen source matter."""

    seeds: int = 1  # sim
    days: int | None = None  # sim: days simulated (default `SIM_DAYS[task]`); db: days back (default `DB_DAYS`)
    site: str = "plant"  # sim: one site keeps a train under a minute ("" = the whole campus)
    sample_s: int = 300  # sim
    cache: Path | None = ROOT / ".bench" / "cache"  # sim
    csv: Path | None = None
    events: Path | None = None  # csv: `asset,start,end,kind`
    label_column: str = ""  # csv: a column of the readings holding 1/0 or an event kind per row (see csvsource)
    unit_column: str = ""  # csv, rul: run-to-failure units (one id per unit; each unit fails at its last row)
    time_column: str = ""  # csv, rul: the units' age (cycles, or timestamps)
    dsn: str = ""  # db (the CLI defaults it to $DTWIN_TRAINER_DSN)
    schemas: tuple[str, ...] = ()  # db: one or more site schemas, read together (see dbsource on name clashes)
    end: pd.Timestamp | None = None  # db: the history's end (default: now)
    namespace: str = "dtwin-demo"  # the asset keys are "<namespace>/<asset>"
    timezone: str = "UTC"  # csv/db: the site's zone (the simulator knows its own)
    holdout: float = 0.2


def runs_of(source: str, a: SourceArgs, progress: Callable[[str], None] = print) -> list[tuple[dataset.Run, str]]:
    """(run, namespace) pairs: one per simulated seed, or a single one for a CSV or a database."""
    if source == "sim":
        days = a.days or SIM_DAYS["anomaly"]
        train_days = max(1, min(days - 1, round(days * (1.0 - a.holdout))))
        configs = [dataset.RunConfig(s, days, train_days, a.sample_s, site=a.site) for s in range(1, a.seeds + 1)]
        progress(f"simulating {len(configs)} run(s) of {days} days (train {train_days})")
        runs = dataset.runs(configs, a.cache, 1, progress)
        # A second seed replays the same assets: keep its keys apart so each history has its own state.
        return [(r, a.namespace if i == 0 else f"{a.namespace}-seed{r.config.seed}") for i, r in enumerate(runs)]
    if source == "csv":
        if a.csv is None:
            raise ValueError("--source csv needs --csv PATH")
        if a.label_column:
            grids, truth = csvsource.read_labelled_csv(a.csv, a.label_column)
        else:
            grids, truth = csvsource.read_long_csv(a.csv), []
        if a.events:
            truth += csvsource.read_events_csv(a.events)
    elif source == "db":
        from dtwin_trainer import dbsource

        if not a.dsn:
            raise ValueError(f"--source db needs --dsn or the environment variable {DSN_ENV}")
        if not a.schemas:
            raise ValueError("--source db needs --schema (once per site schema)")
        grids = dbsource.read_db(a.dsn, a.schemas, a.days or DB_DAYS, a.end)
        clashes = sorted(k for k in grids if "@" in k)
        if clashes:
            progress(f"warning: asset names in several schemas kept apart as <asset>@<schema>: {', '.join(clashes)}")
    else:
        raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    if source == "db":
        truth = []
    progress(f"read {len(grids)} assets, {csvsource.bucket_count(grids)} buckets")
    split = csvsource.time_split(grids, a.holdout)
    config = dataset.RunConfig(0, 0, 0, bucket_s=600, split_at=split)
    run = dataset.Run(
        config,
        {k: f for k, (f, _) in grids.items()},
        {k: s for k, (_, s) in grids.items()},
        truth,
        {k: a.timezone for k in grids},
        {},
        {},
    )
    return [(run, a.namespace)]


def _key(namespace: str, asset: str) -> str:
    return asset if "/" in asset else f"{namespace}/{asset}"


def assets_of(source: str, args: SourceArgs, progress: Callable[[str], None] = print) -> list[AssetData]:
    """Every asset history of `source`, prepared (features, profile, split) exactly as the evaluation does."""
    runs = runs_of(source, args, progress)
    return [prepare(run, asset, _key(ns, asset)) for run, ns in runs for asset in sorted(run.frames)]


def _state(a: AssetData, model: Any) -> mlbundle.AssetState:
    tz = a.run.timezones.get(a.asset, "UTC")
    return mlbundle.AssetState(a.extra["profile"], FeatureConfig(timezone=tz), model)


def fit(
    task: str, assets: list[AssetData], progress: Callable[[str], None], holdout: float = 0.2
) -> tuple[mlbundle.Bundle, dict]:
    """(bundle, the evaluation's result dict for the holdout) of one task."""
    if task == "anomaly":
        res = tasks.anomaly(assets)
        m = res["model"]
        states = {a.key: _state(a, a.extra["anomaly_model"]) for a in assets}
        return mlbundle.AnomalyBundle(states, m["threshold"], m["persist_steps"], top=m["top"]), res
    if task == "failure":
        if sum(1 for a in assets for w, _ in a.failures if w.start < a.split) == 0 or len(assets) < 2:
            raise ValueError("failure training needs at least two assets and one failure before the holdout")
        res = tasks.failure(assets, progress)
        states = {a.key: _state(a, a.extra["scaler"]) for a in assets}
        model = assets[0].extra["failure_model"]
        b = mlbundle.FailureBundle(
            states,
            res["model"]["threshold"],
            tasks.PERSIST,
            classifier=model,
            horizon_h=tasks.HORIZON.total_seconds() / 3600,
        )
        return b, res
    if task == "energy":
        if not any(m in a.frame for a in assets for m in tasks.ENERGY_METRICS):
            raise ValueError(f"energy training needs a power metric ({', '.join(tasks.ENERGY_METRICS)})")
        keep: dict[str, Any] = {}
        res = tasks.energy_task(assets, keep)
        tzs = {a.key: a.run.timezones.get(a.asset, "UTC") for a in assets}
        return mlbundle.EnergyBundle(keep["forecaster"], tzs), res
    if task == "rul":
        return rultask.fit_health(assets, holdout, progress)
    raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")


def metrics_of(task: str, res: dict[str, Any]) -> dict[str, Any]:
    """The holdout numbers stored with the model (no per-step lists)."""
    if task == "rul":
        return _clean({k: v for k, v in res["model"].items() if k != "name"})
    if task == "energy":
        return {"mape": res["model"]["mape"], "hours": res["model"]["hours"], "baseline_mape": res["baseline"]["mape"]}
    out = {k: v for k, v in res["model"].items() if k != "name"}
    out["baseline_f1"] = res["baseline"]["f1"]
    if task == "failure":
        leads = res["lead_times_h"]
        out["mean_lead_time_h"] = round(sum(leads) / len(leads), 2) if leads else None
    return _clean(out)


def train(
    task: str,
    source: str,
    *,
    name: str,
    args: SourceArgs | None = None,
    home: str | Path | None = None,
    progress: Callable[[str], None] = print,
    version: str | None = None,
) -> TrainResult:
    """Train `task` on `source`, save it as a new version of model `name`; the tag, holdout metrics, report."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    a = args or SourceArgs()
    if a.days is None:
        a = replace(a, days=SIM_DAYS[task] if source == "sim" else DB_DAYS)
    t0 = time.monotonic()
    bundle: mlbundle.Bundle
    if task == "rul" and source == "csv" and a.unit_column:
        if a.csv is None or not a.time_column:
            raise ValueError("rul from run-to-failure units needs --csv, --unit-column and --time-column")
        units, unit = rultask.read_units(a.csv, a.unit_column, a.time_column)
        progress(f"read {len(units)} run-to-failure units ({unit})")
        bundle, res = rultask.fit_units(units, unit, a.holdout)
        frames = [units[k] for k in sorted(units)]
        # No calendar time: the stored training window is the epoch, the units' ages are in the report.
        train_start = split = end = pd.Timestamp(0, tz="UTC")
        keys = sorted(units)
    else:
        assets = assets_of(source, a, progress)
        progress(f"features: {len(assets)} asset histories")
        bundle, res = fit(task, assets, progress, a.holdout)
        train_start = min(x.index[0] for x in assets)
        split = min(x.split for x in assets)
        end = max(x.index[-1] for x in assets)
        frames = [f for x in assets for f in (x.frame, x.run.stats.get(x.asset)) if f is not None]
        keys = sorted(x.key for x in assets)
    metrics = metrics_of(task, res)
    progress(f"{task}: holdout {metrics}")
    if task in ("anomaly", "failure") and not metrics.get("events"):
        progress(f"warning: the holdout holds no {task} event, so its F1 says nothing; train on a longer history")
    digest = store.data_hash(frames)
    report = {
        "task": task,
        "source": source,
        "metrics": metrics,
        "train_start": train_start.isoformat(),
        "train_end": split.isoformat(),
        "holdout_end": end.isoformat(),
        "assets": keys,
        "data_sha256": digest,
        "result": {k: v for k, v in res.items() if k not in ("pr", "example")},
        "seconds": round(time.monotonic() - t0, 1),
    }

    def attach(tag: str, folder: Path) -> None:
        trainreport.write(folder, {**report, "tag": tag}, task, res)

    tag = store.save(
        bundle,
        name,
        metrics=metrics,
        train_start=train_start,
        train_end=split,
        data_sha256=digest,
        extra={"source": source, "holdout_end": end.isoformat()},
        home=home,
        attach=attach,
        version=version,
    )
    path = Path(store.info(tag, home)["path"]) / trainreport.REPORT
    progress(f"saved {tag} in {round(time.monotonic() - t0, 1)} s; report {path}")
    return TrainResult(tag, metrics, path)
