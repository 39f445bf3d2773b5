"""Bans: a banned user keeps their balance, their running generations are stopped and their held money
released, and they get one short message a day and nothing else (`telegram.ban_gate`).

A ban is one transaction: the user is marked, their open jobs fail by the same guarded transition as any
other failure (a later KIE callback or poll finds them finished and changes nothing, so they are never
charged), each job's hold is released through the ordinary settlement, and the audit log gets the admin's
id and reason. Unban clears the mark, audited the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import asyncpg

from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.billing.settlement import Settlement, settle_job_hold
from tenant_runtime.generation.job import UNFINISHED, JobStatus
from tenant_runtime.moderation.audit import AuditAction, record

__all__ = ["BAN_FAIL_REASON", "MAX_REASON", "BanOutcome", "BanResult", "ban", "tell_today", "unban"]

BAN_FAIL_REASON = "banned"  # jobs.fail_reason of a generation stopped by a ban (text `fail.banned`)
MAX_REASON = 500


class BanOutcome(Enum):
    DONE = "done"
    UNKNOWN_USER = "unknown_user"
    ALREADY = "already"  # banned already (ban) / not banned (unban): nothing changed


@dataclass(frozen=True)
class BanResult:
    outcome: BanOutcome
    stopped_jobs: int = 0
    released: int = 0  # minor units returned from holds to the balance


def _checked_reason(reason: str) -> str:
    cleaned = reason.strip()
    if not 1 <= len(cleaned) <= MAX_REASON:
        raise ValueError(f"a reason of 1 to {MAX_REASON} characters is required")
    return cleaned


async def ban(
    pool: asyncpg.Pool, ledger: Ledger, tenant_id: int, user_id: int, admin_id: int, reason: str
) -> BanResult:
    reason = _checked_reason(reason)
    async with pool.acquire() as conn, conn.transaction():
        exists = await conn.fetchval(
            "SELECT banned_at IS NOT NULL FROM bot_users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE",
            tenant_id,
            user_id,
        )
        if exists is None:
            return BanResult(BanOutcome.UNKNOWN_USER)
        if exists:
            return BanResult(BanOutcome.ALREADY)
        await conn.execute(
            "UPDATE bot_users SET banned_at = now(), ban_reason = $3, banned_by = $4, ban_told_on = NULL "
            "WHERE tenant_id = $1 AND user_id = $2",
            tenant_id,
            user_id,
            reason,
            admin_id,
        )
        jobs = await conn.fetch(
            """UPDATE jobs SET status = $3, finished_at = now(), fail_reason = $4, fail_detail = $5
               WHERE tenant_id = $1 AND user_id = $2 AND status = ANY($6::text[])
               RETURNING id, hold_id, price, correlation_id""",
            tenant_id,
            user_id,
            JobStatus.FAILED,
            BAN_FAIL_REASON,
            f"user banned by admin:{admin_id}",
            list(UNFINISHED),
        )
        released = 0
        for job in jobs:
            if job["hold_id"] is None:
                continue
            settled = await settle_job_hold(
                ledger,
                conn,
                tenant_id,
                job_id=job["id"],
                user_id=user_id,
                hold_id=job["hold_id"],
                price=job["price"],
                ok=False,
                correlation_id=job["correlation_id"],
            )
            if settled is Settlement.RELEASED:
                released += job["price"]
        await record(conn, tenant_id, f"admin:{admin_id}", AuditAction.BAN, str(user_id), reason)
    return BanResult(BanOutcome.DONE, len(jobs), released)


async def unban(pool: asyncpg.Pool, tenant_id: int, user_id: int, admin_id: int, reason: str) -> BanResult:
    reason = _checked_reason(reason)
    async with pool.acquire() as conn, conn.transaction():
        banned = await conn.fetchval(
            "SELECT banned_at IS NOT NULL FROM bot_users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE",
            tenant_id,
            user_id,
        )
        if banned is None:
            return BanResult(BanOutcome.UNKNOWN_USER)
        if not banned:
            return BanResult(BanOutcome.ALREADY)
        await conn.execute(
            "UPDATE bot_users SET banned_at = NULL, ban_reason = NULL, banned_by = NULL, ban_told_on = NULL "
            "WHERE tenant_id = $1 AND user_id = $2",
            tenant_id,
            user_id,
        )
        await record(conn, tenant_id, f"admin:{admin_id}", AuditAction.UNBAN, str(user_id), reason)
    return BanResult(BanOutcome.DONE)


async def tell_today(pool: asyncpg.Pool, tenant_id: int, user_id: int, timezone: str) -> bool:
    """True once per day (in the tenant's zone) for a banned user: the day's one message is due."""
    told = await pool.fetchval(
        """UPDATE bot_users SET ban_told_on = timezone($3, now())::date
           WHERE tenant_id = $1 AND user_id = $2 AND banned_at IS NOT NULL
             AND ban_told_on IS DISTINCT FROM timezone($3, now())::date
           RETURNING 1""",
        tenant_id,
        user_id,
        timezone,
    )
    return told is not None
