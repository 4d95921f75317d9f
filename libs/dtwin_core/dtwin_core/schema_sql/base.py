"""Shared vocabulary of the per-Site schema SQL: the storage spec, the two backends, a migration, quoting.

Every builder in `schema_sql` takes a `StorageSpec` and returns SQL text; nothing here does I/O or
reads a clock. Identifiers are always double-quoted and literals single-quoted through `ident()` and
`literal()`: schema names derive from user-chosen Site names, and although the CRD restricts those
to `[a-z][-a-z0-9]*`, the SQL must stay safe if that pattern is ever loosened.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Backend = Literal["timescaledb", "postgresql"]

# PostgreSQL silently truncates identifiers to 63 bytes; two Sites whose names share a 63-byte prefix
# would then share a schema, so refuse instead.
MAX_IDENTIFIER = 63
_TIMEZONE = re.compile(r"^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$")


@dataclass(frozen=True)
class StorageSpec:
    """What the schema manager needs from `Site.spec.storage` (plus the Site's time zone for daily rollups)."""

    schema: str
    chunk_interval_hours: int = 24
    retention_days: int = 365
    compress_after_days: int = 7
    # Local day (and hour) boundaries of the 1 h / 1 d rollups; fixed when the rollups are created.
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not self.schema or len(self.schema.encode()) > MAX_IDENTIFIER:
            raise ValueError(f"schema name must be 1..{MAX_IDENTIFIER} bytes: {self.schema!r}")
        if "$" in self.schema or "\x00" in self.schema:
            # It is embedded in dollar-quoted ($fn$) function bodies, which a "$" could close early.
            raise ValueError(f"schema name must not contain '$' or NUL: {self.schema!r}")
        if self.chunk_interval_hours < 1 or self.retention_days < 1 or self.compress_after_days < 1:
            raise ValueError("chunk_interval_hours, retention_days and compress_after_days must be >= 1")
        if not _TIMEZONE.match(self.timezone):
            raise ValueError(f"timezone must be an IANA name such as Europe/Paris: {self.timezone!r}")


@dataclass(frozen=True)
class Migration:
    """One versioned step; `sql` may hold several statements and is idempotent on its own."""

    version: int
    name: str
    sql: str


def ident(name: str) -> str:
    """A safely double-quoted SQL identifier."""
    if "\x00" in name:
        raise ValueError("identifier contains NUL")
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


def literal(value: str) -> str:
    """A safely single-quoted SQL string literal (standard_conforming_strings is on since PostgreSQL 9.1)."""
    if "\x00" in value:
        raise ValueError("literal contains NUL")
    return "'" + value.replace("'", "''") + "'"


def ts_literal(moment: datetime) -> str:
    """A timestamptz literal in UTC; naive datetimes are refused rather than guessed."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return f"timestamptz {literal(moment.astimezone(UTC).isoformat())}"


def hours(n: int) -> str:
    """An interval in hours: hour intervals stay exact across DST, unlike '1 day'."""
    return f"interval '{int(n)} hours'"


def lock_key(schema: str) -> int:
    """The advisory-lock key (signed bigint) that serialises all DDL and maintenance of one schema.

    Derived from a stable hash rather than PostgreSQL's `hashtext`, which is internal and may change.
    """
    digest = hashlib.blake2b(f"dtwin.schema:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
