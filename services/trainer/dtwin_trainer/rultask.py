"""The remaining-useful-life task: fit on some units, score on held-out UNITS (never rows of a trained unit).

Rows of one unit are strongly correlated (neighbouring cycles look alike), so a row split would let the model
recall a unit it has seen; holding whole units out measures what serving needs, a unit it never saw. Units are too
few for one held-out group to mean much (the plant site has eight assets), so the evaluation is a grouped
cross-validation: `round(1 / holdout)` groups of units dealt in sorted order, each held out once while the model
and the baselines are fitted on all the others; the scores pool every held-out row. Scored: RMSE of the clipped
RUL over every held-out row with a known target, and the same restricted to rows near failure (true RUL at or
below the alert threshold, where a maintenance decision is made), against baselines fitted on the same training
units: the mean clipped RUL by age (run-to-failure units, whose age is known) and a constant (the training mean).
The served model is then fitted on every unit.

Sources: a run-to-failure CSV (`read_units`), or site histories with failure events (`AssetData`, the simulator's
wear faults end in failures) where each asset is a unit and its health inputs are the failure task's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dtwin_ml import rul
from dtwin_ml.anomaly import AnomalyModel
from dtwin_ml.bundle import AssetState, RulBundle
from dtwin_ml.failure import health_inputs
from dtwin_ml.features import FeatureConfig
from dtwin_trainer.assets import AssetData

THRESHOLD = {"cycles": 30.0, "hours": 72.0}  # alert at or below: the failure task's 72 h horizon; 30 cycles


def read_units(path: str | Path, unit_column: str, time_column: str) -> tuple[dict[str, pd.DataFrame], str]:
    """(unit -> sensor frame indexed by age, the time unit) of a run-to-failure CSV; each unit fails at its last
    row. A numeric time column is the age itself ("cycles"); timestamps become hours since the unit's first row."""
    df = pd.read_csv(path)
    for c in (unit_column, time_column):
        if c not in df.columns:
            raise ValueError(f"{path}: no column {c!r} (columns: {', '.join(map(str, df.columns))})")
    numeric_time = pd.api.types.is_numeric_dtype(df[time_column])
    sensors = [c for c in df.columns if c not in (unit_column, time_column) and pd.api.types.is_numeric_dtype(df[c])]
    if not sensors:
        raise ValueError(f"{path}: no numeric sensor column besides {unit_column!r} and {time_column!r}")
    units = {}
    for unit, part in df.groupby(unit_column, sort=True):
        if numeric_time:
            age = part[time_column].astype(float)
        else:
            ts = pd.to_datetime(part[time_column], utc=True, format="ISO8601")
            age = (ts - ts.min()).dt.total_seconds() / 3600.0
        frame = part[sensors].astype(float).set_axis(pd.Index(age.to_numpy(), name=rul.AGE)).sort_index()
        units[str(unit)] = frame
    return units, "cycles" if numeric_time else "hours"


def folds(names: Sequence[str], holdout: float) -> list[list[str]]:
    """`round(1 / holdout)` groups of the sorted names (at least two, at most one per name), dealt in turn."""
    names = sorted(names)
    if len(names) < 2:
        raise ValueError("RUL needs at least two units that fail (one to train on, one held out)")
    k = max(2, min(len(names), round(1.0 / max(holdout, 1e-3))))
    return [names[i::k] for i in range(k)]


