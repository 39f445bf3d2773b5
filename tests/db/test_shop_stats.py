"""Shop statistics against a seeded month and a half of one shop's life, with another shop beside it:
every number matches what the test computes itself from the rows it wrote (never from SQL), for each
period and in the shop's own time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from sandbox.shop_history import History, seed_shop_history
from tenant_runtime.analytics import Period, shop_stats
from tests.helpers import add_bare_tenants


def _since(period: Period, zone: str) -> datetime:
    local = datetime.now(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=period.days - 1)


def _expected(history: History, since: datetime) -> dict[str, object]:
    models: dict[str, list[int]] = {}
    credits = Decimal(0)
    for g in history.generations:
        if g.created_at < since:
            continue
        row = models.setdefault(g.model, [0, 0, 0, 0])
        row[0] += 1
        row[1] += g.status in ("succeeded", "delivered")
        row[2] += g.status == "failed"
        row[3] += g.price if g.status == "failed" else 0
        credits += g.kie_credits if g.status in ("succeeded", "delivered") else 0
    return {
        "revenue": sum(a for _, a, at in history.topups if at >= since),
        "spend": sum(a for _, a, at in history.commits if at >= since),
        "paying": len({u for u, _, at in history.topups if at >= since}),
        "new_users": sum(1 for at in history.users.values() if at >= since),
        "models": {m: tuple(v) for m, v in models.items()},
        "credits": credits,
    }


@pytest.mark.parametrize("zone", ["Europe/Moscow", "UTC"])
async def test_stats_match_the_rows_for_every_period(module_pool: asyncpg.Pool, zone: str) -> None:
    shop, other = await add_bare_tenants(module_pool, f"st{zone[:2].lower()}", 2, first_bot_id=881_000_000 + len(zone))
    history = await seed_shop_history(module_pool, shop.id, users=300, topups=400, generations=900, seed=len(zone))
    await seed_shop_history(module_pool, other.id, users=50, topups=80, generations=100, seed=99)
    for period in Period:
        stats = await shop_stats(module_pool, shop.id, zone, period)
        want = _expected(history, _since(period, zone))
        got = {
            "revenue": stats.revenue,
            "spend": stats.spend,
            "paying": stats.paying_users,
            "new_users": stats.new_users,
            "models": {m.model: (m.generations, m.succeeded, m.failed, m.returned) for m in stats.models},
            "credits": stats.kie_credits,
        }
        assert got == want, period
        assert stats.since == _since(period, zone)
        assert [m.generations for m in stats.models] == sorted((m.generations for m in stats.models), reverse=True)
    assert (await shop_stats(module_pool, shop.id, zone, Period.MONTH)).generations > 0, "the seed reached the period"


async def test_a_shop_with_no_history_has_zeros(module_pool: asyncpg.Pool) -> None:
    (shop,) = await add_bare_tenants(module_pool, "stempty", 1, first_bot_id=881_100_000)
    stats = await shop_stats(module_pool, shop.id, "Europe/Moscow", Period.WEEK)
    assert (stats.revenue, stats.spend, stats.new_users, stats.paying_users, stats.models) == (0, 0, 0, 0, ())
    assert stats.kie_credits == 0
