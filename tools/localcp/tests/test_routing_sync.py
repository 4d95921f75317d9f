"""Embedded mode's routing sync against the real API server: a routing ConfigMap becomes the bridge's file, and
an edit replaces the file atomically (a new inode, which is what the bridge's reloader watches for)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from kubernetes import client, config

from dtwin_localcp import routing_sync
from dtwin_localcp.kopf_process import ROOT
from dtwin_localcp.kubeapi import wait_until


def routing_cm(ns: str, site: str, text: str) -> client.V1ConfigMap:
    labels = {"app.kubernetes.io/name": "dtwin-bridge", "app.kubernetes.io/part-of": "dtwin",
              "app.kubernetes.io/instance": site}  # fmt: skip
    meta = client.V1ObjectMeta(name=f"dtwin-bridge-{site}-routing", namespace=ns, labels=labels)
    return client.V1ConfigMap(metadata=meta, data={"routing.json": text})


def test_configmap_edits_reach_the_local_file(kubeconfig: Path, tmp_path: Path) -> None:
    config.load_kube_config(str(kubeconfig))
    core = client.CoreV1Api()
    ns, site = f"sync-{uuid.uuid4().hex[:6]}", "hq"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_config_map(ns, routing_cm(ns, site, '{"version": 1}'))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(ROOT / "tools/localcp")}
    log = (tmp_path / "sync.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "dtwin_localcp.routing_sync", str(tmp_path)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    path = tmp_path / f"bridge-{ns}-{site}.json"
    try:
        wait_until(lambda: path.is_file() and path.read_text() == '{"version": 1}', 30, "the first sync")
        inode = path.stat().st_ino
        core.patch_namespaced_config_map(f"dtwin-bridge-{site}-routing", ns, {"data": {"routing.json": '{"v": 2}'}})
        wait_until(lambda: path.read_text() == '{"v": 2}', 30, "the edit to reach the file")
        assert path.stat().st_ino != inode, "replaced in place: the bridge's reloader would miss it"
        other = routing_cm(ns, "x", "{}")
        other.metadata.name = "dtwin-bridge-x-dashboard"  # same labels, not a routing table
        core.create_namespaced_config_map(ns, other)
        core.patch_namespaced_config_map(f"dtwin-bridge-{site}-routing", ns, {"data": {"routing.json": '{"v": 3}'}})
        wait_until(lambda: path.read_text() == '{"v": 3}', 30, "a later edit")
        assert not (tmp_path / f"bridge-{ns}-x.json").exists()
    finally:
        proc.terminate()
        proc.wait(10)
        core.delete_namespace(ns)


def test_write_if_changed_leaves_an_equal_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    assert routing_sync.write_if_changed(path, "a") is True
    inode = path.stat().st_ino
    assert routing_sync.write_if_changed(path, "a") is False
    assert path.stat().st_ino == inode
    assert routing_sync.write_if_changed(path, "b") is True and path.read_text() == "b"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind
