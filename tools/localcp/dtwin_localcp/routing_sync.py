"""Embedded mode's stand-in for kubelet's ConfigMap volume: each local bridge's routing file follows its ConfigMap.

In a cluster, kubelet projects the operator's routing ConfigMap into the bridge pod and swaps the file when the
operator changes it (a SensorBinding edited with kubectl, say); the bridge's reloader notices the new inode and
reloads without a restart. `make up` runs the bridges as local processes, so this process watches the same
ConfigMaps and replaces `<dir>/bridge-<namespace>-<site>.json` the same way: a temporary file renamed over the
old one (atomic; a new inode), and only when the text changed. A watch that breaks (API server restart, expired
resourceVersion) is re-listed after a short backoff.

Run: `python -m dtwin_localcp.routing_sync DIR` with KUBECONFIG set.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

log = logging.getLogger("dtwin.routing_sync")
# The operator's labels on a Site's routing ConfigMap (dtwin_operator.labels.common(site, "bridge")).
SELECTOR = "app.kubernetes.io/name=dtwin-bridge,app.kubernetes.io/part-of=dtwin"
KEY = "routing.json"


def target(directory: Path, cm: Any) -> Path | None:
    """The local file a routing ConfigMap maps to, or None for another ConfigMap of the bridge."""
    meta = cm.metadata
    site = (meta.labels or {}).get("app.kubernetes.io/instance")
    if not site or not meta.name.endswith("-routing") or KEY not in (cm.data or {}):
        return None
    return directory / f"bridge-{meta.namespace}-{site}.json"


def write_if_changed(path: Path, text: str) -> bool:
    """Replace `path` atomically with `text`; False when it already holds exactly that."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return True


def apply(directory: Path, cm: Any) -> None:
    path = target(directory, cm)
    if path is not None and write_if_changed(path, cm.data[KEY]):
        log.info("routing table %s/%s -> %s", cm.metadata.namespace, cm.metadata.name, path)


def run(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    config.load_kube_config(os.environ.get("KUBECONFIG"))
    core = client.CoreV1Api()
    delay = 0.5
    while True:
        try:
            listed = core.list_config_map_for_all_namespaces(label_selector=SELECTOR)
            for cm in listed.items:
                apply(directory, cm)
            stream = watch.Watch().stream(
                core.list_config_map_for_all_namespaces,
                label_selector=SELECTOR,
                resource_version=listed.metadata.resource_version if listed.metadata else None,
                timeout_seconds=300,
            )
            for event in stream:
                if event["type"] in ("ADDED", "MODIFIED"):
                    apply(directory, event["object"])
            delay = 0.5
        except Exception as err:  # the API server restarting, a 410 Gone: list again
            log.warning("ConfigMap watch interrupted (%s); re-listing in %.1fs", err, delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(sys.argv) != 2:
        sys.exit("usage: python -m dtwin_localcp.routing_sync DIR   (KUBECONFIG names the cluster)")
    run(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
