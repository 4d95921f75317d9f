"""Per-row scores of a history with a trained bundle: the online code path, applied to a whole CSV.

The CSV's readings become the trainer's 10-minute grids (`dtwin_trainer.csvsource.grid_from_long`, the function
the trainer's CSV and database sources use), and each asset's grid goes through `bundle.predict_frame`, the
function `bundle.predict` calls on a serving window. Features are causal, so row t's score only sees rows <= t:
exactly what a live scorer sending the window that ends at t gets (tests/test_model_score.py checks the last row).

Output columns per task (a timestamp is the start of its 10-minute bucket, UTC):
  anomaly  `timestamp,anomaly_score`            (`timestamp,asset,anomaly_score` when several assets are scored)
  failure  `timestamp,asset,failure_probability`
  rul      `timestamp,asset,rul_hours`           (site histories); run-to-failure units: `age,asset,rul_<unit>`
           (`age` = the unit's time column as the trainer reads it: cycles, or hours since the unit's first row)
  energy   `timestamp,asset,kwh_forecast`        (hourly: the day-ahead forecast of each hour of the history)
Pure: frames in, a frame out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from dtwin_cli.errors import CliError
from dtwin_trainer.csvsource import grid_from_long

COLUMN = {"anomaly": "anomaly_score", "failure": "failure_probability", "rul": "rul_hours", "energy": "kwh_forecast"}
Grids = dict[str, tuple[pd.DataFrame, pd.DataFrame]]


def grids(long: pd.DataFrame) -> Grids:
    """asset -> (10-min grid of means, stats), built as the trainer builds it."""
    return grid_from_long(long)


def key_of(asset: str, known: list[str], namespace: str | None) -> str | None:
    """The bundle's key ("<namespace>/<asset>") of a CSV asset: exact, `namespace/asset`, or the only match."""
    if asset in known:
        return asset
    if namespace:
        key = f"{namespace}/{asset}"
        return key if key in known else None
    found = [k for k in known if k.rpartition("/")[2] == asset]
    if len(found) > 1:
        raise CliError(f"asset {asset!r} matches {', '.join(found)} in the model: pass --namespace")
    return found[0] if found else None


def _stamp(index: pd.Index) -> Any:
    return pd.DatetimeIndex(index).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def known_keys(bundle: Any) -> list[str]:
    if hasattr(bundle, "asset_keys"):  # an edge package (dtwin_ml.onnx_export.EdgeModel)
        return list(bundle.asset_keys)
    if bundle.task == "energy":
        return sorted({k.rpartition("/")[0] for k in bundle.forecaster.scales})
    return sorted(bundle.assets)


def score(
    bundle: Any,
    history: Grids,
    *,
    namespace: str | None = None,
    only: str | None = None,
    warn: Callable[[str], None] = lambda _m: None,
) -> pd.DataFrame:
    """Scores of every asset of `history` the model knows (or `only` that one), in the task's output columns."""
    task = str(bundle.task)
    column = COLUMN.get(task)
    if task == "rul" and getattr(bundle, "per_asset", True) is False:
        raise CliError("this rul model scores run-to-failure units: pass --unit-column")
    if column is None:
        raise CliError(f"model task {task!r} cannot be scored here (one of {', '.join(COLUMN)})")
    assets = sorted(history)
    if only is not None:
        if only not in history:
            raise CliError(f"--asset {only!r} is not in the CSV (it holds {', '.join(assets)})")
        assets = [only]
    known = known_keys(bundle)
    parts = []
    for asset in assets:
        key = key_of(asset, known, namespace)
        if key is None and task != "energy":
            warn(f"skipped {asset}: the model was not trained on it (known: {', '.join(known)})")
            continue
        frame, stats = history[asset]
        values = _one(bundle, task, key or f"{namespace or 'unknown'}/{asset}", frame, stats)
        if values is None:
            warn(f"skipped {asset}: no power metric to forecast")
            continue
        parts.append(pd.DataFrame({"timestamp": _stamp(values.index), "asset": asset, column: values.to_numpy()}))
    if not parts:
        raise CliError(f"nothing to score: no asset of the CSV ({', '.join(assets)}) is in the model")
    out = pd.concat(parts, ignore_index=True)
    if task == "anomaly" and out["asset"].nunique() == 1:
        out = out.drop(columns="asset")
    return out


def _one(bundle: Any, task: str, key: str, frame: pd.DataFrame, stats: pd.DataFrame) -> pd.Series | None:
    if task == "energy":
        if not any(m in frame for m in bundle.metrics):
            return None
        return bundle.predict_frame(key, frame)["kwh"].dropna()
    if task == "rul":
        return bundle.predict_frame(key, frame, stats)["rul"]
    return bundle.predict_frame(key, frame, stats)[bundle.score_key]


def score_units(bundle: Any, csv: Any, unit_column: str, time_column: str, only: str | None = None) -> pd.DataFrame:
    """A unit-mode rul model over a run-to-failure CSV, read by the trainer's own reader (`rultask.read_units`)."""
    from dtwin_trainer import rultask

    try:
        units, unit = rultask.read_units(csv, unit_column, time_column)
    except (ValueError, FileNotFoundError) as err:
        raise CliError(str(err)) from None
    names = [only] if only is not None else sorted(units)
    parts = []
    for name in names:
        if name not in units:
            raise CliError(f"--asset {name!r} is not a unit of the CSV")
        pred = bundle.predict_frame(name, units[name])["rul"]
        parts.append(
            pd.DataFrame({"age": pred.index.to_numpy(dtype=float), "asset": name, f"rul_{unit}": pred.to_numpy()})
        )
    return pd.concat(parts, ignore_index=True)


def write(out: pd.DataFrame, path: Any) -> None:
    out.to_csv(path, index=False, float_format=None)
