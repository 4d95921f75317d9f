"""Pure rules without a database: bucket choice and how grants become a SQL scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dtwin_api import security, telemetry
from dtwin_api.authz import Principal, Role, SiteScope

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("span", "bucket"),
    [(timedelta(hours=2), "raw"), (timedelta(hours=3), "1m"), (timedelta(days=30), "1h"), (timedelta(days=91), "1d")],
)
def test_auto_bucket(span: timedelta, bucket: str) -> None:
    assert telemetry.choose_bucket(T0, T0 + span, "auto") == bucket
    assert telemetry.choose_bucket(T0, T0 + span, "1d") == "1d"


def test_scope_follows_grants() -> None:
    p = Principal(1, "m", "password", {"alpha": Role.manager, "beta": Role.viewer})
    assert p.scope() == SiteScope(False, ("alpha", "beta"))
    assert p.scope(Role.technician) == SiteScope(False, ("alpha",))
    assert p.role_at("gamma") is None
    g = Principal(2, "g", "password", {"*": Role.viewer, "alpha": Role.admin})
    assert g.scope() == SiteScope(True) and g.scope(Role.technician) == SiteScope(False, ("alpha",))
    assert g.role_at("zeta") == Role.viewer and g.role_at("alpha") == Role.admin


def test_api_key_format_and_password_hash() -> None:
    key, prefix, digest = security.new_api_key()
    parts = security.split_api_key(key)
    assert parts is not None and parts[0] == prefix and security.same_digest(digest, parts[1])
    assert security.split_api_key("dtw__x") is None and security.split_api_key("nope") is None
    stored = security.hash_password("pw")
    assert security.verify_password(stored, "pw") and not security.verify_password(stored, "px")
    assert not security.verify_password(None, "pw")
