"""The stream clock: wall time until a reading is seen, then stream time carried forward by the wall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dtwin_core.streamclock import StreamClock

WALL = datetime(2026, 12, 3, 12, tzinfo=UTC)
S = timedelta(seconds=1)


def test_wall_time_until_something_is_observed() -> None:
    assert StreamClock().at(WALL) == WALL


def test_replay_runs_on_stream_time_and_silence_advances_with_the_wall() -> None:
    clock = StreamClock()
    clock.observe(WALL - timedelta(days=3), WALL)
    assert clock.at(WALL) == WALL - timedelta(days=3)
    assert clock.at(WALL + 10 * S) == WALL - timedelta(days=3) + 10 * S
    clock.observe(WALL - timedelta(days=3) + 600 * S, WALL + 10 * S)  # 60x: ten minutes in ten seconds
    assert clock.at(WALL + 10 * S) == WALL - timedelta(days=3) + 600 * S
    clock.observe(WALL - timedelta(days=4), WALL + 11 * S)  # an older reading never moves it back
    assert clock.at(WALL + 11 * S) == WALL - timedelta(days=3) + 601 * S


def test_live_is_the_wall_and_a_clock_ahead_cannot_push_it() -> None:
    clock = StreamClock()
    clock.observe(WALL + 300 * S, WALL)  # a device five minutes ahead
    assert clock.watermark == WALL
    assert clock.at(WALL + 5 * S) == WALL + 5 * S
