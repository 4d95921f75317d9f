"""The container images, without a container engine: each stage of the root Dockerfile laid out in a scratch root
as the image would hold it (its COPY lines and its base's), and its entrypoint run from there by a venv of the
runtime dependencies only (what the base stage installs from pyproject.toml), nothing of the checkout on the path.

This is what no build here can show otherwise (no Docker daemon): that an image carries every package its
entrypoint imports, and that no runtime path needs a dev-only dependency. Building and pushing the images is for a
machine with Docker (skaffold.yaml).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
RUN_TO_FAILURE = ROOT / "libs" / "dtwin_ml" / "tests" / "data" / "run_to_failure.csv"
TRAIN_RUL = (
    "python -m dtwin_trainer train --task rul --name engines --source csv --unit-column unit --time-column cycle \
--bentoml-home {tmp} --csv"
)


@dataclass(frozen=True)
class Image:
    checks: tuple[tuple[str, ...], ...]  # commands run in the image's WORKDIR ("{tmp}" = a scratch folder)
    workdirs: tuple[str, ...] = ()  # run every check in each of these instead (the operator sets workingDir)


IMAGES = {
    "operator": Image((("python", "-c", "import dtwin_operator.main"),)),  # what `kopf run -m` imports
    "api": Image((("python", "-m", "dtwin_api", "--help"),)),
    "bridge": Image((("python", "-m", "dtwin_bridge", "run", "--help"),)),
    "scorer": Image((("python", "-m", "dtwin_scorer", "run", "--help"),)),
    "trainer": Image(
        (
            # A real training with its report and plots (matplotlib), as the retraining CronJob runs one.
            (*TRAIN_RUL.split(), str(RUN_TO_FAILURE)),
            ("python", "-m", "dtwin_trainer", "recommend", "--help"),
        ),
    ),
    # The serving Deployments run `bentoml serve service:<Task>Service` in /app/bentos/<task>.
    "model": Image(
        (
            (
                "python",
                "-c",
                "import bentoml, service; assert any(isinstance(v, bentoml.Service) for v in vars(service).values())",
            ),
        ),
        tuple(f"/app/bentos/{task}" for task in ("anomaly", "failure", "rul", "energy")),
    ),
}


def stages(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (the stage it is FROM, its instruction lines), continuation lines joined."""
    out: dict[str, tuple[str, list[str]]] = {}
    current: list[str] = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        if m := re.match(r"^FROM (\S+) AS (\S+)$", line):
            current = []
            out[m.group(2)] = (m.group(1), current)
        elif line and not line.startswith("#"):
            current.append(line)
    return out


def chain(all_stages: dict[str, tuple[str, list[str]]], name: str) -> list[str]:
    """The instructions of `name` after those of the stages it is built FROM."""
    parent, lines = all_stages[name]
    return (chain(all_stages, parent) if parent in all_stages else []) + lines


def layout(lines: list[str], root: Path) -> tuple[Path, str, str | None]:
    """Copy what the stage COPYs under `root`; (its WORKDIR, its PYTHONPATH, its USER), paths under root."""
    for src, dst in re.findall(r"^COPY (\S+) (\S+)$", "\n".join(lines), re.MULTILINE):
        if src == "pyproject.toml":
            continue  # the dependency list: the runtime venv stands for it
        source, target = ROOT / src, root / dst.lstrip("/")
        assert source.exists(), f"COPY {src}: no such path"
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy2(source, target)
    workdir = [line.split()[1] for line in lines if line.startswith("WORKDIR ")]
    path = [m.group(1) for line in lines if (m := re.search(r"PYTHONPATH=(\S+)", line))]
    user = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert workdir and path, "needs WORKDIR and PYTHONPATH"
    pythonpath = ":".join(str(root / p.lstrip("/")) for p in path[-1].split(":"))
    return root / workdir[-1].lstrip("/"), pythonpath, user[-1] if user else None


@pytest.fixture(scope="module")
def runtime_python() -> Path:
    """The runtime-only venv (`hack/venv.sh runtime`, cached by its dependency list)."""
    done = subprocess.run(["bash", str(ROOT / "hack" / "venv.sh"), "runtime"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1]) / "bin" / "python"


def test_every_image_the_chart_names_is_a_stage() -> None:
    values = yaml.safe_load((ROOT / "charts" / "dtwin" / "values.yaml").read_text())
    named = {v["image"]["repository"] for v in values.values() if isinstance(v, dict) and "image" in v}
    named.add(values["image"]["repository"])
    built = {f"dtwin/{name}" for name in stages(DOCKERFILE.read_text()) if name != "base"}
    assert named == built == {f"dtwin/{name}" for name in IMAGES}
    assert "['project']['dependencies']" in DOCKERFILE.read_text(), "only the runtime dependencies are installed"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_image_holds_what_its_entrypoint_imports(name: str, runtime_python: Path, tmp_path: Path) -> None:
    image = IMAGES[name]
    root = tmp_path / "rootfs"
    workdir, pythonpath, user = layout(chain(stages(DOCKERFILE.read_text()), name), root)
    assert user is not None and re.fullmatch(r"\d+:\d+", user), "the image must run as a numeric non-root user"
    env = {"PATH": f"{runtime_python.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": pythonpath,
           "PYTHONDONTWRITEBYTECODE": "1", "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
           "MPLCONFIGDIR": str(tmp_path / "mpl")}  # fmt: skip
    for cwd in [root / w.lstrip("/") for w in image.workdirs] or [workdir]:
        for check in image.checks:
            argv = [str(runtime_python) if a == "python" else a.replace("{tmp}", str(tmp_path)) for a in check]
            done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{' '.join(check)} in {cwd} of the {name} image:\n{done.stderr[-3000:]}"
