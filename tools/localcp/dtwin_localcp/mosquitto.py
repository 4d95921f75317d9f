"""A real Mosquitto 2 broker as a supervised local process on 127.0.0.1, for tests and `make up`.

`Mosquitto(run_dir).start()` renders `RUN/mosquitto.conf` (one loopback listener, anonymous
access until ACLs arrive, persistence under `RUN/data/` so QoS 1 persistent sessions and their
queued messages survive a restart, queues large enough never to drop), starts `mosquitto -c`
through `processes` (log in `RUN/logs/mosquitto.log`, PID in `RUN/pids/`) and returns once a
real MQTT v5 CONNECT is accepted. Mosquitto writes its persistence file only on a clean exit
and every `autosave_interval` seconds, so `stop()`/`restart()` lose nothing while `kill()` (a
crash) loses what changed since the last save: exactly what a production broker does.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from dtwin_localcp import ports, processes
from dtwin_localcp.kubeapi import WaitTimeoutError, wait_until

NAME = "mosquitto"
AUTOSAVE_SECONDS = 60


class MosquittoError(RuntimeError):
    """The broker could not be started or stopped."""


def find_binary() -> Path:
    """`$DTWIN_MOSQUITTO_BIN`, else `mosquitto` on PATH or in /usr/sbin (not on a normal user's PATH)."""
    found = os.environ.get("DTWIN_MOSQUITTO_BIN") or shutil.which("mosquitto", path=f"{os.defpath}:/usr/sbin")
    if not found or not Path(found).is_file():
        raise MosquittoError("mosquitto not found; install it with hack/install-services.sh")
    return Path(found)


def render_config(port: int, run_dir: Path, user: str) -> str:
    """The broker's whole configuration (nothing from /etc/mosquitto is read)."""
    return f"""\
# Rendered by dtwin_localcp.mosquitto at every start; edits are overwritten.
per_listener_settings false
listener {port} 127.0.0.1
allow_anonymous true
# As root, mosquitto drops to this user; it must be able to write {run_dir}. We stay the
# user that started it (root included), since the run dir belongs to that user.
user {user}
persistence true
persistence_location {run_dir / "data"}/
persistence_file mosquitto.db
autosave_interval {AUTOSAVE_SECONDS}
# Never drop a QoS 1 message for a slow or offline persistent session (default 1000 queued),
# no byte limit, no limit on in-flight messages; the client's receive maximum still applies.
# persistent_client_expiration stays unset: sessions expire only as their clients ask (MQTT v5).
max_inflight_messages 0
max_queued_messages 1000000
max_queued_bytes 0
set_tcp_nodelay true
log_dest file {processes.log_path(run_dir, NAME)}
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
"""


def mqtt_connects(port: int, timeout: float = 2.0) -> bool:
    """True when the broker on 127.0.0.1:`port` accepts an MQTT v5 CONNECT (CONNACK success)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dtwin-probe-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    result: list[bool] = []
    client.on_connect = lambda _c, _u, _flags, reason, _props: result.append(not reason.is_failure)
    try:
        client.connect(ports.LOOPBACK, port, keepalive=10)
        deadline = time.monotonic() + timeout
        while not result and time.monotonic() < deadline:
            client.loop(timeout=0.05)
        return bool(result) and result[0]
    except OSError:
        return False
    finally:
        client.disconnect()


class Mosquitto:
    """A broker we run from `run_dir` (layout: mosquitto.conf, data/, logs/, pids/, state.json)."""

    host = ports.LOOPBACK
    start_timeout = 15.0
    stop_timeout = 15.0

    def __init__(self, run_dir: Path, port: int | None = None, binary: Path | None = None) -> None:
        self.run_dir = run_dir.resolve()
        self.port = port or 0  # chosen at the first start(), then kept so clients can reconnect
        self._binary = binary
        self.timings: dict[str, float] = {}

    @property
    def binary(self) -> Path:
        """Found on first use, so that stop() works even where mosquitto is not installed."""
        self._binary = self._binary or find_binary()
        return self._binary

    @property
    def config_path(self) -> Path:
        return self.run_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return processes.log_path(self.run_dir, NAME)

    @classmethod
    def attach(cls, run_dir: Path) -> Mosquitto:
        """The broker started earlier from `run_dir`; raises MosquittoError unless it accepts clients."""
        try:
            state = json.loads((run_dir / "state.json").read_text())
            broker = cls(run_dir, state["port"], Path(state["binary"]))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise MosquittoError(f"no Mosquitto state in {run_dir}: {err!r}") from err
        if not (broker.is_running() and mqtt_connects(broker.port)):
            raise MosquittoError(f"the Mosquitto broker of {run_dir} is not running")
        return broker

    def _tail(self) -> str:
        return f"--- last lines of {self.log_path} ---\n{processes.tail(self.run_dir, NAME)}"

    def is_running(self) -> bool:
        record = processes.read_record(self.run_dir, NAME)
        return record is not None and processes.is_alive(record)

    def start(self) -> None:
        """Start the broker; returns once an MQTT v5 client can connect."""
        if self.is_running():
            raise MosquittoError(f"Mosquitto is already running from {self.run_dir}")
        t0 = time.monotonic()
        (self.run_dir / "data").mkdir(parents=True, exist_ok=True)
        processes.logs_dir(self.run_dir).mkdir(parents=True, exist_ok=True)
        self.port = self.port or ports.free_port()
        user = pwd.getpwuid(os.geteuid()).pw_name
        self.config_path.write_text(render_config(self.port, self.run_dir, user))
        state = {"port": self.port, "binary": str(self.binary)}
        (self.run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
        record = processes.start(self.run_dir, NAME, [self.binary, "-c", self.config_path])

        def ready() -> bool:
            if not processes.is_alive(record):
                raise MosquittoError(f"mosquitto exited during startup:\n{self._tail()}")
            return mqtt_connects(self.port)

        try:
            wait_until(ready, self.start_timeout, "Mosquitto to accept MQTT connections", 0.05, self._tail)
        except (WaitTimeoutError, MosquittoError) as err:
            processes.stop(self.run_dir, NAME, grace=5)
            raise MosquittoError(str(err)) from err
        self.timings["start"] = time.monotonic() - t0

    def stop(self) -> None:
        """SIGTERM (mosquitto saves its persistence file on the way out), SIGKILL after stop_timeout."""
        processes.stop(self.run_dir, NAME, grace=self.stop_timeout)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL, as a crash would: state changed since the last autosave is lost."""
        record = processes.read_record(self.run_dir, NAME)
        if record is not None and processes.is_alive(record):
            os.kill(record.pid, signal.SIGKILL)
            wait_until(lambda: not processes.is_alive(record), 10, "the killed broker to exit")
        processes.stop(self.run_dir, NAME)  # removes the PID file
