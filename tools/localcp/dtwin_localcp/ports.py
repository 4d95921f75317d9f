"""Free TCP ports on the loopback interface.

Every component of the local control plane listens on 127.0.0.1 only, on ports
chosen at start time so that several planes (a developer's `make cluster-up` and a
test session, or parallel CI jobs) can coexist. A port is found by binding to
port 0 and reading what the kernel assigned; all requested ports are held open
together while they are chosen, so one call never returns the same port twice.
There is an unavoidable window between closing the probe socket and the server
binding it; the callers keep it short by starting each process right after.
"""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """Return `count` distinct TCP ports that are free on 127.0.0.1 right now."""
    if count < 1:
        raise ValueError("count must be at least 1")
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """Return one TCP port that is free on 127.0.0.1 right now."""
    return free_ports(1)[0]


def port_is_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port (loopback by default)."""
    if host not in (LOOPBACK, "localhost"):
        raise ValueError(f"refusing to dial a non-loopback address: {host}")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
