"""Stale sensors and offline assets, judged from reading timestamps against a `now` the caller passes in.

A sensor is stale once `now - last_seen >= 3 x expectedIntervalSeconds` (`STALE_AFTER` intervals): a warning
alert of kind "stale" (`<sensor>:stale`). An asset is offline while every one of its sensors is stale: a
critical alert of kind "offline" (`<asset>:offline`, no sensor); both kinds are raised, the sensor's and the
asset's. A sensor that never reported counts from the first `check` that knew it, so a dead device is caught
after start-up too. `observe` resolves at once, when a reading arrives: the sensor's stale alert and its
asset's offline alert. "Fresh" is judged against the clock of the last `check` (`clock`), so a backfilled
reading that is itself older than the stale window resolves nothing (it would go stale again at the next
check and flap). `last_seen` only moves forward. The per-sensor `Seen` is frozen; the caller keeps the map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from dtwin_bridge.model import Reading, Route
from dtwin_bridge.rules.events import AlertOpened, AlertResolved, Event, dedup_key

STALE_AFTER = 3  # expected intervals of silence before a sensor is stale


@dataclass(frozen=True, slots=True)
class Seen:
    """When a sensor last reported (or when tracking began, if never), and whether its stale alert is open."""

    last: datetime
    stale: bool = False
    reported: bool = False


def window(route: Route) -> timedelta:
    return timedelta(seconds=STALE_AFTER * route.expected_interval_s)


def observe(
    seen: Seen | None, offline: frozenset[str], reading: Reading, route: Route, clock: datetime | None
) -> tuple[Seen, frozenset[str], list[Event]]:
    """Record one reading of `route.sensor`; resolves its stale alert and its asset's offline alert when fresh."""
    last = reading.ts if seen is None or not seen.reported else max(seen.last, reading.ts)
    fresh = clock is None or clock - last < window(route)
    events: list[Event] = []
    stale = seen is not None and seen.stale
    if stale and fresh:
        stale = False
        msg = f"{route.sensor} reporting again"
        key = dedup_key("stale", route.sensor, route.asset)
        events.append(AlertResolved(route.sensor, route.asset, "stale", reading.ts, reading.value, msg, key))
    if fresh and route.asset in offline:
        offline = offline - {route.asset}
        msg = f"{route.asset} back online ({route.sensor} reported)"
        key = dedup_key("offline", None, route.asset)
        events.append(AlertResolved(None, route.asset, "offline", reading.ts, None, msg, key))
    return Seen(last, stale, True), offline, events


def check(
    sensors: Mapping[str, Seen], offline: frozenset[str], now: datetime, routes: Iterable[Route]
) -> tuple[dict[str, Seen], frozenset[str], list[Event]]:
    """Judge every routed sensor at `now`: the new map (routed sensors only), offline assets, and the events.

    Stale events come first, in route order, then offline ones in asset order.
    """
    out: dict[str, Seen] = {}
    events: list[Event] = []
    all_stale: dict[str, bool] = {}
    for r in routes:
        seen = sensors.get(r.sensor) or Seen(now)
        is_stale = now - seen.last >= window(r)
        if is_stale != seen.stale:
            key = dedup_key("stale", r.sensor, r.asset)
            if is_stale:
                since = f"since {seen.last.isoformat()}" if seen.reported else "since tracking began"
                msg = f"{r.sensor} stale: no reading {since} (expected every {r.expected_interval_s} s)"
                events.append(AlertOpened(r.sensor, r.asset, "stale", "warning", now, None, msg, key))
            else:
                events.append(AlertResolved(r.sensor, r.asset, "stale", now, None, f"{r.sensor} fresh again", key))
        out[r.sensor] = Seen(seen.last, is_stale, seen.reported)
        all_stale[r.asset] = all_stale.get(r.asset, True) and is_stale
    now_offline = frozenset(a for a, dead in all_stale.items() if dead)
    for asset in sorted(now_offline | offline):
        key = dedup_key("offline", None, asset)
        if asset in now_offline and asset not in offline:
            msg = f"{asset} offline: all of its sensors are stale"
            events.append(AlertOpened(None, asset, "offline", "critical", now, None, msg, key))
        elif asset not in now_offline and asset in offline:
            why = "a sensor reports again" if asset in all_stale else "no longer routed"
            events.append(AlertResolved(None, asset, "offline", now, None, f"{asset} back online ({why})", key))
    return out, now_offline, events
