"""The three tasks, each trained on the training period, tuned on it, then scored once on the test period.

Every choice a model makes (its normal profile, the alert threshold, the classifier) comes from rows before the
split; the test period is only scored. The static-threshold baseline picks its level (warning or critical) on
the training period the same way, so both sides get the same treatment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from dtwin_ml import energy
from dtwin_ml.anomaly import AnomalyModel
from dtwin_ml.events import Tally, Window, score
from dtwin_ml.failure import FailureModel, health_inputs, labels
from dtwin_trainer.assets import AssetData, persist, static_flags

HORIZON = pd.Timedelta(hours=72)
GRID = np.round(np.concatenate([np.arange(0.3, 0.9, 0.05), np.arange(0.9, 1.0, 0.01), [0.995, 0.999]]), 4)
ENERGY_METRICS = ("power", "compressor_power", "active_power")
PERSIST = 3  # an alert needs three consecutive steps (30 min at 10 min) above the threshold

Flags = Callable[[AssetData], np.ndarray]


def above(key: str, threshold: float, steps: int) -> Flags:
    """Alert where `a.extra[key]` stayed at or above `threshold` for `steps` steps."""

    def flags(a: AssetData) -> np.ndarray:
        return persist(a.extra[key] >= threshold, steps)

    return flags


def static(level: str) -> Flags:
    def flags(a: AssetData) -> np.ndarray:
        return static_flags(a, level)

    return flags


def tally(assets: Sequence[AssetData], flags: Flags, events: Callable[[AssetData], list[Window]], test: bool) -> Tally:
    total = Tally()
    for a in assets:
        rows = a.test_rows() if test else a.train_rows()
        f = flags(a) & rows
        total.add(score(a.index, f, a.period(events(a), test), ignore=a.grace()))
    return total


def _best(candidates: dict[Any, Tally]) -> Any:
    return max(candidates, key=lambda c: (round(candidates[c].f1, 6), c))


def _baseline(assets: Sequence[AssetData], events: Callable[[AssetData], list[Window]]) -> tuple[str, Tally]:
    train = {lvl: tally(assets, static(lvl), events, False) for lvl in ("warning", "critical")}
    level = _best(train)
    return level, tally(assets, static(level), events, True)


def _report(name: str, t: Tally) -> dict[str, Any]:
    return {
        "name": name,
        "f1": round(t.f1, 4),
        "precision": round(t.precision, 4),
        "recall": round(t.recall, 4),
        "events": t.events,
        "detected": t.detected,
        "alert_episodes": t.episodes,
        "true_episodes": t.true_episodes,
    }


def anomaly(assets: Sequence[AssetData]) -> dict[str, Any]:
    """Robust-z scores; how many features to average, the debounce and the threshold are chosen on training."""

    def events(a: AssetData) -> list[Window]:
        return a.faults

    best: tuple[float, int, int, float, Tally] | None = None
    for top in (1, 2, 3):
        for a in assets:
            model = AnomalyModel(top=top).fit(a.feats[a.normal])
            a.extra[f"anomaly_{top}"] = model.score(a.feats)
            a.extra[f"anomaly_model_{top}"] = model
        for k in (1, 2, 3):
            train = {thr: tally(assets, above(f"anomaly_{top}", thr, k), events, False) for thr in GRID}
            thr = float(_best(train))
            if best is None or train[thr].f1 > best[0]:
                best = (train[thr].f1, top, k, thr, train[thr])
    assert best is not None
    _, top, k, thr, train_t = best
    for a in assets:
        a.extra["anomaly"] = a.extra[f"anomaly_{top}"]
        a.extra["anomaly_model"] = a.extra[f"anomaly_model_{top}"]
    test = tally(assets, above("anomaly", thr, k), events, True)
    level, base = _baseline(assets, events)
    kinds: dict[str, list[int]] = {}
    for a in assets:
        for w in a.period(a.faults, True):
            kinds.setdefault(w.kind, []).append(int(w.id in test.first_alert))
    y, s = _step_labels(assets, events)
    chosen = {"threshold": thr, "top": top, "persist_steps": k, "train_f1": round(train_t.f1, 4)}
    return {
        "model": {**_report("robust-z anomaly", test), **chosen},
        "baseline": _report(f"static thresholds ({level})", base),
        "recall_by_kind": {kind: f"{sum(v)}/{len(v)}" for kind, v in sorted(kinds.items())},
        "post_fault_grace_h": 12,
        "pr": {"labels": y, "scores": s},
    }


def _step_labels(assets: Sequence[AssetData], events: Callable[[AssetData], list[Window]]) -> tuple[list, list]:
    ys, ss = [], []
    for a in assets:
        rows = a.test_rows()
        inside = np.zeros(len(a.index), dtype=bool)
        for w in events(a):
            inside |= (a.index >= w.start) & (a.index < w.end)
        ys.append(inside[rows])
        ss.append(a.extra["anomaly"][rows])
    return np.concatenate(ys).astype(int).tolist(), np.round(np.concatenate(ss), 4).tolist()


def _failure_data(assets: Sequence[AssetData]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    xs, ys, groups = [], [], []
    for a in assets:
        scaler = AnomalyModel(select="all").fit(a.feats[a.normal])
        x = health_inputs(scaler, a.feats)
        a.extra["health"] = x
        a.extra["scaler"] = scaler
        a.extra["label"] = labels(a.index, [f for _, f in a.failures], HORIZON)
        # Every third step (30 min at 10 min) is plenty for the classifier and a third of the fitting time.
        rows = a.train_rows() & (np.arange(len(a.index)) % 3 == 0)
        xs.append(x[rows])
        ys.append(a.extra["label"][rows])
        groups += [a.key] * int(rows.sum())
    return pd.concat(xs), np.concatenate(ys), np.asarray(groups)


def failure(assets: Sequence[AssetData], progress: Callable[[str], None]) -> dict[str, Any]:
    x, y, groups = _failure_data(assets)
    # Out-of-fold probabilities on the training period choose the threshold; the final model sees all of it.
    oof = np.zeros(len(y))
    folds = GroupKFold(n_splits=min(3, len(set(groups))))
    for k, (fit_idx, pred_idx) in enumerate(folds.split(x, y, groups)):
        oof[pred_idx] = FailureModel().fit(x.iloc[fit_idx], y[fit_idx]).predict_proba(x.iloc[pred_idx])
        progress(f"failure: fold {k + 1} of {folds.n_splits}")
    at = 0
    for a in assets:
        sub = a.train_rows() & (np.arange(len(a.index)) % 3 == 0)
        n = int(sub.sum())
        # Between the sampled steps the out-of-fold probability holds (causal: the last sampled step's value).
        held = pd.Series(np.where(sub, 0.0, np.nan), index=a.index)
        held[sub] = oof[at : at + n]
        a.extra["oof"] = held.ffill().fillna(0.0).to_numpy()
        at += n

    def events(a: AssetData) -> list[Window]:
        return [w for w, _ in a.failures]

    train = {t: tally(assets, above("oof", t, PERSIST), events, False) for t in GRID}
    thr = float(_best(train))
    model = FailureModel().fit(x, y)
    for a in assets:
        a.extra["failure"] = model.predict_proba(a.extra["health"])
        a.extra["failure_model"] = model  # the same pooled model on every asset, for the serving bundle
    test = tally(assets, above("failure", thr, PERSIST), events, True)
    level, base = _baseline(assets, events)
    return {
        "model": {**_report("random forest, 72 h", test), "threshold": thr, "train_f1": round(train[thr].f1, 4)},
        "baseline": _report(f"static thresholds ({level})", base),
        "lead_times_h": _leads(assets, test),
        "baseline_lead_times_h": _leads(assets, base),
        "pr": _failure_pr(assets),
    }


def _leads(assets: Sequence[AssetData], t: Tally) -> list[float]:
    out = []
    for a in assets:
        for w, fail in a.failures:
            if w.id in t.first_alert and w.start >= a.split:
                out.append(round((fail - t.first_alert[w.id]).total_seconds() / 3600, 2))
    return out


def _failure_pr(assets: Sequence[AssetData]) -> dict[str, list]:
    ys = [a.extra["label"][a.test_rows()] for a in assets]
    ss = [a.extra["failure"][a.test_rows()] for a in assets]
    return {"labels": np.concatenate(ys).tolist(), "scores": np.round(np.concatenate(ss), 4).tolist()}


def energy_task(assets: Sequence[AssetData], keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Day-ahead MAPE on the test period; `keep`, when given, receives the fitted forecaster (`"forecaster"`)."""
    series = []
    for a in assets:
        for m in ENERGY_METRICS:
            if m in a.frame:
                tz = a.run.timezones.get(a.asset, "UTC")
                series.append((f"{a.key}/{m}", energy.hourly_energy(a.frame[m]), tz, a.split))
    forecaster = energy.EnergyForecaster().fit([(k, y[y.index < split], tz) for k, y, tz, split in series])
    if keep is not None:
        keep["forecaster"] = forecaster
    actual, pred, day, week, per_asset = [], [], [], [], {}
    for k, y, tz, split in series:
        test = y.index >= split
        floor = 0.1 * float(y[~test].mean())
        p = forecaster.predict(k, y, tz)[test]
        sel = y[test] > floor  # the hours MAPE is defined on: see README
        actual.append(y[test][sel])
        pred.append(p[sel])
        day.append(energy.persistence(y, 24)[test][sel])
        week.append(energy.persistence(y, 168)[test][sel])
        per_asset[k] = round(energy.mape(y[test][sel], p[sel]), 2)
    ya, yp, yd, yw = (pd.concat(s, ignore_index=True) for s in (actual, pred, day, week))
    k0, y0, tz0, split0 = next((s for s in series if s[0].endswith("meter-plant-main/active_power")), series[0])
    return {
        "model": {"name": "gradient boosting day-ahead", "mape": round(energy.mape(ya, yp), 3), "hours": len(ya)},
        "baseline": {
            "name": "seasonal persistence (best of yesterday, last week)",
            "mape": round(min(energy.mape(ya, yd), energy.mape(ya, yw)), 3),
            "mape_yesterday": round(energy.mape(ya, yd), 3),
            "mape_last_week": round(energy.mape(ya, yw), 3),
        },
        "mape_by_series": per_asset,
        "example": _example(forecaster, k0, y0, tz0, split0),
    }


def _example(forecaster: energy.EnergyForecaster, key: str, y: pd.Series, tz: str, split: pd.Timestamp) -> dict:
    test = y.index >= split
    p = forecaster.predict(key, y, tz)
    return {
        "series": key,
        "time": [t.isoformat() for t in y.index[test]],
        "actual": np.round(y[test].to_numpy(), 3).tolist(),
        "forecast": np.round(p[test].to_numpy(), 3).tolist(),
        "persistence_week": np.round(energy.persistence(y, 168)[test].to_numpy(), 3).tolist(),
    }
