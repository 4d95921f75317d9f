"""The demo's trained models: every model version the example ModelDeployments name, in a local BentoML store.

In a cluster the retraining CronJobs fill the model store from the sites' history; a fresh `make up` has no history
yet, so it trains each task once on simulated campus history (the trainer's `sim` source: the same simulator, other
seeds and days than the live stream) and saves it under the versions the examples ask for (`anomaly-iforest:1.0.0`,
its canary `1.1.0`, ...). Training takes a few minutes on two cores, so the store is cached outside the repo, keyed
by the code and examples that shape the models: a second `make up` (or CI run) on the same machine reuses it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dtwin_localcp.locations import repo_root

log = logging.getLogger("dtwin")
# What each task trains on. `sample_s=0`: every sensor at its own rate, as the live stream sends it; the trainer's
# default thins sensors to one reading per 5 minutes, and the buckets' min/max/count then differ from the live ones
# enough to flag healthy chillers ("spike" features at 0.96). `site=""` is the whole campus: anomaly and energy share
# one simulated run of 35 days (energy holdout MAPE 7.6 % vs 9.8 % for its persistence baseline; 15 days gave
# 17.8 % vs 4.2 %); failure and RUL learn from the plant's pumps and chillers over 40 days. About 5 minutes cold.
SIM = {
    "anomaly": {"site": "", "days": 35, "sample_s": 0},
    "failure": {"site": "plant", "days": 40, "sample_s": 0},
    "rul": {"site": "plant", "days": 40, "sample_s": 0},
    "energy": {"site": "", "days": 35, "sample_s": 0},
}
SOURCES = ("libs/dtwin_ml", "services/trainer", "services/simulator", "examples")


def store_dir() -> Path:
    """~/.cache/dtwin/demo-models-<hash of the code, the examples, this module and scikit-learn's version>."""
    import sklearn

    h = hashlib.sha256(sklearn.__version__.encode())
    h.update(Path(__file__).read_bytes())  # the SIM settings above
    root = repo_root()
    for folder in SOURCES:
        for path in sorted((root / folder).rglob("*")):
            # Code and the examples' YAML shape a model; the demo's fault list (a YAML of the simulator) does not.
            if (path.suffix == ".py" or folder == "examples") and "tests" not in path.parts:
                h.update(str(path.relative_to(root)).encode())
                h.update(path.read_bytes())
    cache = Path(os.environ.get("DTWIN_CACHE", Path.home() / ".cache" / "dtwin"))
    return cache / f"demo-models-{h.hexdigest()[:12]}"


def wanted(docs: Iterable[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """(task, model name, versions) of every ModelDeployment: its model version and its canary's."""
    out = []
    for d in docs:
        if d.get("kind") != "ModelDeployment":
            continue
        spec = d["spec"]
        versions = [spec["model"]["version"]] + ([spec["canary"]["version"]] if spec.get("canary") else [])
        out.append((spec["task"], spec["model"]["name"], versions))
    return out


def has_task(task: str) -> bool:
    """The trainer can train `task` and a bento serves it."""
    from dtwin_trainer import train as training

    return task in training.TASKS and (repo_root() / "bentos" / task / "service.py").is_file()


def _exists(tag: str, home: Path) -> bool:
    from dtwin_ml import store

    try:
        store.info(tag, home)
    except Exception:  # bentoml's NotFound
        return False
    return True


def ensure(docs: Iterable[dict[str, Any]], namespace: str = "dtwin-demo") -> Path:
    """Train what the store lacks; returns the store (BENTOML_HOME). A task the trainer cannot train is skipped."""
    from dtwin_ml import store
    from dtwin_trainer import train as training

    home = store_dir()
    home.mkdir(parents=True, exist_ok=True)
    for task, name, versions in wanted(docs):
        missing = [v for v in versions if not _exists(f"{name}:{v}", home)]
        if not missing:
            continue
        if not has_task(task):
            log.warning(
                "model %s: the trainer or bentos/ has no task %r yet; its ModelDeployment will not serve", name, task
            )
            continue
        log.info("training %s %s:%s on simulated history (first run only; cached in %s)", task, name, missing, home)
        args = training.SourceArgs(namespace=namespace, **SIM[task])  # type: ignore[arg-type]
        result = training.train(
            task, "sim", name=name, args=args, home=home, version=missing[0], progress=lambda m: log.info("  %s", m)
        )
        for version in missing[1:]:
            # A canary of the demo: the same fitted bundle under its second version.
            meta = store.info(result.tag, home)["metadata"]
            store.save(
                store.load(result.tag, home),
                name,
                metrics=meta.get("metrics", {}),
                train_start=meta["train_start"],
                train_end=meta["train_end"],
                data_sha256=meta["data_sha256"],
                home=home,
                version=version,
            )
    return home
