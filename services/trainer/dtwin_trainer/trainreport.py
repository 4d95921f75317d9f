"""The small report a `train` leaves in its model's folder: `report.json` and one plot.

The plot is the holdout's step-level precision-recall curve for anomaly and failure, and one series' day-ahead
forecast against the actual for energy, one held-out unit's predicted vs true RUL for rul (matplotlib's Agg
backend: no display needed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dtwin_trainer.report import _clean

REPORT = "report.json"
PLOT = "holdout.png"


def write(folder: Path, report: dict[str, Any], task: str, result: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT
    path.write_text(json.dumps(_clean(report), indent=2, default=str) + "\n")
    return [path, _plot(folder / PLOT, task, result)]


def _plot(path: Path, task: str, result: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    fig, ax = plt.subplots(figsize=(7, 4))
    if task == "energy":
        ex = result["example"]
        t = pd.to_datetime(ex["time"], utc=True)
        ax.plot(t, ex["actual"], label="actual", lw=1.2)
        ax.plot(t, ex["forecast"], label="day-ahead forecast", lw=1.2)
        ax.set_title(f"{ex['series']} (holdout)")
        ax.set_ylabel("kWh per hour")
        fig.autofmt_xdate()
    elif task == "rul" and "example" in result:
        ex = result["example"]
        t = pd.to_datetime(ex["time"], utc=True) if ex["time"] and isinstance(ex["time"][0], str) else ex["time"]
        ax.plot(t, ex["actual"], label="true RUL (clipped)", lw=1.2)
        ax.plot(t, ex["predicted"], label="predicted (out of fold)", lw=1.2)
        ax.set_title(f"{ex['unit']} (held out)")
        ax.set_xlabel("age" if t is ex["time"] else "time")
        ax.set_ylabel("remaining useful life")
        ax.legend()
    elif task == "rul":
        ax.text(0.5, 0.5, "see report.json", ha="center")
    else:
        from sklearn.metrics import precision_recall_curve

        y, s = np.asarray(result["pr"]["labels"]), np.asarray(result["pr"]["scores"])
        if y.any():
            p, r, _ = precision_recall_curve(y, s)
            ax.plot(r, p, lw=1.5)
        ax.set_xlabel("recall (steps)")
        ax.set_ylabel("precision (steps)")
        ax.set_title(f"{task}: holdout precision-recall")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
