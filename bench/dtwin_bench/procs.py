"""The processes a case runs: dtwin's bridge replicas, an anchor bridge, and the Go publisher.

`DtwinBridges` starts N real `python -m dtwin_bridge run` processes on one Site (env as
`dtwin_localcp.bridge_harness.BridgeProcess` sets it; replicas r0..rN-1 share the Site's `$share` group)
and calls them ready once every replica has taken a probe message off its queue (its
`dtwin_bridge_messages_received` counter) and a probe reading is stored. `AnchorBridge` runs
`bridge_naive.py` / `bridge_good.py` from a copy of the anchors, dialled to our servers by
`ANCHOR_MQTT_PORT` / `ANCHOR_PG_PORT`. `publish` runs tools/mqttload and returns its JSON report.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from dtwin_bench import workload
from dtwin_bench.site import BenchSite
from dtwin_localcp import ports

ROOT = Path(__file__).resolve().parents[2]


class DtwinBridges:
    def __init__(self, site: BenchSite, replicas: int, env: dict[str, str] | None = None) -> None:
        self.site, self.replicas = site, replicas
        self.metrics_ports = [ports.free_port() for _ in range(replicas)]
        self.logs = [site.dir / f"bridge-r{i}.log" for i in range(replicas)]
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("services/bridge", "libs/dtwin_core")),
            "DTWIN_BRIDGE_DATABASE_URL": site.dsn_template,
            "DTWIN_BRIDGE_METRICS_HOST": "127.0.0.1",
            **(env or {}),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for i, (port, log) in enumerate(zip(self.metrics_ports, self.logs, strict=True)):
            argv = [sys.executable, "-m", "dtwin_bridge", "run", "--routing", str(self.site.path),
                    "--metrics-port", str(port)]  # fmt: skip
            with log.open("ab") as out:
                env = {**self.env, "DTWIN_BRIDGE_REPLICA": f"r{i}"}
                self.procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def received(self, i: int) -> float | None:
        """Replica i's received-messages counter, or None when its metrics endpoint does not answer."""
        url = f"http://127.0.0.1:{self.metrics_ports[i]}/metrics"
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "dtwin_bridge_messages_received_total" and s.labels.get("site") == self.site.name:
                    return float(s.value)
        return 0.0

    def wait_ready(self, broker_port: int, timeout: float = 90.0) -> None:
        """Probe until every replica has received a message and a probe reading is committed."""
        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{uuid.uuid4().hex[:6]}",
                          protocol=paho.MQTTv5)  # fmt: skip
        pub.connect("127.0.0.1", broker_port)
        pub.loop_start()
        probe = workload.probe_sensor(self.site.name)
        deadline, k = time.monotonic() + timeout, 0
        try:
            while time.monotonic() < deadline:
                self.check_alive()
                k += 1
                body = json.dumps({"ts": time.time() - 3600 - k / 1000, "v": 1}).encode()
                pub.publish(workload.probe_topic(self.site.name), body, qos=1)
                time.sleep(0.2)
                got = [self.received(i) for i in range(self.replicas)]
                stored = self.site.query("SELECT count(*) FROM SCHEMA.telemetry WHERE sensor = %s", probe)[0][0]
                if stored and all(g for g in got):
                    return
            raise RuntimeError(f"bridges of {self.site.name} not ready after {timeout:.0f} s{self.tail()}")
        finally:
            pub.loop_stop()
            pub.disconnect()

    def check_alive(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() is not None:
                raise RuntimeError(f"bridge r{i} exited with {p.returncode}{self.tail()}")

    def stop(self, broker_port: int) -> list[int | None]:
        """SIGTERM (the bridge commits and acks what it took), then drop the replicas' persistent sessions."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for p in self.procs:
            try:
                codes.append(p.wait(30))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
                codes.append(None)
        for i in range(self.replicas):  # clean_start + session expiry 0: the broker forgets the session
            with contextlib.suppress(OSError):
                c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"dtwin-bridge-{self.site.name}-r{i}",
                                protocol=paho.MQTTv5)  # fmt: skip
                c.connect("127.0.0.1", broker_port, clean_start=True)
                c.disconnect()
        return codes

    def tail(self, lines: int = 25) -> str:
        out = []
        for log in self.logs:
            if log.exists():
                text = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
                out.append(f"\n--- {log} ---\n{text}")
        return "".join(out)


class AnchorBridge:
    """One of the anchors' reference bridges, run from their copy in `anchor_dir`."""

    def __init__(self, anchor_dir: Path, script: str, args: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.log, self.name = log, script
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, script, *args], cwd=anchor_dir, env={**os.environ, **env},
                                         stdout=out, stderr=subprocess.STDOUT)  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for(self, token: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if token in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not print {token}:\n{self.text()[-2000:]}")

    def finish(self, timeout: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise RuntimeError(f"{self.name} overran {timeout:.0f} s:\n{self.text()[-2000:]}") from None
        for line in self.text().splitlines():
            if line.startswith("RESULT "):
                return dict(json.loads(line[7:]))
        raise RuntimeError(f"{self.name} printed no RESULT:\n{self.text()[-2000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def publish(binary: Path, args: Sequence[str], timeout: float, stdin: bytes | None = None) -> dict[str, Any]:
    """Run mqttload to the end; its last stdout line is the JSON report."""
    out = subprocess.run([str(binary), *args], input=stdin, capture_output=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"mqttload failed ({out.returncode}): {out.stderr.decode(errors='replace')[-2000:]}")
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


def dump(binary: Path, args: Sequence[str], k: int = 3) -> list[tuple[str, bytes]]:
    """The first k messages mqttload would send with `args` (nothing is sent)."""
    out = subprocess.run([str(binary), *args, "-dump", str(k)], capture_output=True, timeout=60, check=True)
    recs = [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]
    return [(r["topic"], base64.b64decode(r["payload_b64"])) for r in recs]
