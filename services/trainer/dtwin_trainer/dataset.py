"""The evaluation's data: simulated runs (one per seed) with their fault plan, split in time, cached on disk.

A run simulates the whole demo campus for `days` days with the seed's fault plan; the first `train_days` are the
training period and the rest the test period, and no fault window straddles the boundary. Runs are independent,
so they are generated in parallel worker processes; each is cached under `.bench/cache/` keyed by everything that
shapes it (seed, days, split, sampling, bucket, the plan's and the history format's versions), because generating
is the slow part.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dtwin_simulator import times
from dtwin_trainer import history, scenario

START = "2026-01-05T00:00:00Z"  # a Monday
PLAN_VERSION = 1
HISTORY_VERSION = 2  # 2: per-bucket min/max/count next to the means


@dataclass(frozen=True)
class RunConfig:
    seed: int
    days: int
    train_days: int
    sample_s: int = 120
    bucket_s: int = 600
    site: str = ""  # only this site's assets (empty: the whole campus)
    split_at: pd.Timestamp | None = None  # history from a CSV or a database: its own split (not part of `key`)

    @property
    def start_ms(self) -> int:
        return times.parse_instant_ms(START, 0)

    @property
    def split(self) -> pd.Timestamp:
        if self.split_at is not None:
            return self.split_at
        return pd.Timestamp(self.start_ms + self.train_days * scenario.DAY, unit="ms", tz="UTC")

    def key(self) -> str:
        parts = (PLAN_VERSION, HISTORY_VERSION, self.seed, self.days, self.train_days, self.sample_s)
        text = "|".join(map(str, (*parts, self.bucket_s, self.site)))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class Run:
    config: RunConfig
    frames: dict[str, pd.DataFrame]  # asset -> bucket means
    stats: dict[str, pd.DataFrame]  # asset -> per-bucket `<metric>:min|max|count`
    truth: list[dict[str, Any]]
    timezones: dict[str, str]  # asset -> its site's timezone
    kinds: dict[str, str]  # asset -> kind
    thresholds: dict[str, dict[str, Any]]  # asset -> metric -> (unit, Thresholds)


def generate(config: RunConfig) -> Run:
    demo = history.load_demo(sample_s=config.sample_s)
    if config.site:
        demo = history.Demo(demo.fleet.select(sites=[config.site]), demo.tables)
    split_ms = config.start_ms + config.train_days * scenario.DAY
    end_ms = config.start_ms + config.days * scenario.DAY
    plan = scenario.plan(demo.fleet, config.seed, config.start_ms, split_ms, end_ms)
    hist = history.simulate(
        demo, plan.faults, seed=config.seed, start_ms=config.start_ms, end_ms=end_ms, bucket_s=config.bucket_s
    )
    fleet = demo.fleet
    thresholds: dict[str, dict[str, Any]] = {}
    for r in demo.routes.values():
        thresholds.setdefault(r.asset, {})[r.metric] = (r.unit, r.thresholds)
    return Run(
        config,
        hist.frames,
        hist.stats,
        list(plan.truth),
        {a.name: fleet.site(a.site).timezone for a in fleet.assets},
        {a.name: a.kind for a in fleet.assets},
        thresholds,
    )


def _cached(args: tuple[RunConfig, str | None]) -> Run:
    config, cache = args
    path = Path(cache) / f"run-{config.key()}.pkl" if cache else None
    if path is not None and path.exists():
        with path.open("rb") as f:
            run: Run = pickle.load(f)
        return run
    run = generate(config)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(run, f)
        tmp.replace(path)
    return run


def runs(configs: list[RunConfig], cache: Path | None, workers: int, progress: Callable[[str], None]) -> list[Run]:
    """Every run, generated in up to `workers` processes (or read from `cache`), in the order of `configs`."""
    jobs = [(c, str(cache) if cache else None) for c in configs]
    out: list[Run] = []
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            out.append(_cached(job))
            progress(f"run seed={job[0].seed}: {len(out[-1].frames)} assets, {len(out[-1].truth)} truth records")
        return out
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for run in pool.map(_cached, jobs):
            out.append(run)
            progress(f"run seed={run.config.seed}: {len(run.frames)} assets, {len(run.truth)} truth records")
    return out
