"""`bentoml build` of every bento from the repository root, and a built bento served by its tag.

The cluster serves `bentos/<task>` from the source (test_serving.py); a built bento is what someone shipping
the models to their own BentoML infrastructure would use, so it must hold the service and `dtwin_ml`, carry the
scikit-learn pin, and answer exactly as the model does in process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from dtwin_ml import serving
from dtwin_operator.render.model import SERVICE_CLASS

from .conftest import Trained

ROOT = Path(__file__).resolve().parents[2]
BUILT = re.compile(r'Successfully built Bento\(tag="(dtwin-[a-z]+:[a-z0-9]+)"\)')


def build(task: str, home: Path) -> str:
    """Build bentos/<task> into the BentoML home `home`; its tag."""
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's uv
    argv = [sys.executable, "-m", "bentoml", "build", "-f", f"bentos/{task}/bentofile.yaml", "."]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found = BUILT.search(done.stdout + done.stderr)
    assert found, done.stdout[-2000:]
    return found.group(1)


@pytest.fixture(scope="module")
def built(anomaly_model: Trained) -> dict[str, str]:
    """task -> tag, every bento built into the anomaly model's own store (a built bento finds its model there)."""
    return {task: build(task, anomaly_model.home) for task in sorted(SERVICE_CLASS)}


@pytest.mark.parametrize("task", sorted(SERVICE_CLASS))
def test_every_bento_builds_with_its_service_dtwin_ml_and_the_pin(
    task: str, built: dict[str, str], anomaly_model: Trained
) -> None:
    name, _, version = built[task].partition(":")
    assert name == f"dtwin-{task}"
    bento = anomaly_model.home / "bentos" / name / version
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == f"bentos.{task}.service:{SERVICE_CLASS[task]}"
    assert {r["route"] for r in meta["schema"]["routes"]} >= {"/predict", "/info"}
    assert (bento / "src" / "bentos" / task / "service.py").is_file()
    assert (bento / "src" / "libs" / "dtwin_ml" / "dtwin_ml" / "features.py").is_file()
    assert not list((bento / "src").rglob("__pycache__"))
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert "scikit-learn==1.9.1" in requirements


def test_a_built_bento_serves_the_model_by_tag(built: dict[str, str], anomaly_model: Trained, tmp_path: Path) -> None:
    """`bentoml serve dtwin-anomaly:<version>` outside the checkout, with only the bento's own dtwin_ml on the
    path (as its container would have it): the same answers as the bundle in process."""
    tag = anomaly_model.tag
    with serving.BentoProcess("anomaly", tag, anomaly_model.home, tmp_path / "serve.log", built=built["anomaly"]) as p:
        p.wait_ready(120)
        ws = anomaly_model.windows[:6]
        r = httpx.post(f"{p.url}/predict", json={"windows": ws}, timeout=120)
        assert r.status_code == 200, r.text
        model, _, version = tag.partition(":")
        assert r.json() == [{**x, "model": model, "version": version} for x in anomaly_model.bundle.predict(ws)]
