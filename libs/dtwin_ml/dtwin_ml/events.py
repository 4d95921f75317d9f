"""Event-level scoring: alert episodes from a per-step flag, matched against ground-truth windows.

A model raises a flag per step; consecutive flags (gaps shorter than `merge` steps bridged) form one alert episode,
which is what a technician would see as one alert. An event (a fault window) is detected when an episode starts
inside it: an alert already ringing before the fault began does not count, it was a false alarm that happened to
run on. Episodes starting inside one event count once; an episode that starts inside no event is a false alarm,
unless it starts inside an `ignore` window (e.g. the hours after a repair), where it counts neither way. Precision
counts episodes, recall counts events, so a detector that fires constantly has perfect recall and poor precision,
as it should.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Window:
    asset: str
    start: pd.Timestamp
    end: pd.Timestamp
    kind: str = ""
    id: str = ""


@dataclass
class Tally:
    events: int = 0
    detected: int = 0
    episodes: int = 0
    true_episodes: int = 0
    first_alert: dict[str, pd.Timestamp] = field(default_factory=dict)  # event id -> first alert inside it
    missed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else 0.0

    @property
    def precision(self) -> float:
        return self.true_episodes / self.episodes if self.episodes else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, other: Tally) -> None:
        self.events += other.events
        self.detected += other.detected
        self.episodes += other.episodes
        self.true_episodes += other.true_episodes
        self.first_alert.update(other.first_alert)
        self.missed += other.missed


def episodes(index: pd.DatetimeIndex, flag: np.ndarray, merge: int = 6) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of True in `flag` as (first, last) timestamps; runs less than `merge` steps apart are one episode."""
    on = np.flatnonzero(np.asarray(flag, dtype=bool))
    if not len(on):
        return []
    breaks = np.flatnonzero(np.diff(on) > merge)
    starts = np.concatenate([[on[0]], on[breaks + 1]])
    ends = np.concatenate([on[breaks], [on[-1]]])
    return [(index[s], index[e]) for s, e in zip(starts, ends, strict=True)]


def score(
    index: pd.DatetimeIndex, flag: np.ndarray, windows: Sequence[Window], merge: int = 6, ignore: Iterable[Window] = ()
) -> Tally:
    """Tally of one asset over `index`; episodes overlapping an `ignore` window count neither way."""
    t = Tally(events=len(windows))
    starts = [s for s, _ in episodes(index, flag, merge)]
    skip = list(ignore)
    for w in windows:
        inside = [s for s in starts if w.start <= s < w.end]
        if inside:
            t.detected += 1
            t.first_alert[w.id] = min(inside)
        else:
            t.missed.append(w.id)
    # Several episodes inside one event are one true alert (one work order), so precision cannot be inflated by
    # an alert that flickers on and off during a fault.
    t.true_episodes = t.detected
    t.episodes = t.detected
    for s in starts:
        if not any(w.start <= s < w.end for w in windows) and not any(w.start <= s < w.end for w in skip):
            t.episodes += 1
    return t
