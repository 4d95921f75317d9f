"""The evaluation report: the table printed at the end, `report.json`, the plots, and the RESULT line.

Plots use matplotlib's Agg backend (no display): a precision-recall curve per task (step level, test period), the
histogram of failure lead times, and one energy series' day-ahead forecast against the actual and the baseline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def beaten(results: dict[str, Any]) -> tuple[int, int, dict[str, bool]]:
    """Which models beat their baseline: higher event F1 for anomaly/failure, lower MAPE for energy."""
    a, f, e = results["anomaly"], results["failure"], results["energy"]
    wins = {
        "anomaly": a["model"]["f1"] > a["baseline"]["f1"],
        "failure": f["model"]["f1"] > f["baseline"]["f1"],
        "energy": e["model"]["mape"] < e["baseline"]["mape"],
    }
    return sum(wins.values()), len(wins), wins


def mean_lead(results: dict[str, Any]) -> float:
    leads = results["failure"]["lead_times_h"]
    return sum(leads) / len(leads) if leads else 0.0


def table(results: dict[str, Any]) -> str:
    a, f, e = results["anomaly"], results["failure"], results["energy"]
    rows = [
        ("task", "model", "metric", "model", "baseline", "target"),
        ("anomaly", a["model"]["name"], "event F1", a["model"]["f1"], a["baseline"]["f1"], ">= 0.8"),
        ("", "", "precision", a["model"]["precision"], a["baseline"]["precision"], ""),
        ("", "", "recall", a["model"]["recall"], a["baseline"]["recall"], ""),
        ("failure", f["model"]["name"], "event F1", f["model"]["f1"], f["baseline"]["f1"], ">= 0.8"),
        ("", "", "precision", f["model"]["precision"], f["baseline"]["precision"], ""),
        ("", "", "recall", f["model"]["recall"], f["baseline"]["recall"], ""),
        ("", "", "mean lead h", round(mean_lead(results), 1), _mean(f["baseline_lead_times_h"]), ">= 24"),
        ("energy", e["model"]["name"], "MAPE %", e["model"]["mape"], e["baseline"]["mape"], "<= 10"),
    ]
    width = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, width, strict=True)) for r in rows)


def _mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 1) if xs else 0.0


def result_line(results: dict[str, Any]) -> str:
    k, n, _ = beaten(results)
    return (
        f"RESULT anomaly_f1={results['anomaly']['model']['f1']:.3f} failure_f1={results['failure']['model']['f1']:.3f}"
        f" lead_time_h={mean_lead(results):.1f} energy_mape={results['energy']['model']['mape']:.2f}"
        f" baselines_beaten={k}/{n}"
    )


def write(out: Path, results: dict[str, Any]) -> list[Path]:
    """report.json and the plots under `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.json"]
    files[0].write_text(json.dumps(_clean(results), indent=1, sort_keys=True))
    files += _plots(out, results)
    return files


def _plots(out: Path, results: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    written = []
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for task in ("anomaly", "failure"):
        pr = results[task]["pr"]
        if sum(pr["labels"]) and len(set(pr["labels"])) > 1:
            p, r, _ = precision_recall_curve(pr["labels"], pr["scores"])
            ax.plot(r, p, label=f"{task} (step level, test)")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, test period", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend()
    written.append(_save(fig, out / "pr_curve.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    leads = results["failure"]["lead_times_h"]
    ax.hist(leads, bins=max(5, len(leads) // 2), color="tab:orange", label="model")
    ax.axvline(24, color="k", linestyle="--", label="target 24 h")
    ax.set(xlabel="lead time before failure (h)", ylabel="failures", title="Failure lead time, test period")
    ax.legend()
    written.append(_save(fig, out / "lead_time_hist.png"))
    ex = results["energy"]["example"]
    fig, ax = plt.subplots(figsize=(10, 4))
    import pandas as pd

    t = pd.to_datetime(ex["time"])
    ax.plot(t, ex["actual"], label="actual", color="k")
    ax.plot(t, ex["forecast"], label="day-ahead forecast")
    ax.plot(t, ex["persistence_week"], label="same hour last week", alpha=0.6)
    ax.set(ylabel="kWh per hour", title=f"Energy, test period: {ex['series']}")
    ax.legend()
    fig.autofmt_xdate()
    written.append(_save(fig, out / "energy_forecast.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
