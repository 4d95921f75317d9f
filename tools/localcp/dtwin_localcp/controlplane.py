"""`ControlPlane`: a real Kubernetes control plane as local processes on 127.0.0.1.

`start()` generates fresh PKI and tokens in a run dir, then starts etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and (with `with_nodes`)
KWOK with one fake Node, waiting at each step until the component really works:
etcd `/health`, apiserver `/readyz`, the `default` ServiceAccount (proves the
controller manager runs) and finally the Node `Ready` without the not-ready taint
(proves KWOK and the node-lifecycle controller), so Deployments can become
Available. Every wait has a deadline and fails with the tail of the relevant log;
a failed start stops what it had started and keeps the logs. `attach()` reconnects
to a plane started earlier (e.g. by `dtwin-localcp up`) from its run dir, and
`stop()` always works from the PID files alone.

Run dir layout: `kubeconfig` (admin), `kubeconfigs/`, `pki/`, `etcd/`, `logs/`,
`pids/`, `kwok/` and `state.json` (ports, bin dir).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from dtwin_localcp import flags, pki, ports, processes
from dtwin_localcp.kubeapi import KubeAPI, WaitTimeoutError, wait_until

log = logging.getLogger("dtwin_localcp")

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
REQUIRED_BINARIES = (*COMPONENTS, "kubectl")
#: Entries of a run dir that start() replaces; nothing else in it is touched.
_RUN_ENTRIES = ("etcd", "pki", "pids", "logs", "kubeconfigs", "kwok", "kubeconfig", "state.json")


class ControlPlaneError(RuntimeError):
    """The plane could not be started, attached to or stopped."""


def stop_run_dir(run_dir: Path, grace: float = 10.0) -> list[str]:
    """Stop every process recorded in `run_dir/pids`, in reverse start order.

    Returns the names of the processes that were still running.
    """
    names = [r.name for r in processes.read_records(run_dir)]
    order = [c for c in reversed(COMPONENTS) if c in names] + [n for n in names if n not in COMPONENTS]
    stopped = []
    for name in order:
        if processes.stop(run_dir, name, grace=grace):
            log.info("stopped %s", name)
            stopped.append(name)
    return stopped


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler (+ KWOK) on loopback."""

    etcd_timeout = 30.0
    apiserver_timeout = 90.0
    controllers_timeout = 60.0
    node_timeout = 60.0

    def __init__(self, run_dir: Path, bin_dir: Path, *, with_nodes: bool = True) -> None:
        self.run_dir = run_dir.resolve()
        self.bin_dir = bin_dir.resolve()
        self.with_nodes = with_nodes
        self.timings: dict[str, float] = {}
        self._ports: flags.Ports | None = None
        self._owned = False

    # ----------------------------------------------------------------- paths
    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (token auth, `system:masters`)."""
        return self.run_dir / "kubeconfig"

    @property
    def logs_dir(self) -> Path:
        return processes.logs_dir(self.run_dir)

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    @property
    def server(self) -> str:
        if self._ports is None:
            raise ControlPlaneError("the control plane has not been started or attached")
        return self._ports.apiserver_url

    def api(self) -> KubeAPI:
        """A JSON client for the apiserver with the admin token."""
        return KubeAPI.from_kubeconfig(self.kubeconfig)

    # ----------------------------------------------------------------- state
    def pids(self) -> dict[str, int]:
        """PIDs of the recorded processes that are alive."""
        return {r.name: r.pid for r in processes.read_records(self.run_dir) if processes.is_alive(r)}

    def rss_bytes(self) -> int:
        """Summed resident memory of the plane's live processes."""
        return sum(processes.rss_bytes(pid) for pid in self.pids().values())

    def is_ready(self) -> bool:
        return self.kubeconfig.is_file() and self.api().readyz()

    @classmethod
    def attach(cls, run_dir: Path) -> ControlPlane:
        """Reconnect to a plane started earlier in `run_dir`; raises unless /readyz is ok."""
        state_file = run_dir / "state.json"
        if not state_file.is_file():
            raise ControlPlaneError(f"no control plane state in {run_dir}")
        try:
            state = json.loads(state_file.read_text())
            plane = cls(run_dir, Path(state["bin_dir"]), with_nodes=state["with_nodes"])
            plane._ports = flags.Ports(**state["ports"])
            ready = plane.is_ready()
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as err:
            raise ControlPlaneError(f"unreadable control plane state in {run_dir}: {err!r}") from err
        if not ready:
            raise ControlPlaneError(f"the control plane in {run_dir} is not ready (/readyz failed)")
        return plane

    # ----------------------------------------------------------------- start
    def _check_binaries(self) -> None:
        needed = [*REQUIRED_BINARIES] if self.with_nodes else [b for b in REQUIRED_BINARIES if b != "kwok"]
        missing = [b for b in needed if not (self.bin_dir / b).is_file()]
        if self.with_nodes and not (self.bin_dir / "kwok-stages").is_dir():
            missing.append("kwok-stages/")
        if missing:
            raise ControlPlaneError(
                f"missing in {self.bin_dir}: {', '.join(missing)}; build them with hack/build-control-plane.sh"
            )

    def _prepare_run_dir(self) -> None:
        alive = self.pids()
        if alive:
            raise ControlPlaneError(f"a control plane is already running in {self.run_dir}: {alive}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for entry in _RUN_ENTRIES:
            path = self.run_dir / entry
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _tail(self, *names: str) -> str:
        parts = []
        for name in names:
            parts.append(f"--- last lines of {processes.log_path(self.run_dir, name)} ---")
            parts.append(processes.tail(self.run_dir, name) or "(empty)")
        return "\n".join(parts)

    def _launch(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> processes.ProcessRecord:
        record = processes.start(self.run_dir, name, argv, env=env)
        log.info("started %s (pid %d)", name, record.pid)
        return record

    def _await(self, step: str, condition: Callable[[], Any], timeout: float, *logs: str) -> None:
        """Wait for `condition` while the processes behind `logs` stay alive; time the step."""
        t0 = time.monotonic()

        def check() -> Any:
            for name in logs:
                record = processes.read_record(self.run_dir, name)
                if record is None or not processes.is_alive(record):
                    raise ControlPlaneError(f"{name} exited while waiting for {step}\n{self._tail(name)}")
            return condition()

        try:
            wait_until(check, timeout, step, on_timeout=lambda: self._tail(*logs))
        except WaitTimeoutError as err:
            raise ControlPlaneError(str(err)) from err
        self.timings[step] = time.monotonic() - t0
        log.info("%s after %.1f s", step, self.timings[step])

    def start(self) -> None:
        """Start all components and return once the plane is usable (see module doc)."""
        self._check_binaries()
        self._prepare_run_dir()
        self._owned = True
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            log.error("control plane start failed; logs kept in %s", self.logs_dir)
            stop_run_dir(self.run_dir, grace=5.0)
            raise
        self.timings["total"] = time.monotonic() - t0
        log.info("control plane ready in %.1f s; kubeconfig: %s", self.timings["total"], self.kubeconfig)

    def _start(self) -> None:
        creds = pki.generate(self.run_dir / "pki")
        etcd_client, etcd_peer, api_port = ports.free_ports(3)
        self._ports = p = flags.Ports(etcd_client, etcd_peer, api_port)
        state = {"bin_dir": str(self.bin_dir), "with_nodes": self.with_nodes, "ports": vars(p)}
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        self._write_kubeconfigs(creds)

        self._launch("etcd", flags.etcd_args(self.bin_dir, self.run_dir / "etcd", p))
        self._await("etcd healthy", lambda: self._etcd_healthy(p.etcd_url), self.etcd_timeout, "etcd")

        self._launch("kube-apiserver", flags.apiserver_args(self.bin_dir, creds, p))
        api = self.api()
        self._await("kube-apiserver ready", api.readyz, self.apiserver_timeout, "kube-apiserver", "etcd")

        kcm_kubeconfig = self.run_dir / "kubeconfigs" / "controller-manager.kubeconfig"
        self._launch("kube-controller-manager", flags.controller_manager_args(self.bin_dir, creds, kcm_kubeconfig))
        scheduler_kubeconfig = self.run_dir / "kubeconfigs" / "scheduler.kubeconfig"
        self._launch("kube-scheduler", flags.scheduler_args(self.bin_dir, scheduler_kubeconfig))
        sa_path = "/api/v1/namespaces/default/serviceaccounts/default"
        self._await(
            "default ServiceAccount",
            lambda: api.get(sa_path)[0] == 200,
            self.controllers_timeout,
            "kube-controller-manager",
            "kube-scheduler",
            "kube-apiserver",
        )
        if self.with_nodes:
            self._start_kwok(api)

    def _start_kwok(self, api: KubeAPI) -> None:
        workdir = self.run_dir / "kwok"
        workdir.mkdir(exist_ok=True)
        env = dict(os.environ, KWOK_WORKDIR=str(workdir))  # keeps ~/.kwok/kwok.yaml out
        self._launch("kwok", flags.kwok_args(self.bin_dir, self.run_dir / "kubeconfigs" / "kwok.kubeconfig"), env)
        status, body = api.request("POST", "/api/v1/nodes", flags.node_manifest())
        if status not in (201, 409):
            raise ControlPlaneError(f"creating Node {flags.NODE_NAME} failed: HTTP {status}: {body}")
        self._await(
            f"Node {flags.NODE_NAME} Ready and untainted",
            lambda: self._node_schedulable(api),
            self.node_timeout,
            "kwok",
            "kube-controller-manager",
        )

    def _write_kubeconfigs(self, creds: pki.Pki) -> None:
        (self.run_dir / "kubeconfigs").mkdir(exist_ok=True)
        for name, token in creds.tokens.items():
            user = pki.IDENTITIES[name][0]
            text = pki.render_kubeconfig(self.server, creds.ca_cert, token, user)
            path = self.kubeconfig if name == "admin" else self.run_dir / "kubeconfigs" / f"{name}.kubeconfig"
            path.write_text(text)
            path.chmod(0o600)

    @staticmethod
    def _etcd_healthy(url: str) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url + "/health", timeout=2) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    @staticmethod
    def _node_schedulable(api: KubeAPI) -> bool:
        status, node = api.get(f"/api/v1/nodes/{flags.NODE_NAME}")
        if status != 200:
            return False
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in node.get("status", {}).get("conditions", [])
        )
        blocking = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
        tainted = any(t.get("key") in blocking for t in node.get("spec", {}).get("taints", []) or [])
        return ready and not tainted

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Stop every process of this run dir by its stored PID (SIGTERM, then SIGKILL)."""
        t0 = time.monotonic()
        stop_run_dir(self.run_dir)
        log.info("control plane stopped in %.1f s", time.monotonic() - t0)

    def __enter__(self) -> ControlPlane:
        if self._ports is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owned:
            self.stop()
