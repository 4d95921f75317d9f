"""Login sessions: issue an access token with a refresh token, and rotate refresh tokens with reuse detection.

Each login starts a refresh-token family. Exchanging a refresh token marks it rotated and issues the next
one of the same family. A rotated token presented again means it was copied (the thief or the owner
used it after the other did): the whole family is revoked, so both must log in again, and that is
audited. The revocation commits even though the request fails.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from dtwin_api import repo, security
from dtwin_api.errors import unauthorized

log = structlog.get_logger("dtwin_api.sessions")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


async def issue(
    conn: asyncpg.Connection,
    signer: security.TokenSigner,
    refresh_ttl: timedelta,
    user_id: int,
    family: uuid.UUID | None = None,
    now: datetime | None = None,
) -> TokenPair:
    now = now or security.utcnow()
    access, expires = signer.issue(str(user_id), now)
    refresh = security.new_secret()
    await repo.insert_refresh(conn, security.digest(refresh), family or uuid.uuid4(), user_id, now + refresh_ttl)
    return TokenPair(access, int((expires - now).total_seconds()), refresh)


async def rotate(
    conn: asyncpg.Connection,
    signer: security.TokenSigner,
    refresh_ttl: timedelta,
    refresh_token: str,
    client: str | None,
) -> TokenPair:
    async with conn.transaction():
        row = await repo.refresh_for_update(conn, security.digest(refresh_token))
        if row is None or row["revoked_at"] is not None or row["family_revoked"]:
            raise unauthorized("invalid refresh token")
        if row["rotated_at"] is not None:
            revoked = await repo.revoke_family(conn, row["family_id"])
            await repo.audit(
                conn,
                actor_user_id=row["user_id"],
                actor=f"user:{row['user_id']}",
                action="auth.refresh_token_reuse",
                target=f"refresh_family/{row['family_id']}",
                after={"revoked_tokens": revoked},
                client=client,
            )
            log.warning("refresh_token_reuse", user_id=row["user_id"], family=str(row["family_id"]))
        elif row["expires_at"] <= security.utcnow():
            raise unauthorized("refresh token expired")
        elif await repo.active_user(conn, row["user_id"]) is None:
            raise unauthorized("the user no longer exists or is disabled")
        else:
            await repo.mark_rotated(conn, row["token_hash"])
            return await issue(conn, signer, refresh_ttl, row["user_id"], row["family_id"])
    # Only the reuse branch gets here: outside the transaction, so the revocation commits before we refuse.
    raise unauthorized("refresh token reused: every session of this login has been revoked")
