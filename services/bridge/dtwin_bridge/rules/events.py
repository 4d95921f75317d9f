"""What the rules engine emits: an alert opened, its severity changed, or it resolved.

The events map one to one onto the alerts table (`dtwin_core.schema_sql.tables`): `kind` and `severity` take
its CHECKed values, `value` becomes `last_value`, and `dedup_key` is the key of its partial unique index (at
most one unresolved alert per key), so a repeated `AlertOpened` for an alert still open is absorbed by the
database even if a second engine replica emits it. Keys: `<sensor>:threshold`, `<sensor>:stale` and
`<asset>:offline`. `AlertEscalated` reports any severity change of an open alert, up or down; `previous`
tells which. Acknowledgement is an operator's act on the stored alert, not an engine event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Kind = Literal["threshold", "stale", "offline"]
Severity = Literal["warning", "critical"]


def dedup_key(kind: Kind, sensor: str | None, asset: str) -> str:
    """The alerts table's dedup key: per sensor for threshold and stale alerts, per asset for offline ones."""
    return f"{asset}:offline" if kind == "offline" else f"{sensor}:{kind}"


@dataclass(frozen=True, slots=True)
class AlertOpened:
    """A new alert; `sensor` is None for an asset-level (offline) alert, `value` None when there is none."""

    sensor: str | None
    asset: str
    kind: Kind
    severity: Severity
    at: datetime
    value: float | None
    message: str
    dedup_key: str


@dataclass(frozen=True, slots=True)
class AlertEscalated:
    """The open alert under `dedup_key` changed severity (from `previous`; a de-escalation too)."""

    sensor: str | None
    asset: str
    kind: Kind
    severity: Severity
    previous: Severity
    at: datetime
    value: float | None
    message: str
    dedup_key: str


@dataclass(frozen=True, slots=True)
class AlertResolved:
    """The open alert under `dedup_key` cleared at `at`."""

    sensor: str | None
    asset: str
    kind: Kind
    at: datetime
    value: float | None
    message: str
    dedup_key: str


Event = AlertOpened | AlertEscalated | AlertResolved
