"""Embedded mode's bridges get what their heartbeat Lease needs: a kubeconfig and their Site's namespace."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dtwin_localcp import dataplane


def test_the_embedded_kubeconfig_is_found_next_to_the_dataplane_dir(tmp_path: Path) -> None:
    (tmp_path / "cluster").mkdir()
    (tmp_path / "cluster" / "kubeconfig").write_text("apiVersion: v1\n")
    assert dataplane._kubeconfig(tmp_path / "dataplane", None) == tmp_path / "cluster" / "kubeconfig"
    assert dataplane._kubeconfig(tmp_path / "dataplane", Path("/x")) == Path("/x")  # a given one wins


def test_without_a_kubeconfig_the_bridges_run_without_heartbeat(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dtwin"):
        assert dataplane._kubeconfig(tmp_path / "dataplane", None) is None
    assert "without a heartbeat Lease" in caplog.text
    assert dataplane.env({})["KUBECONFIG"] == "/dev/null"


def test_env_carries_the_kubeconfig_and_the_lease_namespace() -> None:
    env = dataplane.env({"DTWIN_BRIDGE_LEASE_NAMESPACE": "plant"}, Path("/run/cluster/kubeconfig"))
    assert env["KUBECONFIG"] == "/run/cluster/kubeconfig"
    assert env["DTWIN_BRIDGE_LEASE_NAMESPACE"] == "plant"
    assert "services/bridge" in env["PYTHONPATH"] and "libs/dtwin_core" in env["PYTHONPATH"]
