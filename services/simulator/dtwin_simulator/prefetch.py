"""Generate the stream in a child process while this one publishes: a second core for fast replays.

At `--speed max` one thread spends about as long computing a message (~60 µs) as paho spends publishing it at
QoS 1 (~100 µs); side by side they measured 10,000 msg/s against 5,500 in one thread on the 2-core box. A
spawned child runs `stream.messages` and hands chunks through a bounded queue (it blocks when the publisher
falls behind, so memory stays flat); the parent yields them in order, so the bytes are the same either way.
The child is spawned, not forked, because the parent may already hold paho sockets and threads; spawning
re-imports the parent's `__main__`, which must therefore be a guarded module (`python -m dtwin_simulator` is).
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import traceback
from collections.abc import Iterator
from typing import Any

from dtwin_simulator import stream
from dtwin_simulator.faults import Fault
from dtwin_simulator.fleet import Fleet

_END = "end"


def _produce(
    out: Any, fleet: Fleet, faults: tuple[Fault, ...], seed: object, span: tuple[int, int], chunk: int
) -> None:
    try:
        buf: list[stream.Message] = []
        for msg in stream.messages(fleet, faults, seed=seed, start_ms=span[0], end_ms=span[1]):
            buf.append(msg)
            if len(buf) >= chunk:
                out.put(buf)
                buf = []
        out.put(buf)
        out.put(_END)
    except BaseException:
        out.put(("error", traceback.format_exc()))


def messages(
    fleet: Fleet,
    faults: tuple[Fault, ...] = (),
    *,
    seed: object,
    start_ms: int,
    end_ms: int,
    chunk: int = 1000,
    depth: int = 32,
) -> Iterator[stream.Message]:
    """`stream.messages(...)`, computed in a child process `chunk` messages at a time, at most `depth` ahead."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=depth)
    child = ctx.Process(target=_produce, args=(q, fleet, faults, seed, (start_ms, end_ms), chunk), daemon=True)
    child.start()
    try:
        while True:
            try:
                item = q.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(
                        f"the stream generator process exited with code {child.exitcode}; try --no-prefetch"
                    ) from None
                continue
            if item == _END:
                return
            if isinstance(item, tuple):
                raise RuntimeError(f"the stream generator failed:\n{item[1]}")
            yield from item
    finally:
        if child.is_alive():
            child.terminate()
        child.join(5)
