"""Batcher: size and time bounds, last-wins dedup within a batch, and ack accounting across batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin_bridge.batch import Batch, Batcher
from dtwin_bridge.model import Reading, Reason, Reject

T0 = datetime(2025, 7, 13, 10, 0, tzinfo=UTC)


def r(sensor: str, second: int, value: float = 1.0) -> Reading:
    return Reading(sensor, T0 + timedelta(seconds=second), value)


def rej(detail: str = "x") -> Reject:
    return Reject(Reason.OUT_OF_RANGE, detail, "t", b"{}", "s")


def test_fills_to_max_rows() -> None:
    b = Batcher(max_rows=3, max_delay_s=1.0)
    assert b.add(1, [r("a", 1), r("a", 2)], now=0.0) == []
    [full] = b.add(2, [r("a", 3), rej()], now=0.1)
    assert full.rows == 3 and full.messages == (1, 2)
    assert b.buffered_rows == 1


def test_due_after_max_delay() -> None:
    b = Batcher(max_rows=100, max_delay_s=0.5)
    b.add(1, [r("a", 1)], now=10.0)
    b.add(2, [r("a", 2)], now=10.4)
    assert b.due(10.49) is None
    batch = b.due(10.5)
    assert batch is not None and batch.messages == (1, 2) and batch.opened_at == 10.0
    assert b.due(99.0) is None


def test_dedup_keeps_the_last_value() -> None:
    b = Batcher(max_rows=100, max_delay_s=0)
    b.add(1, [r("a", 1, 10.0), r("b", 1, 5.0)], now=0)
    b.add(2, [r("a", 1, 11.0)], now=0)
    batch = b.flush()
    assert batch is not None
    assert batch.readings == (r("a", 1, 11.0), r("b", 1, 5.0))
    assert batch.messages == (1, 2)  # message 1's superseded value is covered by this batch too
    assert b.committed(batch) == [1, 2]


def test_rejects_are_never_deduplicated() -> None:
    b = Batcher(max_rows=100, max_delay_s=0)
    b.add(1, [rej(), rej()], now=0)
    batch = b.flush()
    assert batch is not None and len(batch.rejects) == 2


def test_message_spanning_two_batches_is_acked_after_the_second() -> None:
    b = Batcher(max_rows=2, max_delay_s=1.0)
    assert b.add(1, [r("a", 1)], now=0) == []
    [first] = b.add(2, [r("a", 2), rej()], now=0)  # 2 spans `first` and the open batch
    assert first.messages == (1, 2)
    [second] = b.add(3, [r("a", 4)], now=0)
    assert second.messages == (2, 3)
    assert b.committed(first) == [1]
    assert b.unacked == 2
    assert b.committed(second) == [2, 3]
    assert b.unacked == 0


def test_acks_follow_arrival_order_when_batches_commit_out_of_order() -> None:
    b = Batcher(max_rows=1, max_delay_s=1.0)
    [first] = b.add(1, [r("a", 1)], now=0)
    [second] = b.add(2, [r("a", 2)], now=0)
    assert b.committed(second) == []  # 2 is stored, but acking it before 1 would break MQTT ordering
    assert b.committed(first) == [1, 2]


def test_message_without_items_is_acked_in_order() -> None:
    b = Batcher(max_rows=10, max_delay_s=0.2)
    b.add(1, [r("a", 1)], now=0)
    b.add(2, [], now=0.1)
    assert b.buffered_rows == 1
    batch = b.due(0.3)
    assert batch is not None and batch.messages == (1, 2)
    assert b.committed(batch) == [1, 2]
    b.add(3, [], now=1.0)  # alone: an empty batch still carries its ack
    empty = b.due(1.25)
    assert empty is not None and empty.rows == 0 and b.committed(empty) == [3]


def test_misuse_is_refused() -> None:
    b = Batcher(max_rows=1, max_delay_s=0)
    [batch] = b.add(1, [r("a", 1)], now=0)
    with pytest.raises(ValueError, match="already in flight"):
        b.add(1, [r("a", 2)], now=0)
    b.committed(batch)
    with pytest.raises(ValueError, match="already committed"):
        b.committed(batch)
    with pytest.raises(ValueError, match="max_rows"):
        Batcher(max_rows=0, max_delay_s=1)


messages = st.lists(st.lists(st.integers(0, 5), max_size=7), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(sizes=messages, max_rows=st.integers(1, 6), order=st.randoms(use_true_random=False))
def test_every_message_acked_once_and_only_after_all_its_batches(
    sizes: list[list[int]], max_rows: int, order: object
) -> None:
    b = Batcher(max_rows=max_rows, max_delay_s=0)
    batches: list[Batch] = []
    placed: dict[int, set[int]] = {}  # message -> seqs of batches holding its items
    for mid, seconds in enumerate(sizes):
        items = [r(f"s{mid % 3}", s) for s in seconds]
        batches += b.add(mid, items, now=0)
    last = b.flush()
    batches += [last] if last else []
    for batch in batches:
        for mid in batch.messages:
            placed.setdefault(mid, set()).add(batch.seq)
    order.shuffle(batches)  # type: ignore[attr-defined]
    committed: set[int] = set()
    acked: list[int] = []
    for batch in batches:
        committed.add(batch.seq)
        for mid in b.committed(batch):
            assert placed[mid] <= committed  # all of its batches are stored
            acked.append(mid)
    assert acked == list(range(len(sizes)))  # each once, in arrival order
    assert all(batch.rows <= max_rows for batch in batches)
