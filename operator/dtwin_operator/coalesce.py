"""Coalesces concurrent reconcile requests for the same key into as few runs as possible.

Many events (a Site, its Assets, SensorBindings, owned StatefulSets) ask for the
same site reconcile. A request that arrives while a run is in progress waits;
when the run ends, one waiter runs once on behalf of all requests made so far
and the others return at once. A failed run is not counted as covering anyone.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable


class Coalescer:
    def __init__(self) -> None:
        self._locks: defaultdict[Hashable, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._requested: defaultdict[Hashable, int] = defaultdict(int)
        self._covered: defaultdict[Hashable, int] = defaultdict(int)

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[None]]) -> bool:
        """Run `fn` unless a run that started after this request already covered it. True if it ran."""
        self._requested[key] += 1
        ticket = self._requested[key]
        async with self._locks[key]:
            if self._covered[key] >= ticket:
                return False
            before, self._covered[key] = self._covered[key], self._requested[key]
            try:
                await fn()
            except BaseException:
                self._covered[key] = before
                raise
            return True
