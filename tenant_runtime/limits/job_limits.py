"""Limits on starting generations, enforced in the transaction that creates the job and its hold.

`admit_job` runs right after the job's row is inserted. It first locks the user's account row, so two
taps of one user (on two replicas, say) are counted one after the other; it then counts in Postgres what
the user has running and what they used of today's free quota. Over a limit, it raises and the caller's
transaction rolls back: no job, no hold, nothing written. The counts read the jobs table itself, so they
hold across replicas and restarts and can never drift from the jobs they count; a failed free job gives
its use back because failed jobs are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from tenant_runtime.billing.ledger.records import Balance
from tenant_runtime.generation.job import UNFINISHED, JobStatus
from tenant_runtime.limits.free_uses import FreeUse
from tenant_runtime.limits.shop_limits import ShopLimits
from tenant_runtime.limits.tenant_day import DAY_START, NEXT_DAY_START

__all__ = [
    "FreeAllowance",
    "FreeQuotaUsed",
    "JobLimitReached",
    "TooManyOpenJobs",
    "admit_job",
    "free_allowance",
]

# An open job is minutes old (its deadline refunds it); two days bound the index range scanned.
_OPEN_HORIZON = "interval '2 days'"


class JobLimitReached(Exception):
    """A generation was refused by a limit; nothing was written."""


class TooManyOpenJobs(JobLimitReached):
    def __init__(self, running: int, limit: int) -> None:
        super().__init__(f"{running} generations running, the limit is {limit}")
        self.running = running
        self.limit = limit


@dataclass(frozen=True)
class FreeAllowance:
    """What a user has used and has left of today's free generations, and when the day turns."""

    used_today: int
    daily_limit: int
    resets_in_s: float  # seconds until midnight in the tenant's zone
    reset_at: str  # that midnight as the tenant's clock shows it, "00:00"
    timezone: str
    bonus_left: int = 0  # free generations from promo codes, used once today's quota is gone

    @property
    def left_today(self) -> int:
        return max(0, self.daily_limit - self.used_today)

    @property
    def exhausted(self) -> bool:
        return self.left_today == 0 and self.bonus_left == 0


class FreeQuotaUsed(JobLimitReached):
    def __init__(self, allowance: FreeAllowance) -> None:
        super().__init__(f"free quota used: {allowance.used_today} of {allowance.daily_limit}")
        self.allowance = allowance


# $1 tenant, $2 user, $3 time zone, $4 open statuses. Failed jobs give their free use back.
_COUNTS_SQL = f"""
    SELECT count(*) FILTER (WHERE status = ANY($4::text[])) AS open,
           count(*) FILTER (WHERE free_use = '{FreeUse.DAILY}' AND status <> '{JobStatus.FAILED}'
                            AND created_at >= {DAY_START}) AS daily_used,
           extract(epoch FROM {NEXT_DAY_START} - now())::float8 AS resets_in_s,
           to_char(timezone($3, {NEXT_DAY_START}), 'HH24:MI') AS reset_at
    FROM jobs
    WHERE tenant_id = $1 AND user_id = $2 AND created_at >= least({DAY_START}, now() - {_OPEN_HORIZON})"""

# Free generations granted by promo codes, minus those used (and not failed) by bonus jobs.
_BONUS_SQL = f"""
    SELECT coalesce((SELECT sum(free_generations) FROM promo_redemptions WHERE tenant_id = $1 AND user_id = $2), 0)
         - (SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2
                AND free_use = '{FreeUse.BONUS}' AND status <> '{JobStatus.FAILED}')"""

# Both in one round trip, for the menu and the model card.
_ALLOWANCE_SQL = f"SELECT counts.*, ({_BONUS_SQL}) AS bonus_left FROM ({_COUNTS_SQL}) counts"
# And the user's balance with them, for the main menu: one round trip for the menu's every figure.
_MENU_SQL = f"""SELECT counts.*, ({_BONUS_SQL}) AS bonus_left, coalesce(a.available, 0) AS available,
       coalesce(a.held, 0) AS held
FROM ({_COUNTS_SQL}) counts LEFT JOIN accounts a ON a.tenant_id = $1 AND a.user_id = $2"""


async def admit_job(
    conn: asyncpg.Connection, tenant_id: int, limits: ShopLimits, user_id: int, job_id: int, *, free: bool
) -> None:
    """Admit the job just inserted (in `conn`'s transaction) or raise a `JobLimitReached`."""
    await conn.execute(
        "INSERT INTO accounts (tenant_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", tenant_id, user_id
    )
    await conn.execute("SELECT 1 FROM accounts WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE", tenant_id, user_id)
    # A new statement after the lock: it sees every job the user's other taps committed meanwhile.
    counts = await conn.fetchrow(_COUNTS_SQL, tenant_id, user_id, limits.timezone, list(UNFINISHED))
    if counts["open"] > limits.max_open_jobs:  # the new job is one of them
        raise TooManyOpenJobs(counts["open"] - 1, limits.max_open_jobs)
    if not free:
        return
    use = FreeUse.DAILY
    if counts["daily_used"] >= limits.free_daily:
        if await _bonus_left(conn, tenant_id, user_id) <= 0:
            raise FreeQuotaUsed(_allowance(counts, limits, 0))
        use = FreeUse.BONUS
    await conn.execute("UPDATE jobs SET free_use = $2 WHERE id = $1", job_id, use)


async def _bonus_left(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: int, user_id: int) -> int:
    return int(await conn.fetchval(_BONUS_SQL, tenant_id, user_id))


async def free_allowance(pool: asyncpg.Pool, tenant_id: int, limits: ShopLimits, user_id: int) -> FreeAllowance:
    """Today's used and left free generations of a user (for the menu and the model card)."""
    counts = await pool.fetchrow(_ALLOWANCE_SQL, tenant_id, user_id, limits.timezone, list(UNFINISHED))
    return _allowance(counts, limits, int(counts["bonus_left"]))


async def balance_and_allowance(
    pool: asyncpg.Pool, tenant_id: int, limits: ShopLimits, user_id: int
) -> tuple[Balance, FreeAllowance]:
    """The user's balance (read now, as `Ledger.balance` reads it) and today's free allowance, together."""
    row = await pool.fetchrow(_MENU_SQL, tenant_id, user_id, limits.timezone, list(UNFINISHED))
    return Balance(row["available"], row["held"]), _allowance(row, limits, int(row["bonus_left"]))


def _allowance(counts: asyncpg.Record, limits: ShopLimits, bonus_left: int) -> FreeAllowance:
    return FreeAllowance(
        counts["daily_used"], limits.free_daily, counts["resets_in_s"], counts["reset_at"], limits.timezone, bonus_left
    )
