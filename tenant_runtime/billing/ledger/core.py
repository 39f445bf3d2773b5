"""The ledger's base: transactions (own or joined as a savepoint), and the one primitive that changes a
balance and writes its entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tenant_runtime.billing.ledger.errors import AlreadyApplied, InsufficientFunds
from tenant_runtime.billing.ledger.kinds import DELTAS, Kind


class LedgerBase:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def _transaction(self, conn: asyncpg.Connection | None) -> AsyncIterator[asyncpg.Connection]:
        if conn is None:
            async with self._pool.acquire() as own, own.transaction():
                yield own
        else:
            # A savepoint: our failure leaves the caller's transaction usable.
            async with conn.transaction():
                yield conn

    @asynccontextmanager
    async def _reading(self, conn: asyncpg.Connection | None) -> AsyncIterator[asyncpg.Connection]:
        if conn is None:
            async with self._pool.acquire() as own:
                yield own
        else:
            yield conn

    # -- the one primitive that changes a balance ------------------------------------------------

    @staticmethod
    async def _ensure_account(conn: asyncpg.Connection, tenant_id: int, user_id: int) -> None:
        await conn.execute(
            "INSERT INTO accounts (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", tenant_id, user_id
        )

    @staticmethod
    async def _move(
        conn: asyncpg.Connection,
        tenant_id: int,
        user_id: int,
        kind: Kind,
        amount: int,
        *,
        actor: str,
        unique_key: str | None = None,
        hold_id: int | None = None,
        reference: str | None = None,
        correlation_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        sign_available, sign_held = DELTAS[kind]
        after = await conn.fetchrow(
            "UPDATE accounts SET available = available + $3, held = held + $4, updated_at = now() "
            "WHERE tenant_id = $1 AND user_id = $2 AND available + $3 >= 0 RETURNING available, held",
            tenant_id,
            user_id,
            sign_available * amount,
            sign_held * amount,
        )
        if after is None:
            available = await conn.fetchval(
                "SELECT available FROM accounts WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
            raise InsufficientFunds(available or 0, amount)
        entry_id = await conn.fetchval(
            """INSERT INTO ledger_entries (tenant_id, user_id, kind, amount, hold_id, unique_key, reference,
                   correlation_id, actor, reason, available_after, held_after)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (tenant_id, kind, unique_key) DO NOTHING RETURNING id""",
            tenant_id,
            user_id,
            kind,
            amount,
            hold_id,
            unique_key,
            reference,
            correlation_id,
            actor,
            reason,
            after["available"],
            after["held"],
        )
        if entry_id is None:
            raise AlreadyApplied(f"{kind} {unique_key!r} was already recorded")
