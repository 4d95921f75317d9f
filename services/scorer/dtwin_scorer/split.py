"""Which window goes to the canary, and how windows are cut into requests.

The canary share is a Weyl sequence, not a random draw: the n-th window goes to the canary when
frac(seed + n / golden ratio) < percent / 100. Over any run of N windows the canary gets N * percent / 100 within
about log N windows (the golden ratio's sequence is the most evenly spread there is), so a 20 % canary is 20 %
over the first hundred windows already, not only "on average", and the tests assert it tightly without flakiness.
A counter (every fifth window) would be exact too, but with a fixed asset order it would send the *same* asset to
the canary every pass, and the canary's mean score would then compare one asset with the others; the golden
ratio sequence is equidistributed along every stride too, so each asset visits both tracks in proportion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
STEP = (math.sqrt(5) - 1) / 2  # 1 / golden ratio


class CanarySplit:
    """Per model, across passes: `canary(percent)` answers for the next window."""

    def __init__(self, seed: float = 0.0) -> None:
        self.x = seed % 1.0

    def canary(self, percent: float) -> bool:
        self.x = (self.x + STEP) % 1.0
        return self.x < percent / 100.0


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items (the routing's maxBatchSize)."""
    size = max(1, size)
    for i in range(0, len(items), size):
        yield items[i : i + size]
