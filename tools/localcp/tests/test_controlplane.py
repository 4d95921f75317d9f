"""End-to-end tests of the local control plane (real etcd, apiserver, controllers and KWOK).

They use the session fixture `control_plane` (or a plane of their own where the
test must stop it) and the `kubectl` built next to the other binaries. Every wait
polls a condition against a deadline; nothing sleeps a fixed time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from dtwin_localcp import ControlPlane, processes, stop_run_dir, wait_until
from dtwin_localcp.flags import NODE_NAME

pytestmark = pytest.mark.cluster
PKG_ROOT = Path(__file__).resolve().parents[1]  # tools/localcp


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [str(plane.kubectl), "--kubeconfig", str(plane.kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def kubectl_json(plane: ControlPlane, *args: str) -> Any:
    return json.loads(kubectl(plane, *args, "-o", "json"))


def deployment_manifest(namespace: str, name: str, replicas: int) -> str:
    labels = {"app": name}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "dtwin/placeholder:0"}]},
                },
            },
        }
    )


def test_kubectl_lists_the_default_namespace(control_plane: ControlPlane, kubeconfig: Path) -> None:
    assert os.environ["KUBECONFIG"] == str(kubeconfig)
    assert "namespace/default" in kubectl(control_plane, "get", "ns", "-o", "name").split()


def test_deployment_becomes_available_on_kwok_and_is_garbage_collected(control_plane: ControlPlane) -> None:
    ns, name = f"cp-test-{uuid.uuid4().hex[:8]}", "web"
    kubectl(control_plane, "create", "namespace", ns)
    try:
        kubectl(control_plane, "apply", "-f", "-", stdin=deployment_manifest(ns, name, 2))

        def available() -> bool:
            status = kubectl_json(control_plane, "-n", ns, "get", "deployment", name).get("status", {})
            conds = {c["type"]: c["status"] for c in status.get("conditions", [])}
            return status.get("availableReplicas") == 2 and conds.get("Available") == "True"

        wait_until(available, timeout=120, what=f"Deployment {ns}/{name} Available with 2 replicas", interval=0.5)
        pods = kubectl_json(control_plane, "-n", ns, "get", "pods", "-l", f"app={name}")["items"]
        assert len(pods) == 2
        assert {p["spec"]["nodeName"] for p in pods} == {NODE_NAME}
        assert all(p["status"]["phase"] == "Running" for p in pods)
        replicasets = kubectl_json(control_plane, "-n", ns, "get", "replicasets")["items"]
        assert [rs["metadata"]["ownerReferences"][0]["name"] for rs in replicasets] == [name]

        # Background cascade: kubectl only deletes the Deployment; the garbage
        # collector must delete the ReplicaSet, and then its Pods.
        kubectl(control_plane, "-n", ns, "delete", "deployment", name, "--cascade=background", "--wait=false")

        def collected() -> bool:
            left = kubectl_json(control_plane, "-n", ns, "get", "replicasets,pods")["items"]
            return not left

        wait_until(collected, timeout=90, what=f"GC of the ReplicaSet and Pods in {ns}", interval=0.5)
    finally:
        kubectl(control_plane, "delete", "namespace", ns, "--wait=false")


def test_cli_up_outlives_the_cli_and_stop_leaves_no_process(control_plane: ControlPlane, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(PKG_ROOT), os.environ.get("PYTHONPATH", "")]))
    cli = [sys.executable, "-m", "dtwin_localcp"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args, "--run-dir", str(run_dir)], env=env, capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip

    try:
        up = run("up", "--bin-dir", str(control_plane.bin_dir))
        assert up.returncode == 0, up.stderr
        assert up.stdout.strip() == str(run_dir / "kubeconfig")
        records = processes.read_records(run_dir)
        assert {r.name for r in records} == {"etcd", "kube-apiserver", "kube-controller-manager",
                                             "kube-scheduler", "kwok"}  # fmt: skip
        assert all(processes.is_alive(r) for r in records), "processes must outlive the `up` CLI"
        status = run("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "ready: https://127.0.0.1:" in status.stdout

        plane = ControlPlane.attach(run_dir)
        assert f"node/{NODE_NAME}" in kubectl(plane, "get", "nodes", "-o", "name").split()
        assert plane.rss_bytes() > 0
        plane.stop()

        assert not any(processes.is_alive(r) for r in records)
        pgids = {r.pid for r in records}
        leftovers = []
        for proc_dir in Path("/proc").glob("[0-9]*"):
            pid = int(proc_dir.name)
            try:
                if os.getpgid(pid) in pgids and processes.is_alive(processes.ProcessRecord("?", pid, None)):
                    leftovers.append(pid)
            except ProcessLookupError:
                continue
        assert not leftovers, f"processes left in the plane's process groups: {leftovers}"
        assert processes.read_records(run_dir) == []
        down = run("down")
        assert down.returncode == 0
        assert "nothing running" in down.stderr
        assert run("status").returncode == 1
    finally:
        stop_run_dir(run_dir)
