"""Who may do what where: roles ranked viewer < technician < manager < engineer < admin, granted per site.

A `Principal` holds the caller's grants (site -> role, `*` = every site). Its `scope()` is what every
query receives, so reads are restricted in SQL (`WHERE site = ANY($sites)`) rather than filtered after.
Pure code: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

ALL_SITES = "*"


class Role(IntEnum):
    viewer = 0
    technician = 1
    manager = 2
    engineer = 3
    admin = 4


@dataclass(frozen=True)
class SiteScope:
    """The sites a query may touch: all of them, or exactly `sites`."""

    everything: bool
    sites: tuple[str, ...] = ()


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    via: Literal["password", "api_key", "oidc"]
    grants: Mapping[str, Role] = field(default_factory=dict)

    def role_at(self, site: str) -> Role | None:
        roles = [r for r in (self.grants.get(site), self.grants.get(ALL_SITES)) if r is not None]
        return max(roles) if roles else None

    def scope(self, minimum: Role = Role.viewer) -> SiteScope:
        if (g := self.grants.get(ALL_SITES)) is not None and g >= minimum:
            return SiteScope(True)
        return SiteScope(False, tuple(sorted(s for s, r in self.grants.items() if r >= minimum and s != ALL_SITES)))

    @property
    def rate_key(self) -> str:
        return f"user:{self.user_id}"
