"""Two-phase holds: reserve before a generation, then commit (spend) or release (return), or expire."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg

from tenant_runtime.billing.ledger.core import LedgerBase
from tenant_runtime.billing.ledger.errors import (
    IdempotencyConflict,
    InvalidRequest,
    require_amount,
    require_positive,
    require_text,
)
from tenant_runtime.billing.ledger.kinds import RESOLVED_STATUS, Kind
from tenant_runtime.billing.ledger.records import HOLD_COLUMNS, Hold


class Holds(LedgerBase):
    async def reserve(
        self,
        tenant_id: int,
        user_id: int,
        amount: int,
        idempotency_key: str,
        *,
        correlation_id: str | None,
        actor: str,
        ttl_seconds: int,
        conn: asyncpg.Connection | None = None,
    ) -> Hold:
        """Move `amount` from available to held. The same key returns the same hold, whatever its status."""
        require_amount(amount)
        require_text(idempotency_key, "idempotency_key")
        require_positive(ttl_seconds, "ttl_seconds")
        async with self._transaction(conn) as c:
            await self._ensure_account(c, tenant_id, user_id)
            # The hold row goes first: a concurrent reserve with this key waits on it and then finds it.
            row = await c.fetchrow(
                f"""INSERT INTO holds (tenant_id, user_id, amount, idempotency_key, expires_at, correlation_id)
                    VALUES ($1, $2, $3, $4, now() + $5 * interval '1 second', $6)
                    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING {HOLD_COLUMNS}""",
                tenant_id,
                user_id,
                amount,
                idempotency_key,
                ttl_seconds,
                correlation_id,
            )
            if row is None:
                existing = await c.fetchrow(
                    f"SELECT {HOLD_COLUMNS} FROM holds WHERE tenant_id = $1 AND idempotency_key = $2",
                    tenant_id,
                    idempotency_key,
                )
                if (existing["user_id"], existing["amount"]) != (user_id, amount):
                    raise IdempotencyConflict(
                        f"idempotency key {idempotency_key!r} already holds {existing['amount']} "
                        f"for user {existing['user_id']}"
                    )
                return Hold(**existing)
            await self._move(
                c,
                tenant_id,
                user_id,
                "hold",
                amount,
                actor=actor,
                hold_id=row["id"],
                reference=f"hold:{row['id']}",
                correlation_id=correlation_id,
            )
        return Hold(**row)

    async def charge(
        self,
        tenant_id: int,
        user_id: int,
        amount: int,
        idempotency_key: str,
        *,
        correlation_id: str | None,
        actor: str,
        conn: asyncpg.Connection | None = None,
    ) -> Hold:
        """Spend `amount` now, once per key: a hold reserved and committed in one transaction, so the
        ledger reads like any generation's (hold, commit). Raises InsufficientFunds (nothing written)."""
        async with self._transaction(conn) as c:
            hold = await self.reserve(
                tenant_id,
                user_id,
                amount,
                idempotency_key,
                correlation_id=correlation_id,
                actor=actor,
                ttl_seconds=60,
                conn=c,
            )
            if hold.status == "pending":
                await self._resolve(c, tenant_id, hold.id, "commit")
            found = await c.fetchrow(f"SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1", hold.id)
        return Hold(**found)

    async def commit(self, tenant_id: int, hold_id: int, conn: asyncpg.Connection | None = None) -> bool:
        """Spend a pending hold. False if it was already resolved (or is not this tenant's)."""
        async with self._transaction(conn) as c:
            return await self._resolve(c, tenant_id, hold_id, "commit")

    async def release(
        self,
        tenant_id: int,
        hold_id: int,
        *,
        kind: Literal["release", "expiry"] = "release",
        conn: asyncpg.Connection | None = None,
    ) -> bool:
        """Return a pending hold to available. False if it was already resolved (or is not this tenant's)."""
        if kind not in ("release", "expiry"):
            raise InvalidRequest(f"release kind must be 'release' or 'expiry', got {kind!r}")
        async with self._transaction(conn) as c:
            return await self._resolve(c, tenant_id, hold_id, kind)

    async def _resolve(self, conn: asyncpg.Connection, tenant_id: int, hold_id: int, kind: Kind) -> bool:
        # The status guard makes resolution happen once: a concurrent resolver waits on the row lock,
        # then finds the status changed and matches nothing.
        hold = await conn.fetchrow(
            "UPDATE holds SET status = $3, resolved_at = now() "
            "WHERE tenant_id = $1 AND id = $2 AND status = 'pending' RETURNING user_id, amount, correlation_id",
            tenant_id,
            hold_id,
            RESOLVED_STATUS[kind],
        )
        if hold is None:
            return False
        await self._move(
            conn,
            tenant_id,
            hold["user_id"],
            kind,
            hold["amount"],
            actor="system",
            hold_id=hold_id,
            reference=f"hold:{hold_id}",
            correlation_id=hold["correlation_id"],
        )
        return True

    async def expire_holds(self, tenant_id: int | None = None, now: datetime | None = None) -> int:
        """Release pending holds past expires_at (as of `now`, default the database clock).

        One hold per transaction, claimed with SKIP LOCKED: sweepers in several processes share the work,
        and no transaction ever locks two accounts, so they cannot deadlock with each other or with users.
        """
        expired = 0
        async with self._pool.acquire() as conn:
            while True:
                async with conn.transaction():
                    claimed = await conn.fetchrow(
                        """SELECT tenant_id, id FROM holds
                           WHERE status = 'pending' AND expires_at <= coalesce($1::timestamptz, now())
                             AND ($2::bigint IS NULL OR tenant_id = $2)
                           ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED""",
                        now,
                        tenant_id,
                    )
                    if claimed is None:
                        return expired
                    if await self._resolve(conn, claimed["tenant_id"], claimed["id"], "expiry"):
                        expired += 1
