"""A real local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and KWOK with one fake Node) run as processes on 127.0.0.1, for
`make cluster-up`/`cluster-down` (see `cli`) and as a pytest fixture (see `pytest_plugin`).
"""

from dtwin_localcp.controlplane import ControlPlane, ControlPlaneError, stop_run_dir
from dtwin_localcp.kubeapi import KubeAPI, WaitTimeoutError, wait_until
from dtwin_localcp.locations import default_bin_dir, default_run_dir

__all__ = [
    "ControlPlane",
    "ControlPlaneError",
    "KubeAPI",
    "WaitTimeoutError",
    "default_bin_dir",
    "default_run_dir",
    "stop_run_dir",
    "wait_until",
]
