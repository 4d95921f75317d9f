"""The container images, without a container engine: each Dockerfile's COPY lines laid out in a scratch root as
the image would hold them, and its entrypoint run from there by a venv of the runtime dependencies only (what the
Dockerfiles install from pyproject.toml), with nothing of the checkout on the path.

This is what no build here can show otherwise (no Docker daemon): that an image carries every package its
entrypoint imports, and that no runtime path needs a dev-only dependency. Building and pushing the images is CI's
job where a daemon exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TO_FAILURE = ROOT / "libs" / "dtwin_ml" / "tests" / "data" / "run_to_failure.csv"
TRAIN_RUL = (
    "python -m dtwin_trainer train --task rul --name engines --source csv --unit-column unit --time-column cycle \
--bentoml-home {tmp} --csv"
)


@dataclass(frozen=True)
class Image:
    dockerfile: str
    checks: tuple[tuple[str, ...], ...]  # commands run in the image's WORKDIR ("{tmp}" = a scratch folder)
    workdirs: tuple[str, ...] = ()  # run every check in each of these instead (the operator sets workingDir)


IMAGES = {
    "operator": Image("operator/Dockerfile", (("python", "-c", "import dtwin_operator.main"),)),
    "api": Image("services/api/Dockerfile", (("python", "-m", "dtwin_api", "--help"),)),
    "bridge": Image("services/bridge/Dockerfile", (("python", "-m", "dtwin_bridge", "run", "--help"),)),
    "scorer": Image("services/scorer/Dockerfile", (("python", "-m", "dtwin_scorer", "run", "--help"),)),
    "trainer": Image(
        "services/trainer/Dockerfile",
        (
            # A real training with its report and plots (matplotlib), as the retraining CronJob runs one.
            (*TRAIN_RUL.split(), str(RUN_TO_FAILURE)),
            ("python", "-m", "dtwin_trainer", "recommend", "--help"),
        ),
    ),
    # The serving Deployments run `bentoml serve service:<Task>Service` in /app/bentos/<task>.
    "model": Image(
        "bentos/Dockerfile",
        (
            (
                "python",
                "-c",
                "import service, bentoml; assert any(isinstance(v, bentoml.Service) for v in vars(service).values())",
            ),
        ),
        tuple(f"/app/bentos/{task}" for task in ("anomaly", "failure", "rul", "energy")),
    ),
}


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    """The runtime-only venv (`hack/venv.sh runtime`, cached by its dependency list)."""
    done = subprocess.run(["bash", str(ROOT / "hack" / "venv.sh"), "runtime"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1]) / "bin" / "python"


def layout(dockerfile: Path, root: Path) -> tuple[Path, str]:
    """Copy what the Dockerfile COPYs under `root`; (the image's WORKDIR under root, its PYTHONPATH under root)."""
    text = dockerfile.read_text()
    for src, dst in re.findall(r"^COPY (\S+) (\S+)$", text, re.MULTILINE):
        if src == "pyproject.toml":
            continue  # the dependency list: the runtime venv stands for it
        source, target = ROOT / src, root / dst.lstrip("/")
        assert source.exists(), f"{dockerfile.name}: COPY {src}: no such path"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy2(source, target)
    workdir = re.findall(r"^WORKDIR (\S+)$", text, re.MULTILINE)
    path = re.search(r"PYTHONPATH=(\S+)", text)
    assert workdir and path, f"{dockerfile}: needs WORKDIR and PYTHONPATH"
    return root / workdir[-1].lstrip("/"), ":".join(str(root / p.lstrip("/")) for p in path.group(1).split(":"))


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_image_holds_what_its_entrypoint_imports(name: str, runtime_python: Path, tmp_path: Path) -> None:
    image = IMAGES[name]
    dockerfile = ROOT / image.dockerfile
    text = dockerfile.read_text()
    assert re.search(r"^USER \d+:\d+$", text, re.MULTILINE), "the image must run as a numeric non-root user"
    assert "['project']['dependencies']" in text, "only the runtime dependencies are installed"
    root = tmp_path / "rootfs"
    workdir, pythonpath = layout(dockerfile, root)
    cwds = [root / w.lstrip("/") for w in image.workdirs] or [workdir]
    env = {"PATH": f"{runtime_python.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": pythonpath,
           "PYTHONDONTWRITEBYTECODE": "1", "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
           "MPLCONFIGDIR": str(tmp_path / "mpl")}  # fmt: skip
    for cwd in cwds:
        for check in image.checks:
            argv = [str(runtime_python) if a == "python" else a.replace("{tmp}", str(tmp_path)) for a in check]
            done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{' '.join(check)} in {cwd} of the {name} image:\n{done.stderr[-3000:]}"
