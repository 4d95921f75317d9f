"""Unit tests of the pure and cheap parts of dtwin_localcp (no control plane needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dtwin_localcp import ControlPlane, ControlPlaneError, flags, pki, ports, processes
from dtwin_localcp.kubeapi import KubeAPI, WaitTimeoutError, wait_until


def _fake_pki(tmp_path: Path) -> pki.Pki:
    return pki.Pki(tmp_path / "pki", {name: f"tok-{name}" for name in pki.IDENTITIES})


def test_kubeconfig_round_trips_through_kubeapi(tmp_path: Path) -> None:
    text = pki.render_kubeconfig("https://127.0.0.1:6443", tmp_path / "ca.crt", "s3cret", "admin")
    config = yaml.safe_load(text)
    assert config["current-context"] == "dtwin-local"
    assert config["clusters"][0]["cluster"]["certificate-authority"] == str(tmp_path / "ca.crt")
    path = tmp_path / "kubeconfig"
    path.write_text(text)
    api = KubeAPI.from_kubeconfig(path)
    assert (api.server, api.token, api.ca_file) == ("https://127.0.0.1:6443", "s3cret", tmp_path / "ca.crt")


def test_kubeapi_refuses_non_loopback_servers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        KubeAPI("https://10.0.0.1:443", "t", tmp_path / "ca.crt")


def test_token_file_puts_every_identity_in_system_masters() -> None:
    lines = pki.render_token_file({"admin": "a" * 8, "kwok": "b" * 8}).splitlines()
    assert lines == [
        'aaaaaaaa,admin,admin-uid,"system:masters"',
        'bbbbbbbb,kwok-controller,kwok-uid,"system:masters"',
    ]


def test_flags_bind_and_dial_loopback_only(tmp_path: Path) -> None:
    creds, p, kc = _fake_pki(tmp_path), flags.Ports(2379, 2380, 6443), tmp_path / "kc"
    argvs = [
        flags.etcd_args(tmp_path, tmp_path / "etcd", p),
        flags.apiserver_args(tmp_path, creds, p),
        flags.controller_manager_args(tmp_path, creds, kc),
        flags.scheduler_args(tmp_path, kc),
        flags.kwok_args(tmp_path, kc),
    ]
    for argv in argvs:
        assert not any(re.search(r"(^|[=/])0\.0\.0\.0", arg) for arg in argv), argv
        assert not any("localhost" in arg for arg in argv), argv
        for arg in argv:
            if arg.startswith(("--bind-address=", "--advertise-address=", "--node-ip=")):
                assert arg.endswith("=127.0.0.1"), arg
    etcd = flags.etcd_args(tmp_path, tmp_path / "etcd", p)
    assert "--initial-cluster=node0=http://127.0.0.1:2380" in etcd
    assert "--initial-advertise-peer-urls=http://127.0.0.1:2380" in etcd
    assert "--endpoint-reconciler-type=none" in flags.apiserver_args(tmp_path, creds, p)


def test_controller_manager_runs_the_controllers_the_platform_needs(tmp_path: Path) -> None:
    argv = flags.controller_manager_args(tmp_path, _fake_pki(tmp_path), tmp_path / "kc")
    controllers = next(a for a in argv if a.startswith("--controllers=")).split("=", 1)[1].split(",")
    for needed in ("garbage-collector-controller", "node-lifecycle-controller", "deployment-controller",
                   "replicaset-controller", "horizontal-pod-autoscaler-controller", "namespace-controller",
                   "serviceaccount-controller", "serviceaccount-token-controller"):  # fmt: skip
        assert needed in controllers


def test_kwok_stages_come_from_the_bin_dir_copy(tmp_path: Path) -> None:
    argv = flags.kwok_args(tmp_path, tmp_path / "kc")
    stages = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert len(stages) == len(flags.KWOK_STAGES)
    assert all(s.startswith(str(tmp_path / "kwok-stages")) for s in stages)


def test_node_manifest_has_no_taints() -> None:
    node = flags.node_manifest()
    assert "spec" not in node or not node["spec"]
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"  # type: ignore[index]


def test_free_ports_are_distinct_loopback_ports() -> None:
    found = ports.free_ports(5)
    assert len(set(found)) == 5
    assert not any(ports.port_is_open(p) for p in found)
    with pytest.raises(ValueError, match="non-loopback"):
        ports.port_is_open(80, host="192.0.2.1")


def test_wait_until_returns_the_value_or_times_out_with_detail() -> None:
    calls = iter([None, 0, "done"])
    assert wait_until(lambda: next(calls), timeout=5, what="x", interval=0.01) == "done"
    with pytest.raises(WaitTimeoutError, match=r"(?s)waiting for nothing.*tail here"):
        wait_until(lambda: None, timeout=0.05, what="nothing", interval=0.01, on_timeout=lambda: "tail here")


def test_processes_start_record_and_stop(tmp_path: Path) -> None:
    record = processes.start(
        tmp_path, "sleeper", [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(300)"]
    )
    assert processes.read_record(tmp_path, "sleeper") == record
    assert processes.is_alive(record)
    assert os.getpgid(record.pid) == record.pid  # own process group
    wait_until(lambda: "hi" in processes.tail(tmp_path, "sleeper"), timeout=10, what="output in the log")
    assert processes.rss_bytes(record.pid) > 0
    assert processes.stop(tmp_path, "sleeper", grace=5) is True
    assert not processes.is_alive(record)
    assert processes.read_record(tmp_path, "sleeper") is None
    assert processes.stop(tmp_path, "sleeper") is False


def test_sigterm_ignoring_process_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(300)"
    )
    record = processes.start(tmp_path, "stubborn", [sys.executable, "-c", code])
    wait_until(lambda: "ok" in processes.tail(tmp_path, "stubborn"), timeout=10, what="handler installed")
    assert processes.stop(tmp_path, "stubborn", grace=0.5) is True
    assert not processes.is_alive(record)


def test_stale_pid_file_never_signals_a_reused_pid(tmp_path: Path) -> None:
    (tmp_path / "pids").mkdir()
    me = processes.ProcessRecord("me", os.getpid(), None)
    ticks = processes._start_ticks(me.pid)
    assert ticks is not None
    (tmp_path / "pids" / "me.pid").write_text(f"{me.pid}\n{ticks + 1}\n")  # same PID, other process
    assert not processes.is_alive(processes.read_record(tmp_path, "me"))  # type: ignore[arg-type]
    assert processes.stop(tmp_path, "me") is False  # and we are still here


def test_generated_pki_verifies_for_loopback(tmp_path: Path) -> None:
    creds = pki.generate(tmp_path / "pki")
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(creds.ca_cert), str(creds.serving_cert)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(creds.serving_cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "IP Address:127.0.0.1" in text
    assert "DNS:localhost" in text
    assert oct(creds.token_file.stat().st_mode & 0o777) == "0o600"
    assert pki.load_tokens(creds.token_file) == creds.tokens
    assert creds.sa_pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_attach_refuses_a_dir_without_a_live_plane(tmp_path: Path) -> None:
    with pytest.raises(ControlPlaneError, match="no control plane state"):
        ControlPlane.attach(tmp_path)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ControlPlaneError, match="unreadable"):
        ControlPlane.attach(tmp_path)
    port = ports.free_port()  # nothing listens there
    state = {
        "bin_dir": str(tmp_path),
        "with_nodes": True,
        "ports": {"etcd_client": 1, "etcd_peer": 2, "apiserver": port},
    }
    (tmp_path / "state.json").write_text(json.dumps(state))
    (tmp_path / "kubeconfig").write_text(
        pki.render_kubeconfig(f"https://127.0.0.1:{port}", tmp_path / "ca.crt", "t", "admin")
    )
    with pytest.raises(ControlPlaneError, match="not ready"):
        ControlPlane.attach(tmp_path)
