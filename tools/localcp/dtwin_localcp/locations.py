"""Default locations: the repository root, the run dir and the binaries' dir.

The binaries are built by `hack/build-control-plane.sh` into a version-keyed cache
outside the repository; its `--print` mode names that directory without building
anything. `DTWIN_CP_BIN_DIR` overrides it (useful for a binary set built elsewhere).
The default run dir of the CLI is `.run/cluster` under the repository root.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

BUILD_SCRIPT = Path("hack") / "build-control-plane.sh"


def repo_root() -> Path:
    """The checkout containing this package (found by its build script), else the cwd."""
    for parent in Path(__file__).resolve().parents:
        if (parent / BUILD_SCRIPT).is_file():
            return parent
    return Path.cwd()


def default_run_dir() -> Path:
    return repo_root() / ".run" / "cluster"


def default_bin_dir() -> Path:
    """`$DTWIN_CP_BIN_DIR`, else what `hack/build-control-plane.sh --print` names."""
    override = os.environ.get("DTWIN_CP_BIN_DIR")
    if override:
        return Path(override)
    root = repo_root()
    script = root / BUILD_SCRIPT
    if not script.is_file():
        raise FileNotFoundError(f"{BUILD_SCRIPT} not found above {__file__}; set DTWIN_CP_BIN_DIR")
    out = subprocess.run(["bash", str(script), "--print"], cwd=root, capture_output=True, text=True, check=True)
    return Path(out.stdout.strip().splitlines()[-1])
