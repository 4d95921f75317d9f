"""Embedded mode's stand-in for kubelet and cluster DNS of the model servers: the operator's serving Deployments run
as local `bentoml serve` processes, and the scorer reads routing tables that point at them.

In a cluster a ModelDeployment's Deployment `dtwin-model-<name>` (and `-canary`) runs the BentoML image and the
scorer reaches it at `http://dtwin-model-<name>.<ns>.svc:3000`. Here KWOK's pods are fake, so this process:

- runs each serving Deployment's container command locally, from the rendered template itself (command, env,
  workingDir): `/app/bentos/<task>` is the checkout's `bentos/<task>`, `/models` the local model store, and port
  3000 a free local port. A changed template (a new version: `kubectl edit modeldeployment`) restarts the process;
  a Deployment gone (canary rolled back or removed) stops it;
- copies each routing ConfigMap `dtwin-model-<name>-routing` to `<dir>/routing/<ns>.<name>.json` with the
  Service URLs replaced by the local ones, atomically (what `dtwin_localcp.routing_sync` does for the bridges).

Run: `python -m dtwin_localcp.serving_sync DIR MODEL_STORE` with KUBECONFIG set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client, config

from dtwin_localcp import ports, processes
from dtwin_localcp.locations import repo_root
from dtwin_localcp.routing_sync import write_if_changed

log = logging.getLogger("dtwin.serving_sync")
SELECTOR = "app.kubernetes.io/name=dtwin-model,app.kubernetes.io/part-of=dtwin"
POLL_S = 2.0
CONTAINER_PORT = "3000"


def process_name(namespace: str, deployment: str) -> str:
    return f"model-{namespace}.{deployment}"


def local_argv(container: dict[str, Any], port: int) -> list[str]:
    """The container's command with the local `bentoml` and port."""
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    if argv and argv[0] == "bentoml":
        argv[0] = str(Path(sys.executable).with_name("bentoml"))
    return [str(port) if a == CONTAINER_PORT and i and argv[i - 1] == "--port" else a for i, a in enumerate(argv)]


def local_env(container: dict[str, Any], store: Path) -> dict[str, str]:
    out = {e["name"]: str(e.get("value", "")) for e in container.get("env") or [] if "value" in e}
    out["BENTOML_HOME"] = str(store)
    return out


def local_workdir(container: dict[str, Any]) -> Path:
    wd = container.get("workingDir") or "/app/bentos"
    return repo_root() / wd.removeprefix("/app/")


def template_key(container: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]


def local_routing(routing: dict[str, Any], namespace: str, urls: dict[str, str]) -> dict[str, Any]:
    """`routing` with each track's Service URL replaced by the local server of the Deployment of that name."""
    out = dict(routing)
    for track in ("stable", "canary"):
        spec = routing.get(track)
        if not spec:
            continue
        host = urlsplit(spec["url"]).hostname or ""
        deployment = host.split(".")[0]
        out[track] = {**spec, "url": urls.get(f"{namespace}/{deployment}", spec["url"])}
    return out


def crash_delay(crashes: int) -> float:
    """kubelet's CrashLoopBackOff: 10 s after the first crash, doubling, at most 5 minutes."""
    return min(10.0 * 2 ** max(crashes - 1, 0), 300.0)


