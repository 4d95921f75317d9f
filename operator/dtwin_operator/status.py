"""Pure helpers that compose a resource's status: conditions, Ready, and change detection.

A reconcile builds the whole desired status with these and writes it once,
with `observedGeneration`. `lastTransitionTime` moves only when a condition's
status flips, as Kubernetes conventions require, so re-running a reconcile
that changes nothing writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

READY = "Ready"


@dataclass(frozen=True)
class Cond:
    """A condition as a reconcile decides it (without times)."""

    type: str
    ok: bool
    reason: str
    message: str = ""
    unknown: bool = False  # written as status "Unknown" (e.g. no verdict yet); `ok` still says whether it blocks


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(previous: Iterable[Mapping[str, Any]], cond: Cond, generation: int | None, at: str) -> dict[str, Any]:
    """The condition dict, keeping the previous transition time when the status did not change."""
    status = "Unknown" if cond.unknown else ("True" if cond.ok else "False")
    before = next((c for c in previous if c.get("type") == cond.type), None)
    since = before["lastTransitionTime"] if before and before.get("status") == status else at
    out: dict[str, Any] = {
        "type": cond.type,
        "status": status,
        "reason": cond.reason,
        "message": cond.message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def ready_of(parts: list[Cond], ready_reason: str = "Reconciled", ready_message: str = "") -> Cond:
    """Ready is True when every part is; otherwise it carries the first failing part's reason and message."""
    failing = next((c for c in parts if not c.ok), None)
    if failing is None:
        return Cond(READY, True, ready_reason, ready_message)
    return Cond(READY, False, failing.reason, failing.message)


def compose(
    previous: Mapping[str, Any] | None,
    parts: list[Cond],
    generation: int | None,
    at: str,
    fields: Mapping[str, Any] | None = None,
    ready: Cond | None = None,
) -> dict[str, Any]:
    """The full status: Ready first, then the parts, plus any other fields, with observedGeneration."""
    prior = list((previous or {}).get("conditions") or [])
    ready = ready or ready_of(parts)
    conditions = [set_condition(prior, c, generation, at) for c in [ready, *parts]]
    return {**(fields or {}), "observedGeneration": generation, "conditions": conditions}


def changed(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` would change anything a reader cares about."""
    current = current or {}
    return any(current.get(k) != v for k, v in desired.items())


def condition(status: Mapping[str, Any] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in (status or {}).get("conditions") or [] if c.get("type") == type_), None)


def is_true(status: Mapping[str, Any] | None, type_: str = READY) -> bool:
    c = condition(status, type_)
    return bool(c and c.get("status") == "True")
