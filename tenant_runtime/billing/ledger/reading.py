"""Reading the ledger: balances, holds, history, today's spending, and reconciliation."""

from __future__ import annotations

import asyncpg

from tenant_runtime.billing.ledger.core import LedgerBase
from tenant_runtime.billing.ledger.credits import REFERRER_KEY
from tenant_runtime.billing.ledger.records import ENTRY_COLUMNS, HOLD_COLUMNS, Balance, Discrepancy, Hold, LedgerEntry


class Reading(LedgerBase):
    async def balance(self, tenant_id: int, user_id: int, *, conn: asyncpg.Connection | None = None) -> Balance:
        async with self._reading(conn) as c:
            row = await c.fetchrow(
                "SELECT available, held FROM accounts WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
            )
        return Balance(0, 0) if row is None else Balance(row["available"], row["held"])

    async def hold(self, tenant_id: int, hold_id: int, *, conn: asyncpg.Connection | None = None) -> Hold | None:
        async with self._reading(conn) as c:
            row = await c.fetchrow(
                f"SELECT {HOLD_COLUMNS} FROM holds WHERE tenant_id = $1 AND id = $2", tenant_id, hold_id
            )
        return None if row is None else Hold(**row)

    async def referral_earnings(self, tenant_id: int, user_id: int) -> int:
        """What a user was credited for the users who joined with their link, in minor units."""
        total = await self._pool.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = $1 AND user_id = $2 "
            "AND kind = 'bonus_referral' AND starts_with(unique_key, $3)",
            tenant_id,
            user_id,
            REFERRER_KEY,
        )
        return int(total)

    async def committed_today(self, tenant_id: int) -> int:
        """What users of a tenant paid for generations today (UTC), in minor units."""
        total = await self._pool.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'commit' "
            "AND created_at >= date_trunc('day', now())",
            tenant_id,
        )
        return int(total)

    async def history(
        self,
        tenant_id: int,
        user_id: int,
        limit: int = 20,
        offset: int = 0,
        *,
        conn: asyncpg.Connection | None = None,
    ) -> list[LedgerEntry]:
        """Newest first."""
        async with self._reading(conn) as c:
            rows = await c.fetch(
                f"""SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE tenant_id = $1 AND user_id = $2
                    ORDER BY id DESC LIMIT $3 OFFSET $4""",
                tenant_id,
                user_id,
                limit,
                offset,
            )
        return [LedgerEntry(**r) for r in rows]

    async def reconcile(self, tenant_id: int | None = None) -> list[Discrepancy]:
        """Accounts whose (available, held) differ from their ledger sums, or whose held differs from the
        sum of their pending holds. Empty means consistent. One statement, so one consistent snapshot."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                """WITH sums AS (
                       SELECT tenant_id, user_id, sum(available_delta)::bigint AS available,
                              sum(held_delta)::bigint AS held
                       FROM ledger_entries WHERE $1::bigint IS NULL OR tenant_id = $1
                       GROUP BY tenant_id, user_id),
                   pending AS (
                       SELECT tenant_id, user_id, sum(amount)::bigint AS held FROM holds
                       WHERE status = 'pending' AND ($1::bigint IS NULL OR tenant_id = $1)
                       GROUP BY tenant_id, user_id)
                   SELECT a.tenant_id, a.user_id, a.available, a.held,
                          coalesce(s.available, 0) AS ledger_available, coalesce(s.held, 0) AS ledger_held,
                          coalesce(p.held, 0) AS pending_held
                   FROM accounts a
                   LEFT JOIN sums s USING (tenant_id, user_id)
                   LEFT JOIN pending p USING (tenant_id, user_id)
                   WHERE ($1::bigint IS NULL OR a.tenant_id = $1)
                     AND (a.available <> coalesce(s.available, 0) OR a.held <> coalesce(s.held, 0)
                          OR a.held <> coalesce(p.held, 0))
                   ORDER BY a.tenant_id, a.user_id""",
                tenant_id,
            )
        return [Discrepancy(**r) for r in rows]
