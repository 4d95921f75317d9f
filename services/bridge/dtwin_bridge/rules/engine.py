"""The rules engine of one site: the mutable shell around the pure threshold and staleness machines.

`Engine` holds one `ThresholdState` and one `Seen` per routed sensor and the set of offline assets; the I/O
layer feeds it the readings of each committed batch (`on_readings`), calls `tick(now)` on a timer for the
stale and offline checks, and writes or publishes the events it returns, in order. Readings of sensors
without a route are ignored. `replace_routes` applies a hot-reloaded routing table: sensors that remain keep
their state (a changed threshold applies from the next reading; the level is re-judged then), new ones start
normal and unseen, and removed ones have their open alerts resolved, so no alert is left open for a sensor
the engine no longer watches. It holds no clock: `now` is always passed in.

Which time staleness is judged at: the stream's, carried forward by the wall (`dtwin_core.streamclock`);
readings handed in with their arrival time advance it. Live this is the wall clock; replaying history it is
the replay's own time, so a 60x replay does not call every sensor stale.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from dtwin_bridge.model import Reading, Route
from dtwin_bridge.rules import staleness, thresholds
from dtwin_bridge.rules.events import AlertResolved, Event, Kind, dedup_key
from dtwin_bridge.rules.staleness import Seen
from dtwin_bridge.rules.thresholds import ThresholdRule, ThresholdState
from dtwin_core.streamclock import StreamClock

_NORMAL = ThresholdState()
_LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


class Engine:
    """All rules of one site's routes; not thread-safe (one asyncio task owns it)."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes: dict[str, Route] = {}
        self._rules: dict[str, ThresholdRule] = {}
        self._levels: dict[str, ThresholdState] = {}
        self._seen: dict[str, Seen] = {}
        self._offline: frozenset[str] = frozenset()
        self._clock: datetime | None = None  # the time the last tick judged at
        self._stream = StreamClock()
        self._install(routes)

    def _install(self, routes: Iterable[Route]) -> None:
        self._routes = {r.sensor: r for r in routes}
        self._rules = {s: ThresholdRule.from_route(r) for s, r in self._routes.items()}
        self._active = {s: rule for s, rule in self._rules.items() if rule.active}

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes.values())

    @property
    def offline_assets(self) -> frozenset[str]:
        return self._offline

    def threshold_state(self, sensor: str) -> ThresholdState:
        return self._levels.get(sensor, ThresholdState())

    def seen(self, sensor: str) -> Seen | None:
        return self._seen.get(sensor)

    def on_readings(self, readings: Iterable[Reading], arrived: datetime | None = None) -> list[Event]:
        """Feed readings (any order; per sensor, older than the last one are ignored for thresholds); `arrived`,
        when given, is when they reached the bridge and advances the stream watermark (module docstring)."""
        readings = list(readings)
        if arrived is not None and readings:
            first = self._stream.watermark is None
            self._stream.observe(max(r.ts for r in readings), arrived)
            if first and self._clock is not None and self._stream.at(arrived) < self._clock:
                self._rebase()
        events: list[Event] = []
        routes, active, seen_by, offline = self._routes, self._active, self._seen, self._offline
        for reading in readings:
            s = reading.sensor
            route = routes.get(s)
            if route is None:
                continue
            rule = active.get(s)  # a sensor without thresholds never changes level
            if rule is not None:
                self._levels[s], out = thresholds.step(self._levels.get(s, _NORMAL), reading, rule)
                events += out
            seen = seen_by.get(s)
            if seen is not None and seen.reported and not seen.stale and route.asset not in offline:
                # Nothing to resolve, so `observe` would only move `last` forward: do just that (hot path).
                if reading.ts > seen.last:
                    seen_by[s] = Seen(reading.ts, False, True)
                continue
            seen_by[s], self._offline, out = staleness.observe(seen, self._offline, reading, route, self._clock)
            offline = self._offline
            events += out
        return events

    def _rebase(self) -> None:
        """The first readings show a stream behind the wall (a replay, a backfill): the ticks before them judged at
        wall time, which would pin the monotone clock days ahead of the stream and no sensor could ever go stale.
        Judging restarts in stream time: sensors never seen are tracked again from the next tick; an open stale
        alert stays open until its sensor reports (as after `restore`)."""
        self._clock = None
        self._seen = {s: Seen(_LONG_AGO, stale=True, reported=False) for s, v in self._seen.items() if v.stale}

    def judged_at(self, now: datetime) -> datetime:
        """The time `tick(now)` judges staleness at: stream time carried forward by the wall (see above)."""
        return self._stream.at(now)

    def restore(self, open_alerts: Iterable[tuple[str, str | None, str, str]]) -> int:
        """Seed the state from the alerts still open in the database, as (kind, sensor, asset, severity), so a
        restarted replica resolves what an earlier one opened (a stale sensor that reports again, a threshold
        back to normal) instead of leaving it open forever. Returns how many were taken; alerts of sensors or
        assets no longer routed are left alone (the hot reload path resolves those)."""
        taken, assets = 0, {r.asset for r in self._routes.values()}
        for kind, sensor, asset, severity in open_alerts:
            if kind == "stale" and sensor in self._routes:
                # Stale until a reading comes: `last` far in the past, so no tick calls it fresh by itself.
                self._seen[sensor] = Seen(_LONG_AGO, stale=True, reported=False)
            elif kind == "offline" and sensor is None and asset in assets:
                self._offline = self._offline | {asset}
            elif kind == "threshold" and sensor in self._active and severity in ("warning", "critical"):
                self._levels[sensor] = ThresholdState(severity)  # type: ignore[arg-type]
            else:
                continue
            taken += 1
        return taken

    def tick(self, now: datetime) -> list[Event]:
        """Run the stale and offline checks at `judged_at(now)` (monotone: an earlier time than the last is
        ignored)."""
        now = self.judged_at(now)
        if self._clock is not None and now < self._clock:
            return []
        self._clock = now
        self._seen, self._offline, events = staleness.check(self._seen, self._offline, now, self._routes.values())
        return events

    def replace_routes(self, routes: Iterable[Route], now: datetime) -> list[Event]:
        """Hot reload: keep the state of sensors that remain; resolve (at `now`) the alerts of removed ones."""
        old = self._routes
        self._install(routes)
        events: list[Event] = []
        for sensor, route in old.items():
            if sensor in self._routes:
                continue
            level = self._levels.pop(sensor, ThresholdState()).level
            seen = self._seen.pop(sensor, None)
            open_kinds: list[Kind] = []
            if level != "normal":
                open_kinds.append("threshold")
            if seen is not None and seen.stale:
                open_kinds.append("stale")
            for kind in open_kinds:
                key = dedup_key(kind, sensor, route.asset)
                events.append(AlertResolved(sensor, route.asset, kind, now, None, f"{sensor} no longer routed", key))
        assets = {r.asset for r in self._routes.values()}
        for asset in sorted(self._offline - assets):
            key = dedup_key("offline", None, asset)
            events.append(AlertResolved(None, asset, "offline", now, None, f"{asset} no longer routed", key))
        self._offline &= assets
        return events
