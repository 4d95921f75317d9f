"""Group readings and rejects into database batches, and tell which MQTT messages may be acknowledged.

The batcher is pure: the I/O layer feeds it each parsed message (`add`, with the message's opaque id and a
monotonic `now` in seconds), writes every `Batch` it hands out in one transaction (readings by COPY, rejects
to the dead-letter table), then reports the commit (`committed`), which returns the ids that may now be
acknowledged. A batch closes when it holds `max_rows` rows or when its first item is `max_delay_s` old (`due`).

Ack accounting: a message may be acknowledged only once every batch holding any of its items has committed,
so a message whose readings span two batches waits for the second. Each message counts the uncommitted
batches it touches; acks are released in arrival order (a message waits for earlier ones too), because MQTT
asks a receiver to acknowledge QoS 1 messages in the order they arrived and an ack must never vouch for an
earlier message that is not stored yet. A message with no items joins the open batch all the same, so it is
acked in order, after the rows before it.

Dedup: within one batch, a second reading for the same (sensor, ts) replaces the first (last wins). The
writer upserts on (sensor, ts), where a later message must win over an earlier one, as it would if the two
landed in separate batches; and PostgreSQL refuses an INSERT ... ON CONFLICT DO UPDATE that touches the same
row twice, so the batch must not carry both. Rejects are never deduplicated: each is a dead-letter row.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from dtwin_bridge.model import Reading, Reject


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows for one transaction; `messages` are the ids of the messages with a part in it, in arrival order."""

    seq: int
    readings: tuple[Reading, ...]
    rejects: tuple[Reject, ...]
    messages: tuple[int, ...]
    opened_at: float

    @property
    def rows(self) -> int:
        return len(self.readings) + len(self.rejects)


@dataclass
class _Open:
    """The batch being filled."""

    opened_at: float
    readings: dict[tuple[str, datetime], Reading] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    messages: dict[int, None] = field(default_factory=dict)  # an ordered set

    @property
    def rows(self) -> int:
        return len(self.readings) + len(self.rejects)


class Batcher:
    """Size- and time-bounded batches with per-message ack accounting; single-threaded, no clock of its own."""

    def __init__(self, max_rows: int, max_delay_s: float) -> None:
        if max_rows < 1 or max_delay_s < 0:
            raise ValueError("max_rows must be >= 1 and max_delay_s >= 0")
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self._open: _Open | None = None
        self._seq = 0
        self._touching: dict[int, int] = {}  # message id -> uncommitted batches (open included) holding its items
        self._arrival: deque[int] = deque()  # ids not yet acked, in arrival order
        self._uncommitted: set[int] = set()  # seqs of batches handed out and not yet committed

    @property
    def unacked(self) -> int:
        """Messages received and not yet ackable: what the I/O layer bounds to apply backpressure."""
        return len(self._arrival)

    @property
    def buffered_rows(self) -> int:
        return self._open.rows if self._open else 0

    def _join(self, msg_id: int, now: float) -> _Open:
        if self._open is None:
            self._open = _Open(opened_at=now)
        if msg_id not in self._open.messages:
            self._open.messages[msg_id] = None
            self._touching[msg_id] += 1
        return self._open

    def _close(self) -> Batch:
        assert self._open is not None
        b, self._open = self._open, None
        self._seq += 1
        self._uncommitted.add(self._seq)
        return Batch(self._seq, tuple(b.readings.values()), tuple(b.rejects), tuple(b.messages), b.opened_at)

    def add(self, msg_id: int, items: Iterable[Reading | Reject], now: float) -> list[Batch]:
        """All items of one message; returns the batches that filled up (usually none)."""
        touching = self._touching
        if msg_id in touching:
            raise ValueError(f"message {msg_id} is already in flight")
        touching[msg_id] = 0
        self._arrival.append(msg_id)
        full: list[Batch] = []
        for item in items:  # `_join` inlined: this loop runs for every reading
            b = self._open
            if b is None:
                b = self._open = _Open(opened_at=now)
            if msg_id not in b.messages:
                b.messages[msg_id] = None
                touching[msg_id] += 1
            if isinstance(item, Reading):
                b.readings[(item.sensor, item.ts)] = item  # last wins; see the module docstring
            else:
                b.rejects.append(item)
            if len(b.readings) + len(b.rejects) >= self.max_rows:
                full.append(self._close())
        if touching[msg_id] == 0:  # no items: ride along with the rows before it
            self._join(msg_id, now)
        return full

    def due(self, now: float) -> Batch | None:
        """The open batch, once its first item has waited `max_delay_s`."""
        if self._open is not None and now - self._open.opened_at >= self.max_delay_s:
            return self._close()
        return None

    def flush(self) -> Batch | None:
        """The open batch regardless of age (shutdown, or a hot reload draining the old table)."""
        return self._close() if self._open is not None else None

    def committed(self, batch: Batch) -> list[int]:
        """Record that `batch` is durably stored; returns the message ids that may now be acked, in order."""
        if batch.seq not in self._uncommitted:
            raise ValueError(f"batch {batch.seq} was not handed out or is already committed")
        self._uncommitted.discard(batch.seq)
        for msg_id in batch.messages:
            self._touching[msg_id] -= 1
        ack: list[int] = []
        while self._arrival and self._touching[self._arrival[0]] == 0:
            msg_id = self._arrival.popleft()
            del self._touching[msg_id]
            ack.append(msg_id)
        return ack
