"""Pure rules of maintenance work orders: the state machine and who may change what. No I/O, no clock.

States: open -> scheduled -> in_progress -> completed | cancelled. `scheduled` may be skipped (open ->
in_progress) and re-entered (a new date); nothing goes back to `open`, and the two terminal states are
final. Completion and cancellation have their own routes; a patch moves only between the active states.

Who: manager or higher edits anything of an active work order; a technician may only move a work order
assigned to themselves to `in_progress` (and add notes). Completion: the assignee, or manager or higher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dtwin_api.authz import Role

ACTIVE = ("open", "scheduled", "in_progress")
TERMINAL = ("completed", "cancelled")
_NEXT: dict[str, frozenset[str]] = {
    "open": frozenset({"open", "scheduled", "in_progress"}),
    "scheduled": frozenset({"scheduled", "in_progress"}),
    "in_progress": frozenset({"in_progress"}),
}
TECHNICIAN_FIELDS = frozenset({"state", "notes"})


def patch_problem(current: Mapping[str, Any], changes: Mapping[str, Any]) -> str | None:
    """Why `changes` cannot apply to a work order in `current`'s state (409), or None."""
    state = current["state"]
    if state in TERMINAL:
        return f"work order is {state}"
    target = changes.get("state", state)
    if target not in _NEXT[state]:
        return f"a work order cannot go from {state} to {target}"
    scheduled_for = changes.get("scheduled_for", current.get("scheduled_for"))
    if target == "scheduled" and scheduled_for is None:
        return "a scheduled work order needs scheduled_for"
    return None


def next_state(current: Mapping[str, Any], changes: Mapping[str, Any]) -> str:
    """The state after the patch: as asked, or `scheduled` when an open work order receives a date."""
    if "state" in changes:
        return str(changes["state"])
    if current["state"] == "open" and changes.get("scheduled_for") is not None:
        return "scheduled"
    return str(current["state"])


def may_patch(role: Role, user_id: int, current: Mapping[str, Any], changes: Mapping[str, Any]) -> str | None:
    """Why the caller may not make these changes (403), or None."""
    if role >= Role.manager:
        return None
    if current["assignee_user_id"] != user_id:
        return "a technician may only update work orders assigned to them"
    if not set(changes) <= TECHNICIAN_FIELDS or changes.get("state", "in_progress") != "in_progress":
        return "a technician may only move their work order to in_progress and add notes; the rest needs manager"
    return None


def may_complete(role: Role, user_id: int, current: Mapping[str, Any]) -> bool:
    return role >= Role.manager or current["assignee_user_id"] == user_id
