"""A tenant's Telegram users: language, referral code, first-contact bonuses.

A user is in their *first contact* for a day after they were first recorded. That, and not "this
update inserted the row", decides the welcome bonus (granted when the user has no welcome entry yet)
and whether a referral link still counts: an update retried after a database error finds the row
already there, and must still grant what the first attempt did not.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from tenant_runtime.billing.ledger import WELCOME_KIND, welcome_key
from tenant_runtime.config import Language

FIRST_CONTACT_SECONDS = 24 * 3600
TELEGRAM_ID_DIGITS = 15  # user ids are below 2**52
_USERNAME_RE = re.compile(r"@?([A-Za-z][A-Za-z0-9_]{3,31})")  # Telegram: a letter first, 4-32


@dataclass(frozen=True)
class BotUser:
    tenant_id: int
    user_id: int
    language: Language
    referral_code: str
    referred_by: int | None
    created_at: datetime
    is_new: bool  # this update recorded the user
    first_contact: bool  # recorded less than FIRST_CONTACT_SECONDS ago (by the database's clock)
    welcome_due: bool  # asked for, in first contact, and no welcome bonus recorded yet
    username: str | None = None
    first_name: str | None = None
    banned_at: datetime | None = None  # set by a tenant admin (`moderation.bans`)
    ban_reason: str | None = None

    @property
    def banned(self) -> bool:
        return self.banned_at is not None


def is_user_query(text: str) -> bool:
    """How an admin names a user: a Telegram id or a @username."""
    text = text.strip()
    return (text.isascii() and text.isdigit() and len(text) <= TELEGRAM_ID_DIGITS) or bool(_USERNAME_RE.fullmatch(text))


NAME_QUERY_CHARS = (2, 64)
SEARCH_LIMIT = 10


def is_name_query(text: str) -> bool:
    """Part of a name or username to search for: 2-64 printable characters."""
    text = text.strip()
    low, high = NAME_QUERY_CHARS
    return low <= len(text) <= high and text.isprintable()


# The touch as fragments: `Users.touch` runs it alone, `tenant_runtime.arrival` inside its one statement.
TOUCH_ON_CONFLICT = """ON CONFLICT (tenant_id, user_id) DO UPDATE
    SET last_seen_at = now(), first_name = EXCLUDED.first_name, username = EXCLUDED.username, blocked_at = NULL"""


def touch_returning(tenant: int, extras: int) -> str:
    """RETURNING of the touch: `tenant` is the tenant id's parameter number, `extras` the first of the four
    `touch_extras`."""
    seconds, welcome, kind, key = (f"${extras + i}" for i in range(4))
    return f"""RETURNING *, (xmax = 0) AS inserted,
        created_at > now() - make_interval(secs => {seconds}) AS first_contact,
        {welcome}::bool AND created_at > now() - make_interval(secs => {seconds}) AND NOT EXISTS (
            SELECT 1 FROM ledger_entries e WHERE e.tenant_id = ${tenant} AND e.kind = {kind} AND e.unique_key = {key}
        ) AS welcome_due"""


def touch_extras(user_id: int, welcome: bool) -> tuple[int, bool, str, str]:
    return FIRST_CONTACT_SECONDS, welcome, WELCOME_KIND, welcome_key(user_id)


def new_referral_code() -> str:
    return secrets.token_urlsafe(6)


class Users:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def touch(
        self,
        tenant_id: int,
        user_id: int,
        *,
        language: Language,
        first_name: str | None,
        username: str | None,
        welcome: bool = False,
    ) -> BotUser:
        """Create the user on first contact (`is_new`), else refresh last_seen. One round trip.
        `welcome`: the tenant gives a welcome bonus, so say whether this user is still owed it."""
        row = await self._pool.fetchrow(
            "INSERT INTO bot_users (tenant_id, user_id, language, first_name, username, referral_code) "
            f"VALUES ($1, $2, $3, $4, $5, $6) {TOUCH_ON_CONFLICT} {touch_returning(1, 7)}",
            tenant_id,
            user_id,
            language,
            first_name,
            username,
            new_referral_code(),
            *touch_extras(user_id, welcome),
        )
        return user_of(row)

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

    async def referred_count(self, tenant_id: int, user_id: int) -> int:
        """How many users joined with this user's referral link."""
        return int(
            await self._pool.fetchval(
                "SELECT count(*) FROM bot_users WHERE tenant_id = $1 AND referred_by = $2", tenant_id, user_id
            )
        )

    async def get(self, tenant_id: int, user_id: int) -> BotUser | None:
        row = await self._pool.fetchrow(
            "SELECT *, false AS inserted, false AS first_contact, false AS welcome_due FROM bot_users "
            "WHERE tenant_id = $1 AND user_id = $2",
            tenant_id,
            user_id,
        )
        return None if row is None else user_of(row)

    async def find(self, tenant_id: int, query: str) -> BotUser | None:
        """The user an admin means: a Telegram id, or a @username (any case)."""
        query = query.strip()
        if query.isascii() and query.isdigit() and len(query) <= TELEGRAM_ID_DIGITS:
            return await self.get(tenant_id, int(query))
        match = _USERNAME_RE.fullmatch(query)
        if match is None:
            return None
        row = await self._pool.fetchrow(
            "SELECT *, false AS inserted, false AS first_contact, false AS welcome_due FROM bot_users "
            "WHERE tenant_id = $1 AND lower(username) = lower($2) AND username IS NOT NULL "
            "ORDER BY last_seen_at DESC LIMIT 1",
            tenant_id,
            match.group(1),
        )
        return None if row is None else user_of(row)

    async def search(self, tenant_id: int, text: str, limit: int = SEARCH_LIMIT) -> list[BotUser]:
        """Users whose first name or username contains `text` (any case), the most recently seen first."""
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text.strip().lstrip("@")) + "%"
        rows = await self._pool.fetch(
            "SELECT *, false AS inserted, false AS first_contact, false AS welcome_due FROM bot_users "
            "WHERE tenant_id = $1 AND (first_name ILIKE $2 OR username ILIKE $2) "
            "ORDER BY last_seen_at DESC LIMIT $3",
            tenant_id,
            pattern,
            limit,
        )
        return [user_of(row) for row in rows]

    async def count(self, tenant_id: int) -> int:
        return int(await self._pool.fetchval("SELECT count(*) FROM bot_users WHERE tenant_id = $1", tenant_id))


def user_of(row: asyncpg.Record | Mapping[str, Any]) -> BotUser:
    return BotUser(
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        language=row["language"],
        referral_code=row["referral_code"],
        referred_by=row["referred_by"],
        created_at=row["created_at"],
        is_new=row["inserted"],
        first_contact=row["first_contact"],
        welcome_due=row["welcome_due"],
        username=row["username"],
        first_name=row["first_name"],
        banned_at=row["banned_at"],
        ban_reason=row["ban_reason"],
    )