def _scores(y: np.ndarray, p: np.ndarray, base: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    near = y <= threshold
    out: dict[str, Any] = {"rmse": round(rul.rmse(y, p), 3), "rmse_near_failure": round(rul.rmse(y[near], p[near]), 3)}
    for name, b in base.items():
        out[f"baseline_{name}_rmse"] = round(rul.rmse(y, b), 3)
        out[f"baseline_{name}_rmse_near_failure"] = round(rul.rmse(y[near], b[near]), 3)
    out["rows"] = len(y)
    return out


Data = dict[str, tuple[pd.DataFrame, np.ndarray]]  # unit -> (inputs, clipped RUL) of its rows with a known target


def _fit(data: Data, names: Sequence[str], cap: float, sub: int) -> tuple[rul.RulModel, pd.DataFrame, np.ndarray]:
    x = pd.concat([data[n][0] for n in names])
    y = np.concatenate([data[n][1] for n in names])
    return rul.RulModel(cap).fit(x.iloc[::sub], y[::sub]), x, y


def cross_validate(
    data: Data, groups: list[list[str]], cap: float, threshold: float, by_age: bool, sub: int = 1
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(pooled scores of every held-out unit, unit -> its out-of-fold prediction): each group is held out once
    and the model and baselines are fitted on all the other units."""
    ys: list[np.ndarray] = []
    ps: list[np.ndarray] = []
    oof: dict[str, np.ndarray] = {}
    base: dict[str, list[np.ndarray]] = {"constant": [], **({"age": []} if by_age else {})}
    for group in groups:
        model, x_tr, y_tr = _fit(data, [n for n in sorted(data) if n not in group], cap, sub)
        age = rul.AgeBaseline(_age_step(x_tr)).fit(x_tr[rul.AGE].to_numpy(), y_tr) if by_age else None
        for n in group:
            x, y = data[n]
            oof[n] = model.predict(x)
            ys.append(y)
            ps.append(oof[n])
            base["constant"].append(np.full(len(y), float(np.mean(y_tr))))
            if age is not None:
                base["age"].append(age.predict(x[rul.AGE].to_numpy()))
    scores = _scores(np.concatenate(ys), np.concatenate(ps), {k: np.concatenate(v) for k, v in base.items()}, threshold)
    return scores, oof


def _age_step(x: pd.DataFrame) -> float:
    step = float(np.median(np.diff(x[rul.AGE].to_numpy()))) if len(x) > 1 else 1.0
    return step if step > 0 else 1.0


def fit_units(
    units: dict[str, pd.DataFrame], time_unit: str, holdout: float, cap: float | None = None
) -> tuple[RulBundle, dict[str, Any]]:
    """A unit-mode bundle trained on every unit, and the grouped cross-validation's held-out scores."""
    cap = cap or (rul.CAP_CYCLES if time_unit == "cycles" else rul.CAP_HOURS)
    sensors = tuple(sorted({c for f in units.values() for c in f.columns}))
    bundle = RulBundle(rul.RulModel(cap), THRESHOLD[time_unit], time_unit, sensors=sensors)
    data: Data = {}
    for name, frame in units.items():
        age = np.asarray(frame.index, dtype=float)
        data[name] = (bundle.inputs(name, frame), rul.targets(age, [age[-1]], age[-1], cap))
    groups = folds(list(units), holdout)
    scores, oof = cross_validate(data, groups, cap, bundle.threshold, by_age=True)
    bundle.model = _fit(data, sorted(data), cap, 1)[0]
    first = groups[0][0]
    res = {
        "model": {"name": "random forest RUL", **scores, "cap": cap, "unit": time_unit, "folds": len(groups)},
        "folds": groups,
        "example": _example(first, data[first], oof[first]),
    }
    return bundle, res


def _example(name: str, data: tuple[pd.DataFrame, np.ndarray], predicted: np.ndarray) -> dict[str, Any]:
    x, y = data
    time = x[rul.AGE] if rul.AGE in x else pd.Series(np.arange(len(x)), index=x.index)
    return {
        "unit": name,
        "time": np.asarray(time, dtype=float).tolist(),
        "actual": np.round(y, 3).tolist(),
        "predicted": np.round(predicted, 3).tolist(),
    }


def _hours(index: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray(index.asi8 / 3.6e12, dtype=float)


def fit_health(
    assets: Sequence[AssetData], holdout: float, progress: Callable[[str], None], cap: float = rul.CAP_HOURS
) -> tuple[RulBundle, dict[str, Any]]:
    """A per-asset bundle from site histories with failure events (hours), trained on every asset, and the
    grouped cross-validation's held-out scores."""
    failing = [a.key for a in assets if a.failures]
    # Held-out units are the assets that fail: one that never fails has the cap everywhere and says little about
    # the error near failure. Those always train (they teach the model what "healthy" looks like).
    groups = folds(failing, holdout)
    states: dict[str, AssetState] = {}
    data: Data = {}
    for a in assets:
        scaler = AnomalyModel(select="all").fit(a.feats[a.normal])
        x = health_inputs(scaler, a.feats)
        t = _hours(a.index)
        y = rul.targets(t, [_hours(pd.DatetimeIndex([f]))[0] for _, f in a.failures], float(t[-1]), cap)
        keep = ~np.isnan(y)
        data[a.key] = (x[keep], y[keep])
        tz = a.run.timezones.get(a.asset, "UTC")
        states[a.key] = AssetState(a.extra["profile"], FeatureConfig(timezone=tz), scaler)
    progress(
        f"rul: {sum(len(y) for _, y in data.values())} rows, {len(groups)} folds over {len(failing)} failing assets"
    )
    # Hourly rows (every sixth 10-min step) for an RUL in hours: neighbours add fitting time, not information.
    scores, oof = cross_validate(data, groups, cap, THRESHOLD["hours"], by_age=False, sub=6)
    bundle = RulBundle(_fit(data, sorted(data), cap, 6)[0], THRESHOLD["hours"], "hours", assets=states)
    first = groups[0][0]
    ex = _example(first, data[first], oof[first])
    ex["time"] = [t.isoformat() for t in data[first][0].index]
    res = {
        "model": {
            "name": "random forest RUL (health inputs)",
            **scores,
            "cap": cap,
            "unit": "hours",
            "folds": len(groups),
        },
        "folds": groups,
        "example": ex,
    }
    return bundle, res