class Sync:
    def __init__(self, directory: Path, store: Path) -> None:
        self.dir, self.store = directory, store
        self.running: dict[str, str] = {}  # ns/deployment -> template key
        self.urls: dict[str, str] = {}
        self.ports: dict[str, int] = {}  # a Deployment keeps its port across restarts: its URL stays put
        self.crashes: dict[str, tuple[int, float]] = {}  # ns/deployment -> (crashes in a row, restart not before)

    def _start(self, ns: str, name: str, container: dict[str, Any]) -> None:
        proc = process_name(ns, name)
        processes.stop(self.dir, proc)
        port = self.ports.setdefault(f"{ns}/{name}", ports.free_port())
        env = {**os.environ, **local_env(container, self.store), "PYTHONUNBUFFERED": "1"}
        argv = local_argv(container, port)
        wd = local_workdir(container)
        # processes.start runs in the run dir; bentoml serve needs the bento's folder (service:Class is relative).
        processes.start(self.dir, proc, ["/bin/sh", "-c", f'cd "{wd}" && exec "$@"', "sh", *argv], env)
        self.urls[f"{ns}/{name}"] = f"http://127.0.0.1:{port}"
        (self.dir / f"{proc}.port").write_text(str(port))
        log.info("%s/%s: %s on :%d (%s)", ns, name, " ".join(argv[1:3]), port, env.get("DTWIN_MODEL_TAG"))

    def deployments(self, apps: client.AppsV1Api) -> None:
        seen = set()
        listed = client.ApiClient().sanitize_for_serialization(
            apps.list_deployment_for_all_namespaces(label_selector=SELECTOR)
        )
        for dep in listed.get("items") or []:
            ns, name = str(dep["metadata"]["namespace"]), str(dep["metadata"]["name"])
            container = dep["spec"]["template"]["spec"]["containers"][0]
            key, ref = template_key(container), f"{ns}/{name}"
            seen.add(ref)
            record = processes.read_record(self.dir, process_name(ns, name))
            if self.running.get(ref) != key:  # new, or a new template (version): start at once
                self.crashes.pop(ref, None)
                self._start(ns, name, container)
                self.running[ref] = key
            elif record is None or not processes.is_alive(record):  # crashed (e.g. its model is not in the store)
                crashes, not_before = self.crashes.get(ref, (0, 0.0))
                if time.monotonic() >= not_before:
                    self.crashes[ref] = (crashes + 1, time.monotonic() + crash_delay(crashes + 1))
                    log.warning("%s: server exited; restart %d (see its log)", ref, crashes + 1)
                    self._start(ns, name, container)
        for ref in set(self.running) - seen:
            ns, name = ref.split("/", 1)
            processes.stop(self.dir, process_name(ns, name))
            self.running.pop(ref)
            self.urls.pop(ref, None)
            self.ports.pop(ref, None)
            self.crashes.pop(ref, None)
            log.info("%s: Deployment gone, server stopped", ref)

    def routing(self, core: client.CoreV1Api) -> None:
        out = self.dir / "routing"
        out.mkdir(parents=True, exist_ok=True)
        wanted = set()
        listed = client.ApiClient().sanitize_for_serialization(
            core.list_config_map_for_all_namespaces(label_selector=SELECTOR)
        )
        for cm in listed.get("items") or []:
            text = (cm.get("data") or {}).get("routing.json")
            if not text:
                continue
            ns, routing = str(cm["metadata"]["namespace"]), json.loads(text)
            path = out / f"{ns}.{routing['name']}.json"
            wanted.add(path)
            body = json.dumps(local_routing(routing, ns, self.urls), sort_keys=True, indent=1)
            if write_if_changed(path, body):
                log.info("routing %s/%s -> %s", ns, cm["metadata"]["name"], path)
        for stale in set(out.glob("*.json")) - wanted:
            stale.unlink()


def run(directory: Path, store: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    config.load_kube_config(os.environ.get("KUBECONFIG"))
    apps, core = client.AppsV1Api(), client.CoreV1Api()
    sync = Sync(directory, store)
    while True:
        try:
            sync.deployments(apps)
            sync.routing(core)
        except Exception as err:  # the API server restarting: try again on the next tick
            log.warning("serving sync interrupted (%s)", err)
        time.sleep(POLL_S)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(sys.argv) != 3:
        sys.exit("usage: python -m dtwin_localcp.serving_sync DIR MODEL_STORE   (KUBECONFIG names the cluster)")
    run(Path(sys.argv[1]), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
