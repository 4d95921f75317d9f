"""Fixtures of the bento tests: a model trained once per session into a temporary BentoML home (the trainer's quick
`sim` source, the plant site), and windows cut from that same simulated history the way a live scorer cuts them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dtwin_ml import store
from dtwin_ml.bundle import AnomalyBundle
from dtwin_ml.window import tail
from dtwin_trainer import train


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Trained:
    home: Path
    tag: str
    bundle: AnomalyBundle
    windows: list[dict[str, Any]]  # JSON round-tripped, as they reach a bento


@pytest.fixture(scope="session")
def anomaly_model(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    home = tmp_path_factory.mktemp("bentoml")
    result = train.train("anomaly", "sim", name="plant-anomaly", home=home, progress=_quiet)
    bundle = store.load(result.tag, home)
    assert isinstance(bundle, AnomalyBundle)
    run = train.runs_of("sim", train.SourceArgs(), _quiet)[0][0]
    windows = []
    for key in sorted(bundle.assets):
        asset = key.split("/", 1)[1]
        frame, stats = run.frames[asset], run.stats[asset]
        for end in (400, len(frame) // 2, len(frame) - 1):  # a spread over the history, the last step included
            windows.append(json.loads(json.dumps(tail(key, frame, stats, end, bundle.lookback_steps))))
    return Trained(home, result.tag, bundle, windows)
