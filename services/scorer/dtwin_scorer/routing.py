"""The routing files the operator renders (`dtwin-model-<name>-routing`, key `routing.json`), and their directory.

Each ModelDeployment's ConfigMap is projected into one directory as `<something>.json`. kubelet updates a
projected ConfigMap by swapping a symlink (`..data`), so a changed file is a new inode behind the same name: the
directory is listed every pass and a file is parsed again only when what its name resolves to changed. A file
that does not parse keeps its last good routing (a half-written file must not stop scoring) and is reported.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)
TASKS = ("anomaly", "failure", "rul", "energy")


@dataclass(frozen=True)
class Track:
    version: str
    url: str
    percent: int = 100


@dataclass(frozen=True)
class Routing:
    name: str  # the ModelDeployment
    namespace: str
    task: str
    model: str  # the bundle's name in the model store; `model` in predictions and alerts
    threshold: float
    horizon_hours: int | None
    max_batch_size: int
    stable: Track
    canary: Track | None
    assets: tuple[str, ...]  # "<namespace>/<asset>"
    schemas: tuple[str, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Routing:
        task = str(d["task"])
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        stable = Track(str(d["stable"]["version"]), str(d["stable"]["url"]).rstrip("/"))
        c = d.get("canary")
        canary = Track(str(c["version"]), str(c["url"]).rstrip("/"), int(c["percent"])) if c else None
        horizon = d.get("horizonHours")
        return cls(
            name=str(d["name"]),
            namespace=str(d["namespace"]),
            task=task,
            model=str(d["model"]),
            threshold=float(d.get("threshold", 0.8)),
            horizon_hours=None if horizon is None else int(horizon),
            max_batch_size=max(1, int(d.get("maxBatchSize", 64))),
            stable=stable,
            canary=canary,
            assets=tuple(str(a) for a in d.get("assets", ())),
            schemas=tuple(str(s) for s in d.get("schemas", ())),
        )

    def plain_assets(self) -> dict[str, str]:
        """Asset name as stored in the site schemas -> the model's key `<namespace>/<asset>`."""
        out: dict[str, str] = {}
        for key in self.assets:
            out.setdefault(key.rpartition("/")[2], key)
        return out


class RoutingDir:
    """The routing files of a directory, re-parsed only when they change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: dict[Path, tuple[tuple[int, int, int], Routing | None]] = {}
        self.errors: dict[Path, str] = {}  # files whose latest version does not parse

    def load(self) -> dict[Path, Routing]:
        try:
            files = sorted(p for p in self.path.glob("*.json") if p.is_file())
        except OSError as err:
            log.warning("routing dir not readable", path=str(self.path), error=str(err))
            files = []
        for gone in set(self._seen) - set(files):
            del self._seen[gone]
            self.errors.pop(gone, None)
        for p in files:
            try:
                st = os.stat(p)  # follows the symlinks kubelet swaps
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if p in self._seen and self._seen[p][0] == stamp:
                    continue
                previous = self._seen.get(p, (stamp, None))[1]
                routing: Routing | None
                try:
                    routing = Routing.from_dict(json.loads(p.read_text()))
                    self.errors.pop(p, None)
                    log.info("routing loaded", file=p.name, model=f"{routing.namespace}/{routing.name}")
                except (ValueError, KeyError, TypeError) as err:
                    self.errors[p] = str(err)
                    log.error("routing does not parse; keeping the last good one", file=str(p), error=repr(err))
                    routing = previous
                self._seen[p] = (stamp, routing)
            except OSError as err:  # vanished between the listing and the read
                log.warning("routing not readable", file=str(p), error=str(err))
        return {p: r for p, (_, r) in self._seen.items() if r is not None}
