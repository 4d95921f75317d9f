"""pytest fixtures `control_plane` and `kubeconfig` (session scope).

Loaded from the root `conftest.py` (`pytest_plugins = ["dtwin_localcp.pytest_plugin"]`).
If `DTWIN_KUBECONFIG` names the kubeconfig of a live plane (e.g. one started by
`make cluster-up`, whose run dir holds `state.json` next to the kubeconfig), the
session reuses it and never stops it. Otherwise a fresh `ControlPlane` is started in
`/tmp/dtwin-cp-*` and stopped at the end of the session; its run dir (with the
process logs) is deleted only when no test failed, and its path is printed in the
terminal summary otherwise. `kubeconfig` also exports `KUBECONFIG` for the session.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dtwin_localcp.controlplane import ControlPlane, ControlPlaneError
from dtwin_localcp.locations import default_bin_dir

log = logging.getLogger("dtwin_localcp")
_KEPT_RUN_DIR = pytest.StashKey[Path]()


def _attach_from_env() -> ControlPlane | None:
    env = os.environ.get("DTWIN_KUBECONFIG")
    if not env:
        return None
    path = Path(env)
    if not path.is_file():
        log.warning("DTWIN_KUBECONFIG=%s does not exist; starting a fresh control plane", env)
        return None
    try:
        return ControlPlane.attach(path.resolve().parent)
    except ControlPlaneError as err:
        log.warning("DTWIN_KUBECONFIG=%s is not a live plane (%s); starting a fresh one", env, err)
        return None


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A ready control plane: reused from DTWIN_KUBECONFIG, or started for this session."""
    attached = _attach_from_env()
    if attached is not None:
        yield attached
        return
    run_dir = Path(tempfile.mkdtemp(prefix="dtwin-cp-", dir="/tmp"))
    plane = ControlPlane(run_dir, default_bin_dir())
    try:
        plane.start()
    except ControlPlaneError as err:
        request.config.stash[_KEPT_RUN_DIR] = run_dir
        pytest.fail(f"the local control plane did not start (logs in {plane.logs_dir}):\n{err}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()
        if request.session.testsfailed:
            request.config.stash[_KEPT_RUN_DIR] = run_dir
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Iterator[Path]:
    """Path of the plane's admin kubeconfig; `KUBECONFIG` points at it for the session."""
    previous = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(control_plane.kubeconfig)
    try:
        yield control_plane.kubeconfig
    finally:
        if previous is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = previous


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    run_dir = config.stash.get(_KEPT_RUN_DIR, None)
    if run_dir is not None:
        terminalreporter.write_line(f"dtwin_localcp: control plane run dir kept for inspection: {run_dir}")
        terminalreporter.write_line(f"dtwin_localcp: process logs: {run_dir / 'logs'}")
