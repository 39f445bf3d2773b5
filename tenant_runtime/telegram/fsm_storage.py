"""aiogram FSM storage in Postgres, keyed by tenant, so any process can continue any conversation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey


class UnknownBotError(LookupError):
    """A storage key for a bot no tenant owns: refuse rather than write into a shared namespace."""


class PgStorage(BaseStorage):
    def __init__(self, pool: asyncpg.Pool, tenant_by_bot: Mapping[int, int]) -> None:
        self._pool = pool
        # Owned by the supervisor and updated as tenants come and go; bot ids are unique per tenant.
        self._tenant_by_bot = tenant_by_bot

    def _params(self, key: StorageKey) -> tuple[int, int, int, int, str, str]:
        tenant_id = self._tenant_by_bot.get(key.bot_id)
        if tenant_id is None:
            raise UnknownBotError(f"no tenant for bot {key.bot_id}")
        return (tenant_id, key.chat_id, key.user_id, key.thread_id or 0, key.business_connection_id or "", key.destiny)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._pool.execute(
            """INSERT INTO fsm_states (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny, state)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny)
               DO UPDATE SET state = EXCLUDED.state, updated_at = now()""",
            *self._params(key),
            value,
        )

    async def get_state(self, key: StorageKey) -> str | None:
        return await self._pool.fetchval(
            """SELECT state FROM fsm_states WHERE tenant_id = $1 AND chat_id = $2 AND user_id = $3
               AND thread_id = $4 AND business_connection_id = $5 AND destiny = $6""",
            *self._params(key),
        )

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._pool.execute(
            """INSERT INTO fsm_states (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny)
               DO UPDATE SET data = EXCLUDED.data, updated_at = now()""",
            *self._params(key),
            dict(data),
        )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        data = await self._pool.fetchval(
            """SELECT data FROM fsm_states WHERE tenant_id = $1 AND chat_id = $2 AND user_id = $3
               AND thread_id = $4 AND business_connection_id = $5 AND destiny = $6""",
            *self._params(key),
        )
        return dict(data) if data else {}

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        # One round trip instead of read-modify-write: jsonb || merges at the top level like dict.update.
        merged = await self._pool.fetchval(
            """INSERT INTO fsm_states (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny)
               DO UPDATE SET data = fsm_states.data || EXCLUDED.data, updated_at = now()
               RETURNING data""",
            *self._params(key),
            dict(data),
        )
        return dict(merged)

    async def close(self) -> None:
        """The pool belongs to the supervisor, which closes it."""
