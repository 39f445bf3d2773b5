"""aiogram FSM storage in Postgres, keyed by tenant, so any process can continue any conversation.

An update's arrival read its conversation's row already (`tenant_runtime.arrival`): while the update is
handled, reads of that key are answered from it (`prefetched`) until the first write to the key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

Key = tuple[int, int, int, int, str, str]  # tenant, chat, user, thread (0: none), business connection, destiny


@dataclass
class FsmRow:
    """One conversation's FSM row as the update's arrival read it; `fresh` until the key is written."""

    key: Key
    state: str | None
    data: dict[str, Any]
    fresh: bool = True


_PREFETCHED: ContextVar[FsmRow | None] = ContextVar("fsm_prefetched", default=None)


@contextmanager
def prefetched(row: FsmRow | None) -> Iterator[None]:
    """Answer reads of `row`'s key from it while the update is handled (and never after: a task the
    handler started may outlive it, and the next update of the chat may write the key)."""
    token = _PREFETCHED.set(row)
    try:
        yield
    finally:
        _PREFETCHED.reset(token)
        if row is not None:
            row.fresh = False


def _row_for(key: Key) -> FsmRow | None:
    row = _PREFETCHED.get()
    return row if row is not None and row.fresh and row.key == key else None


def _written(key: Key) -> None:
    row = _PREFETCHED.get()
    if row is not None and row.key == key:
        row.fresh = False


class UnknownBotError(LookupError):
    """A storage key for a bot no tenant owns: refuse rather than write into a shared namespace."""


class PgStorage(BaseStorage):
    def __init__(self, pool: asyncpg.Pool, tenant_by_bot: Mapping[int, int]) -> None:
        self._pool = pool
        # Owned by the supervisor and updated as tenants come and go; bot ids are unique per tenant.
        self._tenant_by_bot = tenant_by_bot

    def _params(self, key: StorageKey) -> Key:
        tenant_id = self._tenant_by_bot.get(key.bot_id)
        if tenant_id is None:
            raise UnknownBotError(f"no tenant for bot {key.bot_id}")
        return (tenant_id, key.chat_id, key.user_id, key.thread_id or 0, key.business_connection_id or "", key.destiny)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        params = self._params(key)
        _written(params)
        await self._pool.execute(
            """INSERT INTO fsm_states (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny, state)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny)
               DO UPDATE SET state = EXCLUDED.state, updated_at = now()""",
            *params,
            value,
        )

    async def get_state(self, key: StorageKey) -> str | None:
        params = self._params(key)
        if (row := _row_for(params)) is not None:
            return row.state
        return await self._pool.fetchval(
            """SELECT state FROM fsm_states WHERE tenant_id = $1 AND chat_id = $2 AND user_id = $3
               AND thread_id = $4 AND business_connection_id = $5 AND destiny = $6""",
            *params,
        )

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        params = self._params(key)
        _written(params)
        await self._pool.execute(
            """INSERT INTO fsm_states (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny)
               DO UPDATE SET data = EXCLUDED.data, updated_at = now()""",
            *params,
            dict(data),
        )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        params = self._params(key)
        if (row := _row_for(params)) is not None:
            return dict(row.data)  # a copy, as from the database: the caller may change it
        data = await self._pool.fetchval(
            """SELECT data FROM fsm_states WHERE tenant_id = $1 AND chat_id = $2 AND user_id = $3
               AND thread_id = $4 AND business_connection_id = $5 AND destiny = $6""",
            *params,
        )
        return dict(data) if data else {}

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        # One round trip instead of read-modify-write: jsonb || merges at the top level like dict.update.
        params = self._params(key)
        _written(params)
        merged = await self._pool.fetchval(
            """INSERT INTO fsm_states (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny, data)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny)
               DO UPDATE SET data = fsm_states.data || EXCLUDED.data, updated_at = now()
               RETURNING data""",
            *params,
            dict(data),
        )
        return dict(merged)

    async def close(self) -> None:
        """The pool belongs to the supervisor, which closes it."""
