"""An update's arrival: what one statement does and learns before the update's handler runs.

Four round trips came before every handler: the inbox claim, the rate limit's count, the user's touch
and aiogram's read of the conversation state. They are one statement (data-modifying CTEs, each part
seeing what the earlier ones returned): the claim; then, only if the update is this process's now, the
count (a message or tap of a non-admin); then, only if within the limit, the touch; and the FSM row.
The middlewares and the FSM storage take what it found instead of asking again (`data["arrival"]`,
`fsm_storage.prefetched`). An update whose claim was made before (polled: claimed before the next
getUpdates; resumed by the inbox reclaimer) runs the same statement without the claim.

It runs in its chat's turn (`ordering.KeyedLocks`): the FSM row it reads is what the chat's previous
update left, and nothing else writes it meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiogram.dispatcher.middlewares.user_context import UserContextMiddleware
from aiogram.fsm.storage.base import DEFAULT_DESTINY
from aiogram.types import Update

from tenant_runtime.config import TenantConfig
from tenant_runtime.inbox import CLAIM_SQL, claim_args
from tenant_runtime.limits.rate import HIT_ON_CONFLICT
from tenant_runtime.telegram.fsm_storage import FsmRow
from tenant_runtime.telegram.rate_limit import counted
from tenant_runtime.telegram.texts import pick_language
from tenant_runtime.users import TOUCH_ON_CONFLICT, BotUser, new_referral_code, touch_extras, touch_returning, user_of

__all__ = ["Arrival", "Arrivals"]


@dataclass(frozen=True)
class Arrival:
    accepted: bool  # the update is this process's to handle (always, without the claim)
    hits: int | None  # its place in the sender's rate window; None: not counted (no sender, an admin, a payment)
    user: BotUser | None  # the sender, touched; None: no sender, or over the rate limit
    fsm: FsmRow | None  # the conversation's FSM row as it stands (None: no sender)

    @classmethod
    def claim_only(cls, accepted: bool) -> Arrival:
        """A claim made apart from the rest of the arrival: a polled update, claimed before the next
        getUpdates confirms it (its handling runs `Arrivals.after_claim`), or one Postgres refused."""
        return cls(accepted=accepted, hits=None, user=None, fsm=None)


def _sql(claim: bool) -> str:
    """The statement; with the claim its first eight parameters are the claim's (`inbox.CLAIM_SQL`),
    without it only $1 (the tenant) comes before the sender's."""
    b = 9 if claim else 2
    user, is_counted, limit, lang, first, username, code = (f"${b + i}" for i in range(7))
    chat, connection = f"${b + 11}", f"${b + 12}"
    claim_part = CLAIM_SQL if claim else "SELECT 1"
    return f"""
WITH claim AS ({claim_part}),
hit AS (
    INSERT INTO rate_windows (tenant_id, user_id)
    SELECT $1::bigint, {user}::bigint FROM claim WHERE {is_counted}::bool
    {HIT_ON_CONFLICT}
),
touched AS (
    INSERT INTO bot_users (tenant_id, user_id, language, first_name, username, referral_code)
    SELECT $1::bigint, {user}::bigint, {lang}::text, {first}::text, {username}::text, {code}::text FROM claim
    WHERE {user}::bigint IS NOT NULL AND coalesce((SELECT hits FROM hit), 0) <= {limit}::int
    {TOUCH_ON_CONFLICT}
    {touch_returning(1, b + 7)}
),
fsm AS (
    SELECT state AS fsm_state, data AS fsm_data FROM fsm_states
    WHERE tenant_id = $1::bigint AND chat_id = {chat}::bigint AND user_id = {user}::bigint AND thread_id = 0
      AND business_connection_id = {connection}::text AND destiny = '{DEFAULT_DESTINY}' AND EXISTS (SELECT 1 FROM claim)
)
SELECT a.accepted, h.hits, t.*, f.fsm_state, f.fsm_data
FROM (SELECT EXISTS (SELECT 1 FROM claim) AS accepted) a
LEFT JOIN hit h ON true LEFT JOIN touched t ON true LEFT JOIN fsm f ON true"""


_WITH_CLAIM, _WITHOUT_CLAIM = _sql(claim=True), _sql(claim=False)


class Arrivals:
    """Runs arrivals for this process: its pool, and its name, which a claim records."""

    def __init__(self, pool: asyncpg.Pool, instance: str) -> None:
        self._pool = pool
        self._instance = instance

    async def claim(
        self, config: TenantConfig, update: Update, payload: dict[str, Any], chat_id: int | None
    ) -> Arrival:
        """Claim a delivered update (`payload` as received, `chat_id` for the inbox row) and, if it is ours
        now, count it, touch its sender and read its conversation: one statement."""
        claim = claim_args(config.id, update.update_id, chat_id, payload, self._instance)
        return await self._arrive(_WITH_CLAIM, claim, config, update)

    async def after_claim(self, config: TenantConfig, update: Update) -> Arrival:
        """The same for an update claimed before (polled, or resumed by the inbox reclaimer)."""
        return await self._arrive(_WITHOUT_CLAIM, (config.id,), config, update)

    async def _arrive(self, sql: str, first: tuple[object, ...], config: TenantConfig, update: Update) -> Arrival:
        context = UserContextMiddleware.resolve_event_context(update)
        sender = context.user
        counts = sender is not None and counted(update) and sender.id not in config.admin_ids
        # aiogram's key for a conversation (FSMStrategy.USER_IN_CHAT): the chat, else the user's own
        fsm_chat = (context.chat_id if context.chat_id is not None else sender.id) if sender is not None else None
        connection = context.business_connection_id or ""
        row = await self._pool.fetchrow(
            sql,
            *first,
            sender.id if sender is not None else None,
            counts,
            config.limits.rate_per_minute,
            pick_language(sender.language_code if sender else None, config.default_language),
            sender.first_name if sender else None,
            sender.username if sender else None,
            new_referral_code(),
            *touch_extras(sender.id if sender else 0, config.welcome_bonus > 0),
            fsm_chat,
            connection,
        )
        assert row is not None  # the outer SELECT always returns its one row
        accepted = bool(row["accepted"])
        fsm = None
        if accepted and sender is not None and fsm_chat is not None:
            key = (config.id, fsm_chat, sender.id, 0, connection, DEFAULT_DESTINY)
            fsm = FsmRow(key, row["fsm_state"], dict(row["fsm_data"]) if row["fsm_data"] else {})
        return Arrival(
            accepted=accepted,
            hits=row["hits"] if counts and accepted else None,
            user=user_of(row) if row["user_id"] is not None else None,
            fsm=fsm,
        )
