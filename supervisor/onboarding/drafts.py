"""The platform bot's conversations in Postgres (aiogram FSM storage), one row per user.

Any process may hold the platform bot next (supervisor.onboarding.poller), so a conversation lives in
the database, not in a process. The platform bot speaks only in private chats, where the chat is the
user: the user id is the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

__all__ = ["DRAFT_TTL", "DraftStorage", "prune_drafts"]

DRAFT_TTL = "1 day"  # an abandoned flow is forgotten, with the encrypted secrets it held


class DraftStorage(BaseStorage):
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._pool.execute(
            """INSERT INTO onboarding_drafts (user_id, state) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE SET state = EXCLUDED.state, updated_at = now()""",
            key.user_id,
            value,
        )

    async def get_state(self, key: StorageKey) -> str | None:
        return await self._pool.fetchval(
            f"SELECT state FROM onboarding_drafts WHERE user_id = $1 AND updated_at > now() - interval '{DRAFT_TTL}'",
            key.user_id,
        )

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._pool.execute(
            """INSERT INTO onboarding_drafts (user_id, data) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE SET data = EXCLUDED.data, updated_at = now()""",
            key.user_id,
            dict(data),
        )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data = await self._pool.fetchval(
            f"SELECT data FROM onboarding_drafts WHERE user_id = $1 AND updated_at > now() - interval '{DRAFT_TTL}'",
            key.user_id,
        )
        return dict(data) if data else {}

    async def close(self) -> None:
        """The pool belongs to the supervisor, which closes it."""


async def prune_drafts(pool: asyncpg.Pool) -> int:
    status = await pool.execute(f"DELETE FROM onboarding_drafts WHERE updated_at < now() - interval '{DRAFT_TTL}'")
    return int(status.split()[-1])
