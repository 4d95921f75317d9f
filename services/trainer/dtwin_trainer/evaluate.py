"""`python -m dtwin_trainer.evaluate`: simulate, train, evaluate the three tasks, write the report (`make eval`).

Runs are simulated in-process from the demo campus with a seeded fault plan each, decoded by the bridge's parser,
and split in time; each task trains on the training period and is scored once on the test period, next to its
baseline. The report goes to `.bench/eval-<timestamp>/`; the last line printed is the RESULT line.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dtwin_trainer import dataset, report, tasks
from dtwin_trainer.assets import prepare

ROOT = Path(__file__).resolve().parents[3]


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dtwin_trainer.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: one seed, the plant site, 16 days (< 1 min)")
    p.add_argument("--seeds", type=int, default=4, help="simulated runs (default 4)")
    p.add_argument("--days", type=int, default=35, help="days per run (default 35)")
    p.add_argument("--train-days", type=int, default=24, help="days before the split (default 24)")
    p.add_argument("--sample-s", type=int, default=120, help="slowest a sensor reports, seconds (0: as in YAML)")
    p.add_argument("--site", default="", help="simulate only this site's assets (default: the whole campus)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--out", type=Path, default=None, help="report folder (default .bench/eval-<timestamp>)")
    p.add_argument("--no-cache", action="store_true", help="regenerate the simulated runs")
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.days, a.train_days, a.sample_s, a.site = 1, 16, 9, 300, a.site or "plant"
    return a


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / ".bench" / f"eval-{stamp}"
    configs = [
        dataset.RunConfig(seed, args.days, args.train_days, args.sample_s, site=args.site)
        for seed in range(1, args.seeds + 1)
    ]
    progress(f"simulating {len(configs)} run(s) of {args.days} days (train {args.train_days}), {args.workers} workers")
    cache = None if args.no_cache else ROOT / ".bench" / "cache"
    runs = dataset.runs(configs, cache, args.workers, progress)
    assets = [prepare(run, name) for run in runs for name in sorted(run.frames)]
    progress(f"features: {len(assets)} asset histories, {sum(len(a.feats.columns) for a in assets)} feature columns")
    results: dict[str, Any] = {"config": {**vars(args), "out": str(out)}}
    results["anomaly"] = tasks.anomaly(assets)
    progress(f"anomaly: test event F1 {results['anomaly']['model']['f1']:.3f}")
    results["failure"] = tasks.failure(assets, progress)
    progress(f"failure: test event F1 {results['failure']['model']['f1']:.3f}")
    results["energy"] = tasks.energy_task(assets)
    progress(f"energy: test MAPE {results['energy']['model']['mape']:.2f} %")
    k, n, wins = report.beaten(results)
    results["baselines_beaten"] = {"count": k, "of": n, "by_task": wins}
    results["seconds"] = round(time.monotonic() - t0, 1)
    files = report.write(out, results)
    print(report.table(results))
    print(f"anomaly recall by fault kind (test): {results['anomaly']['recall_by_kind']}")
    print(f"failure lead times h (test): {sorted(results['failure']['lead_times_h'])}")
    print(f"report: {', '.join(str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in files)}")
    print(f"took {results['seconds']} s")
    print(report.result_line(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
