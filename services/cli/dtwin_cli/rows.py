"""CSV rows -> `Reading | Reject`, through the bridge's own validation (`dtwin_bridge.validate.validate`).

Each row is one bridge `Message`: its topic names where it came from (`csv:<file>@<content hash>#L<line>`, so a
dead letter points at the line and a re-import of the same file can recognise its own dead letters), its payload
is the row itself. Every non-empty cell becomes a `Sample` of its column's route, carrying the CSV's unit when it
differs from the binding's; `validate` then does exactly what it does for MQTT: number check, unit conversion,
validRange in the binding's unit, time bounds against `received_at` (the start of the import; `Limits.max_age`
is the Site's retention, since older rows would be dropped at once), canonical unit. A cell that is not a number
reaches `validate` as a string, which makes it `not_a_number` there. Empty cells are gaps, not values: counted,
not dead-lettered. A timestamp that will not parse rejects its whole row (`bad_timestamp`), and a second value
for a (sensor, ts) already seen in this file is `duplicate_in_message` (the first one wins), as in one message.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from dtwin_bridge.model import Message, Reading, Reason, Reject, Sample
from dtwin_bridge.parse import timestamps
from dtwin_bridge.validate import Limits, validate
from dtwin_cli.layout import Column, Layout


def parse_time(text: str, zone: tzinfo) -> datetime:
    """ISO 8601 (a time without offset is in `zone`) or an epoch number (s, or ms when too large for s)."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return timestamps.from_json_number(int(number) if number.is_integer() else number)
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        # fold=0: an ambiguous local time (the repeated hour when DST ends) is taken as its first occurrence.
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the representable time range") from None


def cell_value(text: str) -> object:
    """A float when the cell is one (including nan/inf, which `validate` refuses as non_finite), else the text."""
    try:
        return float(text)
    except ValueError:
        return text


@dataclass
class RowReader:
    """Turns rows into items; keeps the (sensor, ts) keys seen so far to refuse in-file duplicates."""

    layout: Layout
    source: str  # topic prefix: csv:<file>@<hash>
    received_at: datetime
    zone: tzinfo
    limits: Limits
    empty_cells: int = 0
    _seen: set[tuple[str, datetime]] = field(default_factory=set)

    def topic(self, line: int) -> str:
        return f"{self.source}#L{line}"

    def items(self, row: Sequence[str], line: int) -> list[Reading | Reject]:
        if not row or not any(c.strip() for c in row):
            return []
        msg = Message(self.topic(line), _payload(row), self.received_at)
        stamp = row[self.layout.time_index] if self.layout.time_index < len(row) else ""
        try:
            ts = parse_time(stamp, self.zone)
        except (ValueError, OverflowError) as err:
            return [msg.reject(Reason.BAD_TIMESTAMP, f"timestamp {stamp!r}: {str(err)[:200]}")]
        if self.layout.format == "wide":
            found = [self._one(msg, col, ts, _at(row, i), None) for i, col in self.layout.columns]
        else:
            found = [self._long(msg, row, ts)]
        return [item for item in found if item is not None]

    def _long(self, msg: Message, row: Sequence[str], ts: datetime) -> Reading | Reject | None:
        lay = self.layout
        if lay.sensor_index is not None:
            key = _at(row, lay.sensor_index)
        else:
            key = f"{_at(row, lay.asset_index)}.{_at(row, lay.metric_index)}"
        col = lay.keys.get(key)
        if col is None:
            return msg.reject(Reason.UNKNOWN_FIELD, f"no sensor {key!r} in this site")
        unit = _at(row, lay.unit_index) or None
        return self._one(msg, col, ts, _at(row, lay.value_index), unit)

    def _one(self, msg: Message, col: Column, ts: datetime, text: str, unit: str | None) -> Reading | Reject | None:
        if not text:
            self.empty_cells += 1
            return None
        item = validate(Sample(col.route, ts, cell_value(text), unit or col.unit), msg, self.limits)
        if isinstance(item, Reading):
            key = (item.sensor, item.ts)
            if key in self._seen:
                detail = f"another value at {ts.isoformat()} came first in this file; this one: {text}"
                return msg.reject(Reason.DUPLICATE_IN_MESSAGE, detail, item.sensor)
            self._seen.add(key)
        return item


def _at(row: Sequence[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


def _payload(row: Sequence[str]) -> bytes:
    """The row as a CSV line again (the reader has already split it), for the dead-letter row."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(row)
    return out.getvalue().encode()
