"""Start, watch and stop the control plane's processes by stored PID, never by name.

Each process runs in its own session (so its PID is also its process-group id and
it is detached from the caller's terminal), with stdin from /dev/null and
stdout/stderr appended to `RUN/logs/<name>.log`; no pipe ties it to the starting
Python process, so `dtwin-localcp up` can exit and leave the plane running. The PID
and the kernel's start time of the process are written to `RUN/pids/<name>.pid`; the
start time guards against PID reuse, so a stale PID file can never make us signal
an unrelated process. Stopping sends SIGTERM to the process group, waits (10 s by
default) and then sends SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    """What a PID file holds: the PID and the process's start time in clock ticks."""

    name: str
    pid: int
    start_ticks: int | None


def logs_dir(run_dir: Path) -> Path:
    return run_dir / "logs"


def pids_dir(run_dir: Path) -> Path:
    return run_dir / "pids"


def log_path(run_dir: Path, name: str) -> Path:
    return logs_dir(run_dir) / f"{name}.log"


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time since boot), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def is_alive(record: ProcessRecord) -> bool:
    """True while the recorded process exists, is not a zombie and is the same process."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(record.pid, os.WNOHANG)  # reap it if it is our exited child
    state = _state(record.pid)
    if state is None or state in ("Z", "X"):
        return False
    return record.start_ticks is None or _start_ticks(record.pid) == record.start_ticks


def start(run_dir: Path, name: str, argv: Sequence[str | Path], env: Mapping[str, str] | None = None) -> ProcessRecord:
    """Start `argv` detached in its own session, logging to RUN/logs/<name>.log."""
    logs_dir(run_dir).mkdir(parents=True, exist_ok=True)
    pids_dir(run_dir).mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    # Loopback only: make sure no proxy setting can route a local call elsewhere.
    full_env["NO_PROXY"] = full_env["no_proxy"] = "127.0.0.1,localhost"
    with open(log_path(run_dir, name), "ab") as log:
        log.write(f"### {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(map(str, argv))}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=run_dir,
            start_new_session=True,
            close_fds=True,
        )
    record = ProcessRecord(name, proc.pid, _start_ticks(proc.pid))
    pid_file = pids_dir(run_dir) / f"{name}.pid"
    pid_file.write_text(f"{record.pid}\n{record.start_ticks or ''}\n")
    return record


def read_record(run_dir: Path, name: str) -> ProcessRecord | None:
    """The record in RUN/pids/<name>.pid, or None when there is none."""
    try:
        lines = (pids_dir(run_dir) / f"{name}.pid").read_text().split("\n")
    except FileNotFoundError:
        return None
    ticks = lines[1].strip() if len(lines) > 1 else ""
    return ProcessRecord(name, int(lines[0]), int(ticks) if ticks else None)


def read_records(run_dir: Path) -> list[ProcessRecord]:
    """All PID files of a run dir, sorted by name."""
    if not pids_dir(run_dir).is_dir():
        return []
    records = [read_record(run_dir, p.stem) for p in sorted(pids_dir(run_dir).glob("*.pid"))]
    return [r for r in records if r is not None]


def _signal(record: ProcessRecord, sig: signal.Signals) -> None:
    if not is_alive(record):
        return
    with contextlib.suppress(ProcessLookupError):
        # Signal the whole group only if the process still leads its own group
        # (it was started with start_new_session=True); otherwise just the PID.
        if os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
        else:
            os.kill(record.pid, sig)


def stop(run_dir: Path, name: str, grace: float = 10.0) -> bool:
    """SIGTERM, wait up to `grace` s, then SIGKILL. Returns True if it had been running."""
    record = read_record(run_dir, name)
    if record is None:
        return False
    was_alive = is_alive(record)
    if was_alive:
        _signal(record, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while is_alive(record) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_alive(record):
            _signal(record, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while is_alive(record) and time.monotonic() < deadline:
                time.sleep(0.05)
        if is_alive(record):
            raise RuntimeError(f"{name} (pid {record.pid}) survived SIGKILL")
    (pids_dir(run_dir) / f"{name}.pid").unlink(missing_ok=True)
    return was_alive


def tail(run_dir: Path, name: str, lines: int = 40) -> str:
    """The last `lines` lines of a process log (empty if there is none)."""
    try:
        data = log_path(run_dir, name).read_bytes()[-64 * 1024 :]
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def rss_bytes(pid: int) -> int:
    """Resident set size of one process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
