"""Command lines of the control plane's processes, as pure functions.

Kept apart from the orchestration so the flags can be unit-tested and read in one
place. Every listener is bound to 127.0.0.1 and every URL points at 127.0.0.1. The
flags follow the shared research note `local-control-plane.md` (envtest, kwokctl
and the dinix precedent), verified with Kubernetes v1.37 and etcd v3.7.
`KCM_CONTROLLERS` lists the kube-controller-manager controllers that the platform's
tests rely on (GC, namespaces, Deployments, HPA, ServiceAccounts and the
node-lifecycle controller that lifts the not-ready taint off KWOK nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dtwin_localcp.pki import Pki

SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
NODE_NAME = "kwok-node-0"
KCM_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    "horizontal-pod-autoscaler-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",
    "endpointslice-controller",
    "job-controller",
    "statefulset-controller",
    "cronjob-controller",
    "pod-garbage-collector-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
)
#: KWOK stage files, relative to the `kwok-stages` copy next to the binaries.
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_client}"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver}"


def etcd_args(bin_dir: Path, data_dir: Path, ports: Ports) -> list[str]:
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(bin_dir / "etcd"),
        "--name=node0",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={ports.etcd_url}",
        f"--advertise-client-urls={ports.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=node0={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_args(bin_dir: Path, pki: Pki, ports: Ports) -> list[str]:
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={ports.etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={pki.dir}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--token-auth-file={pki.token_file}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--endpoint-reconciler-type=none",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_args(bin_dir: Path, pki: Pki, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        "--use-service-account-credentials=false",
        f"--controllers={','.join(KCM_CONTROLLERS)}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--horizontal-pod-autoscaler-sync-period=5s",
        "--node-monitor-period=2s",
        # KWOK's node is fake and never really fails; under load its heartbeat can miss the default
        # 50 s grace period, and node-lifecycle then marks every pod NotReady (seen in CI: Deployments
        # lost availability every ~52 s). A long grace period keeps the fake node's pods stable.
        "--node-monitor-grace-period=1h",
        "--profiling=false",
        "--v=1",
    ]


def scheduler_args(bin_dir: Path, kubeconfig: Path) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        f"--kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        "--secure-port=0",
        "--profiling=false",
        "--v=1",
    ]


def kwok_args(bin_dir: Path, kubeconfig: Path) -> list[str]:
    stages = bin_dir / "kwok-stages"
    args = [
        str(bin_dir / "kwok"),
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=true",
        "--node-ip=127.0.0.1",
        f"--cidr={POD_CIDR}",
    ]
    for stage in KWOK_STAGES:
        args += ["-c", str(stages / stage)]
    return args


def node_manifest(name: str = NODE_NAME) -> dict[str, object]:
    """The fake Node that KWOK manages (no NoSchedule taint, so Deployments land on it)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
        },
    }
