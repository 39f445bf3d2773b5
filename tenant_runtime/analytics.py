"""A shop's numbers for a period (today, 7 or 30 days, days in the shop's time zone): money in (Stars
top-ups), money spent (committed generations), new and paying users, generations by model with their
success rate and the money returned for failures, and the KIE credits the successful ones cost.

Three statements, each reading only one tenant's rows of the period through an index
(sql/020_shop_stats.sql); `make bench` measures them at a million ledger rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import asyncpg

__all__ = ["ModelStats", "Period", "ShopStats", "ShopSummary", "all_shops", "shop_stats"]


class Period(StrEnum):
    TODAY = "today"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def days(self) -> int:
        return {"today": 1, "7d": 7, "30d": 30}[self.value]


@dataclass(frozen=True)
class ModelStats:
    model: str
    generations: int
    succeeded: int
    failed: int
    returned: int  # minor units given back for failed generations

    @property
    def success_rate(self) -> float:
        finished = self.succeeded + self.failed
        return self.succeeded / finished if finished else 0.0


@dataclass(frozen=True)
class ShopStats:
    period: Period
    since: datetime  # the start of the period's first day, in the shop's time zone
    revenue: int  # Stars top-ups, minor units
    spend: int  # generations paid for, minor units
    new_users: int
    paying_users: int
    kie_credits: Decimal
    models: tuple[ModelStats, ...]  # busiest first

    @property
    def generations(self) -> int:
        return sum(m.generations for m in self.models)


_SINCE = "SELECT (date_trunc('day', now() AT TIME ZONE $1) - make_interval(days => $2 - 1)) AT TIME ZONE $1"

_MONEY = """
SELECT coalesce(sum(amount) FILTER (WHERE kind = 'topup'), 0) AS revenue,
       coalesce(sum(amount) FILTER (WHERE kind = 'commit'), 0) AS spend,
       count(DISTINCT user_id) FILTER (WHERE kind = 'topup') AS paying
FROM ledger_entries
WHERE tenant_id = $1 AND kind IN ('topup', 'commit') AND created_at >= $2
"""

_MODELS = """
SELECT model,
       count(*) AS generations,
       count(*) FILTER (WHERE status IN ('succeeded', 'delivered')) AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       coalesce(sum(price) FILTER (WHERE status = 'failed'), 0) AS returned,
       coalesce(sum(kie_credits) FILTER (WHERE status IN ('succeeded', 'delivered')), 0) AS kie_credits
FROM jobs
WHERE tenant_id = $1 AND created_at >= $2
GROUP BY model
ORDER BY count(*) DESC, model
"""


async def shop_stats(pool: asyncpg.Pool, tenant_id: int, timezone: str, period: Period) -> ShopStats:
    async with pool.acquire() as conn:
        since = await conn.fetchval(_SINCE, timezone, period.days)
        money = await conn.fetchrow(_MONEY, tenant_id, since)
        new_users = await conn.fetchval(
            "SELECT count(*) FROM bot_users WHERE tenant_id = $1 AND created_at >= $2", tenant_id, since
        )
        rows = await conn.fetch(_MODELS, tenant_id, since)
    models = tuple(
        ModelStats(r["model"], r["generations"], r["succeeded"], r["failed"], int(r["returned"])) for r in rows
    )
    return ShopStats(
        period=period,
        since=since,
        revenue=int(money["revenue"]),
        spend=int(money["spend"]),
        new_users=int(new_users),
        paying_users=int(money["paying"]),
        kie_credits=sum((Decimal(r["kie_credits"]) for r in rows), Decimal(0)),
        models=models,
    )


@dataclass(frozen=True)
class ShopSummary:
    """One row of the operator's overview: a shop's numbers for the period, in its own time zone."""

    slug: str
    revenue: int
    spend: int
    new_users: int
    paying_users: int
    generations: int
    succeeded: int
    failed: int
    kie_credits: Decimal


# Each shop's period starts at midnight in its own zone; one pass over the period's rows for all shops.
_SHOP_SINCE = (
    "(date_trunc('day', now() AT TIME ZONE t.timezone) - make_interval(days => $1 - 1)) AT TIME ZONE t.timezone"
)

_ALL_SHOPS = f"""
WITH shops AS (SELECT t.id, t.slug, {_SHOP_SINCE} AS since FROM tenants t),
money AS (
    SELECT e.tenant_id,
           sum(e.amount) FILTER (WHERE e.kind = 'topup') AS revenue,
           sum(e.amount) FILTER (WHERE e.kind = 'commit') AS spend,
           count(DISTINCT e.user_id) FILTER (WHERE e.kind = 'topup') AS paying
    FROM shops s JOIN ledger_entries e ON e.tenant_id = s.id AND e.kind IN ('topup', 'commit') AND e.created_at >= s.since
    GROUP BY e.tenant_id),
joined AS (
    SELECT u.tenant_id, count(*) AS new_users
    FROM shops s JOIN bot_users u ON u.tenant_id = s.id AND u.created_at >= s.since
    GROUP BY u.tenant_id),
work AS (
    SELECT j.tenant_id, count(*) AS generations,
           count(*) FILTER (WHERE j.status IN ('succeeded', 'delivered')) AS succeeded,
           count(*) FILTER (WHERE j.status = 'failed') AS failed,
           sum(j.kie_credits) FILTER (WHERE j.status IN ('succeeded', 'delivered')) AS kie_credits
    FROM shops s JOIN jobs j ON j.tenant_id = s.id AND j.created_at >= s.since
    GROUP BY j.tenant_id)
SELECT s.slug, coalesce(m.revenue, 0) AS revenue, coalesce(m.spend, 0) AS spend, coalesce(m.paying, 0) AS paying,
       coalesce(n.new_users, 0) AS new_users, coalesce(w.generations, 0) AS generations,
       coalesce(w.succeeded, 0) AS succeeded, coalesce(w.failed, 0) AS failed,
       coalesce(w.kie_credits, 0) AS kie_credits
FROM shops s LEFT JOIN money m ON m.tenant_id = s.id LEFT JOIN joined n ON n.tenant_id = s.id
LEFT JOIN work w ON w.tenant_id = s.id
ORDER BY coalesce(m.revenue, 0) DESC, s.slug
"""


async def all_shops(pool: asyncpg.Pool, period: Period) -> list[ShopSummary]:
    """Every shop's numbers for the period, the highest revenue first (the operator's /status/stats)."""
    rows = await pool.fetch(_ALL_SHOPS, period.days)
    return [
        ShopSummary(
            slug=r["slug"],
            revenue=int(r["revenue"]),
            spend=int(r["spend"]),
            new_users=int(r["new_users"]),
            paying_users=int(r["paying"]),
            generations=int(r["generations"]),
            succeeded=int(r["succeeded"]),
            failed=int(r["failed"]),
            kie_credits=Decimal(r["kie_credits"]),
        )
        for r in rows
    ]
