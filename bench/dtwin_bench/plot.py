"""The ingest benchmark's chart: readings/s per case next to the CPU cores each process used (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

from dtwin_bench.report import CPU_ROLES


def chart(records: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    matplotlib.use("Agg")  # no display here; set before pyplot is first imported
    import matplotlib.pyplot as plt

    labels = [r["label"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 0.6 * len(records) + 2.5), sharey=True)
    y = range(len(records))
    rates = [r["readings_s"] for r in records]
    left.barh(y, rates, color=["#888" if r["case"] in ("copy", "naive", "batched") else "#2a7" for r in records])
    for i, v in zip(y, rates, strict=True):
        left.text(v, i, f" {v:,.0f}", va="center", fontsize=8)
    left.set_yticks(list(y), labels, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("readings (rows) committed per second")
    left.set_title("throughput, first publish -> last commit")
    starts = [0.0] * len(records)
    for role in CPU_ROLES:
        vals = [r["cores"].get(role, 0.0) for r in records]
        right.barh(y, vals, left=starts, label=role)
        starts = [a + b for a, b in zip(starts, vals, strict=True)]
    right.axvline(2.0, color="k", lw=0.8, ls="--")
    right.set_xlabel("CPU cores used over the case (box has 2)")
    right.set_title("where the CPU went")
    right.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(CPU_ROLES))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
