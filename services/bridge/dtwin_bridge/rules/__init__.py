"""The bridge's pure rules engine: threshold, stale-sensor and offline-asset alerts from accepted readings.

Nothing here does I/O or reads a clock: readings carry their timestamps and `Engine.tick(now)` is handed the
time, so every rule is a frozen state and a pure transition function, tested on scripted signals. The edges
(writing `AlertOpened` / `AlertEscalated` / `AlertResolved` to the alerts table, publishing them on
`sites/<site>/events/alerts`) live outside this package.
"""

from dtwin_bridge.rules.engine import Engine
from dtwin_bridge.rules.events import AlertEscalated, AlertOpened, AlertResolved, Event

__all__ = ["AlertEscalated", "AlertOpened", "AlertResolved", "Engine", "Event"]
