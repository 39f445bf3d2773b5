"""A tenant's Telegram users: language, referral code, first-contact bonuses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from tenant_runtime.config import Language


@dataclass(frozen=True)
class BotUser:
    tenant_id: int
    user_id: int
    language: Language
    referral_code: str
    referred_by: int | None
    created_at: datetime
    is_new: bool


class Users:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def touch(
        self, tenant_id: int, user_id: int, *, language: Language, first_name: str | None, username: str | None
    ) -> BotUser:
        """Create the user on first contact (`is_new`), else refresh last_seen. One round trip."""
        row = await self._pool.fetchrow(
            """INSERT INTO bot_users (tenant_id, user_id, language, first_name, username, referral_code)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (tenant_id, user_id) DO UPDATE
                   SET last_seen_at = now(), first_name = EXCLUDED.first_name, username = EXCLUDED.username
               RETURNING *, (xmax = 0) AS inserted""",
            tenant_id,
            user_id,
            language,
            first_name,
            username,
            secrets.token_urlsafe(6),
        )
        return _user(row)

    async def set_language(self, tenant_id: int, user_id: int, language: Language) -> None:
        await self._pool.execute(
            "UPDATE bot_users SET language = $3 WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id, language
        )

    async def set_referrer(self, tenant_id: int, user_id: int, code: str) -> int | None:
        """Link a new user to the owner of `code` once; never to oneself. Returns the referrer."""
        return await self._pool.fetchval(
            """UPDATE bot_users u SET referred_by = r.user_id
               FROM bot_users r
               WHERE u.tenant_id = $1 AND u.user_id = $2 AND u.referred_by IS NULL
                 AND r.tenant_id = $1 AND r.referral_code = $3 AND r.user_id <> $2
               RETURNING r.user_id""",
            tenant_id,
            user_id,
            code,
        )

    async def get(self, tenant_id: int, user_id: int) -> BotUser | None:
        row = await self._pool.fetchrow(
            "SELECT *, false AS inserted FROM bot_users WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
        )
        return None if row is None else _user(row)

    async def count(self, tenant_id: int) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM bot_users WHERE tenant_id = $1", tenant_id))


def _user(row: asyncpg.Record) -> BotUser:
    return BotUser(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        language=row["language"],
        referral_code=row["referral_code"],
        referred_by=row["referred_by"],
        created_at=row["created_at"],
        is_new=row["inserted"],
    )
