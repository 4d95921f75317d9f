"""The work-order state machine and who may change what (pure rules, no database)."""

from __future__ import annotations

from datetime import date

import pytest

from dtwin_api import workorders
from dtwin_api.authz import Role


def wo(state: str, assignee: int | None = 7, scheduled_for: date | None = None) -> dict[str, object]:
    return {"state": state, "assignee_user_id": assignee, "scheduled_for": scheduled_for}


@pytest.mark.parametrize(
    ("state", "changes", "ok"),
    [
        ("open", {"state": "scheduled", "scheduled_for": date(2027, 1, 1)}, True),
        ("open", {"state": "scheduled"}, False),  # no date
        ("open", {"state": "in_progress"}, True),  # scheduling may be skipped
        ("scheduled", {"state": "in_progress"}, True),
        ("scheduled", {"scheduled_for": None}, False),
        ("in_progress", {"state": "scheduled"}, False),  # no way back
        ("completed", {"notes": "x"}, False),
        ("cancelled", {}, False),
    ],
)
def test_patch_transitions(state: str, changes: dict[str, object], ok: bool) -> None:
    current = wo(state, scheduled_for=date(2027, 1, 1) if state == "scheduled" else None)
    assert (workorders.patch_problem(current, changes) is None) is ok


def test_a_date_schedules_an_open_work_order() -> None:
    assert workorders.next_state(wo("open"), {"scheduled_for": date(2027, 1, 1)}) == "scheduled"
    assert workorders.next_state(wo("in_progress"), {"scheduled_for": date(2027, 1, 1)}) == "in_progress"
    assert workorders.next_state(wo("open"), {"priority": "low"}) == "open"


def test_who_may_patch_and_complete() -> None:
    mine, other = wo("scheduled", assignee=7), wo("scheduled", assignee=8)
    assert workorders.may_patch(Role.manager, 1, other, {"assignee_user_id": 9}) is None
    assert workorders.may_patch(Role.technician, 7, mine, {"state": "in_progress", "notes": "x"}) is None
    assert workorders.may_patch(Role.technician, 7, other, {"state": "in_progress"}) is not None
    assert workorders.may_patch(Role.technician, 7, mine, {"priority": "low"}) is not None
    assert workorders.may_patch(Role.technician, 7, mine, {"state": "scheduled"}) is not None
    assert workorders.may_complete(Role.technician, 7, mine) and not workorders.may_complete(Role.technician, 7, other)
    assert workorders.may_complete(Role.manager, 1, other)
