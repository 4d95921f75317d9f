"""Model answers to prediction rows and predictive alerts: pure, the I/O is in `db`.

One result per window, in order (the model servers' contract): the bundle's predict dict plus `model` and
`version`, or `{"asset", "error"}` for a window it could not score. A result without a score (`known: false`: an
asset the model never saw) gives no row and no alert, and is neither a call's success nor its failure.

The score of a result, the one the call statistics sum and `predictions.score` holds: anomaly `score`,
failure `probability`, rul `rul_hours`, energy the day's forecast kWh. The anomaly and failure tasks also judge
alerts: one is open while the bundle says `alert` (its debounced flag) or the score reaches the routing's
threshold, and resolved by the first result of that asset and model that says neither. The dedup key is per
asset and model, so a repeated prediction refreshes the open alert (severity, message, details), never opens a
second; severity is critical from halfway between the threshold and 1 (0.9 for the default 0.8).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from dtwin_scorer.routing import Routing

ALERT_KIND = "predictive"  # dtwin_core.schema_sql.tables.ALERT_KINDS
ALERTING = ("anomaly", "failure")
_META = ("asset", "timestamp", "model", "version", "known")


def score_of(task: str, result: dict[str, Any]) -> float | None:
    if task == "energy":
        kwh = [f.get("kwh") for f in result.get("forecast") or [] if isinstance(f, dict)]
        got = [float(k) for k in kwh if isinstance(k, int | float)]
        return math.fsum(got) if got else None
    value = result.get({"anomaly": "score", "failure": "probability", "rul": "rul_hours"}[task])
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def is_error(result: Any) -> bool:
    return not isinstance(result, dict) or "error" in result


@dataclass(frozen=True)
class PredictionRow:
    asset: str  # plain, as in the site schema
    model: str
    version: str
    ts: datetime
    score: float
    horizon_hours: int | None
    explanation: str  # JSON
    task: str
    rul_hours: float | None

    def args(self) -> tuple[Any, ...]:
        return (
            self.asset,
            self.model,
            self.version,
            self.ts,
            self.score,
            self.horizon_hours,
            self.explanation,
            self.task,
            self.rul_hours,
        )


@dataclass(frozen=True)
class AlertChange:
    """Open-or-refresh (`open=True`) or resolve the predictive alert under `dedup_key`."""

    dedup_key: str
    asset: str
    open: bool
    severity: str
    score: float
    message: str
    details: str  # JSON


def dedup_key(model: str, asset: str) -> str:
    return f"{ALERT_KIND}:{model}:{asset}"


def _plain(asset: str) -> str:
    return asset.rpartition("/")[2]


def _features(top: Any, n: int = 3) -> list[str]:
    names = [str(t.get("feature")) for t in top or [] if isinstance(t, dict) and t.get("feature")]
    return [f.replace(":", " ").replace("_", " ") for f in names[:n]]


def message(task: str, asset: str, score: float, horizon: int | None, top: Any) -> str:
    """E.g. "pump-1: 83% probability of failure within 72 h (bearing temp slope 36, vibration rms)"."""
    why = _features(top)
    tail = f" ({', '.join(why)})" if why else ""
    if task == "failure":
        within = f" within {horizon} h" if horizon else ""
        return f"{asset}: {round(score * 100)}% probability of failure{within}{tail}"
    return f"{asset}: anomaly score {score:.2f}{tail}"


def _horizon(routing: Routing, result: dict[str, Any]) -> int | None:
    h = result.get("horizon_h")
    if isinstance(h, int | float) and not isinstance(h, bool) and math.isfinite(h):
        return round(h)
    return 24 if routing.task == "energy" else routing.horizon_hours


def _ts(result: dict[str, Any], window: dict[str, Any]) -> datetime:
    stamp = result.get("timestamp") or window["timestamps"][-1]
    return pd.Timestamp(stamp).tz_convert("UTC").to_pydatetime()


def severity(score: float, threshold: float) -> str:
    return "critical" if score >= (threshold + 1.0) / 2.0 else "warning"


def interpret(
    routing: Routing, window: dict[str, Any], result: dict[str, Any], version: str
) -> tuple[float | None, PredictionRow | None, AlertChange | None]:
    """(score, row, alert change) of one successful result; (None, None, None) when it carries no score."""
    score = score_of(routing.task, result)
    if score is None:
        return None, None, None
    asset = _plain(str(window["asset"]))
    version = str(result.get("version") or version)
    horizon = _horizon(routing, result)
    explanation = {k: v for k, v in result.items() if k not in _META}
    row = PredictionRow(
        asset=asset,
        model=routing.model,
        version=version,
        ts=_ts(result, window),
        score=score,
        horizon_hours=horizon,
        explanation=json.dumps(explanation, separators=(",", ":")),
        task=routing.task,
        rul_hours=score if routing.task == "rul" else None,
    )
    if routing.task not in ALERTING:
        return score, row, None
    fire = bool(result.get("alert")) or score >= routing.threshold
    key = "probability" if routing.task == "failure" else "score"
    top = result.get("top") or []
    details = {key: score, "horizon_hours": horizon, "model": routing.model, "version": version, "top": top}
    if fire:
        text = message(routing.task, asset, score, horizon, top)
    else:
        text = f"{asset}: {key} {score:.2f} back below {routing.threshold:.2f}"
    change = AlertChange(
        dedup_key=dedup_key(routing.model, asset),
        asset=asset,
        open=fire,
        severity=severity(score, routing.threshold),
        score=score,
        message=text,
        details=json.dumps(details, separators=(",", ":")),
    )
    return score, row, change
