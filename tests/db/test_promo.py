"""Promo codes against real Postgres (issue 17, item 3): created once, redeemed exactly once per user and
never beyond max uses, also when many taps from two replicas (two pools) race; every refusal writes nothing."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Iterator
from datetime import date, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db import create_pool
from shared.registry import load_registry
from shared.settings import Settings
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.generation.job import JobStatus
from tenant_runtime.generation.jobs import JobService
from tenant_runtime.kie.client import KieClient, KieClientConfig
from tenant_runtime.limits.job_limits import FreeQuotaUsed, free_allowance
from tenant_runtime.limits.shop_limits import ShopLimits
from tenant_runtime.moderation.audit import AuditAction, recent
from tenant_runtime.promo import store
from tenant_runtime.promo.codes import PromoField, PromoInputError, PromoSpec
from tenant_runtime.promo.store import RedeemOutcome
from tests import own_database
from tests.helpers import LoopThread, add_bare_tenants

ADMIN = "admin:777"
_bots = iter(range(883_500_000, 883_600_000))
_users = iter(range(44_000_000, 45_000_000))


database_url = own_database.database_url
pool = own_database.pool


async def _tenant(pool: asyncpg.Pool) -> int:
    (config,) = await add_bare_tenants(pool, f"promo{secrets.token_hex(3)}", 1, first_bot_id=next(_bots))
    return config.id


def _money(code: str, amount: int = 10_000, max_uses: int = 10, expires: date | None = None) -> PromoSpec:
    return PromoSpec(code, amount, None, max_uses, expires)


async def test_create_list_disable_and_audit(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    created = await store.create(pool, tenant, "Europe/Moscow", _money("SPRING", expires=date(2099, 1, 31)), ADMIN)
    assert created.active and created.uses == 0
    await store.create(pool, tenant, "Europe/Moscow", PromoSpec("FREE5", None, 5, 20, None), "operator:ops")
    listed = {p.code: p for p in await store.codes(pool, tenant, "Europe/Moscow")}
    assert listed["SPRING"].valid_through == date(2099, 1, 31) and listed["FREE5"].valid_through is None
    assert await store.disable(pool, tenant, "SPRING", ADMIN)
    assert not await store.disable(pool, tenant, "SPRING", ADMIN), "disabled once"
    assert not await store.disable(pool, tenant, "NOPE", ADMIN)
    entries = await recent(pool, tenant)
    assert [(e.action, e.subject, e.actor) for e in entries] == [
        (AuditAction.PROMO_DISABLE, "SPRING", ADMIN),
        (AuditAction.PROMO_CREATE, "FREE5", "operator:ops"),
        (AuditAction.PROMO_CREATE, "SPRING", ADMIN),
    ]


async def test_duplicates_and_past_expiry_are_refused_and_write_nothing(pool: asyncpg.Pool) -> None:
    tenant = await _tenant(pool)
    await store.create(pool, tenant, "Europe/Moscow", _money("ONCE"), ADMIN)
    with pytest.raises(PromoInputError) as duplicate:
        await store.create(pool, tenant, "Europe/Moscow", _money("ONCE", amount=1), ADMIN)
    assert duplicate.value.field is PromoField.EXISTS
    yesterday = date.today() - timedelta(days=2)
    with pytest.raises(PromoInputError) as past:
        await store.create(pool, tenant, "Europe/Moscow", _money("OLD", expires=yesterday), ADMIN)
    assert past.value.field is PromoField.EXPIRED
    assert [p.code for p in await store.codes(pool, tenant, "UTC")] == ["ONCE"]
    assert (await store.codes(pool, tenant, "UTC"))[0].amount_minor == 10_000, "the duplicate changed nothing"
    assert len(await recent(pool, tenant)) == 1


async def test_every_refusal_is_named_and_credits_nothing(pool: asyncpg.Pool) -> None:
    tenant, user, ledger = await _tenant(pool), next(_users), Ledger(pool)
    await store.create(pool, tenant, "UTC", _money("ONE", max_uses=1), ADMIN)
    await store.create(pool, tenant, "UTC", _money("GONE"), ADMIN)
    await store.create(pool, tenant, "UTC", _money("LATE"), ADMIN)
    await store.disable(pool, tenant, "GONE", ADMIN)
    await pool.execute("UPDATE promo_codes SET expires_at = now() - interval '1 second' WHERE code = 'LATE'")
    first = await store.redeem(pool, ledger, tenant, user, " one ")
    assert (first.outcome, first.code, first.amount_minor, first.available) == (
        RedeemOutcome.REDEEMED,
        "ONE",
        10_000,
        10_000,
    )
    cases = {
        "one": RedeemOutcome.ALREADY_USED,
        "GONE": RedeemOutcome.DISABLED,
        "LATE": RedeemOutcome.EXPIRED,
        "NOPE": RedeemOutcome.UNKNOWN,
        "with space": RedeemOutcome.UNKNOWN,
        "🎁🎁🎁": RedeemOutcome.UNKNOWN,
        "x" * 200: RedeemOutcome.UNKNOWN,
    }
    for code, outcome in cases.items():
        assert (await store.redeem(pool, ledger, tenant, user, code)).outcome is outcome, code
    assert (await store.redeem(pool, ledger, tenant, next(_users), "ONE")).outcome is RedeemOutcome.USED_UP
    assert (await ledger.balance(tenant, user)).available == 10_000
    entries = await pool.fetch(
        "SELECT kind, unique_key, amount, available_delta FROM ledger_entries WHERE tenant_id = $1", tenant
    )
    assert [tuple(e) for e in entries] == [("promo", f"promo:ONE:{user}", 10_000, 10_000)]
    assert await ledger.reconcile(tenant) == []


async def test_twenty_users_tapping_twice_on_two_replicas_redeem_at_most_max_uses_once_each(
    pool: asyncpg.Pool, second_pool: asyncpg.Pool
) -> None:
    tenant, ledger = await _tenant(pool), Ledger(pool)
    await store.create(pool, tenant, "UTC", _money("RACE", amount=500, max_uses=10), ADMIN)
    users = [next(_users) for _ in range(20)]
    taps = [(u, (pool, second_pool)[i % 2]) for u in users for i in range(2)]
    results = await asyncio.gather(*(store.redeem(p, Ledger(p), tenant, u, "race") for u, p in taps))
    redeemed = [r for r in results if r.outcome is RedeemOutcome.REDEEMED]
    assert len(redeemed) == 10
    winners = await pool.fetch("SELECT user_id FROM promo_redemptions WHERE tenant_id = $1", tenant)
    assert len(winners) == len({w["user_id"] for w in winners}) == 10
    assert await pool.fetchval("SELECT uses FROM promo_codes WHERE tenant_id = $1", tenant) == 10
    credited = await pool.fetchval("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = $1", tenant)
    assert credited == 10 * 500
    assert {r.outcome for r in results} <= {RedeemOutcome.REDEEMED, RedeemOutcome.USED_UP, RedeemOutcome.ALREADY_USED}
    assert await ledger.reconcile(tenant) == []


async def test_free_generations_from_a_promo_are_used_after_the_daily_quota(pool: asyncpg.Pool) -> None:
    (config,) = await add_bare_tenants(pool, f"promofree{secrets.token_hex(2)}", 1, first_bot_id=next(_bots))
    limits = ShopLimits(free_daily=1, max_open_jobs=100)
    config = dataclasses.replace(config, limits=limits)
    user = next(_users)
    await store.create(pool, config.id, "UTC", PromoSpec("FREE2", None, 2, 5, None), ADMIN)
    redeemed = await store.redeem(pool, Ledger(pool), config.id, user, "free2")
    assert (redeemed.outcome, redeemed.free_generations) == (RedeemOutcome.REDEEMED, 2)
    settings_ = Settings.model_validate({"env": "development", "metrics_token": None, "operator_token": None})
    kie = KieClient("http://127.0.0.1:9", KieClientConfig(read_timeout_s=1))
    registry = load_registry()
    service = JobService(pool, Ledger(pool), kie, registry, settings_, notifier=None)  # type: ignore[arg-type]

    async def free_job(key: str) -> int:
        job, _ = await service.create(
            config,
            user_id=user,
            chat_id=user,
            spec=registry.get("z-image"),  # type: ignore[arg-type]
            params={"prompt": "x", "aspect_ratio": "1:1"},
            price=0,
            idempotency_key=key,
            language="ru",
            correlation_id="c",
        )
        return job.id

    await free_job("a")  # today's quota
    bonus = await free_job("b")  # a promo generation
    allowance = await free_allowance(pool, config.id, limits, user)
    assert (allowance.left_today, allowance.bonus_left) == (0, 1)
    await pool.execute("UPDATE jobs SET status = $2 WHERE id = $1", bonus, JobStatus.FAILED)  # gives it back
    await free_job("c")
    await free_job("d")
    with pytest.raises(FreeQuotaUsed):
        await free_job("e")
    uses = await pool.fetch("SELECT free_use, status FROM jobs WHERE tenant_id = $1 ORDER BY id", config.id)
    assert [u["free_use"] for u in uses] == ["daily", "bonus", "bonus", "bonus"]


# --- a property: whatever the numbers, never beyond max uses and at most once per user -----------------


@pytest.fixture(scope="module")
def replicas(database_url: str) -> Iterator[tuple[LoopThread, list[asyncpg.Pool]]]:
    loop = LoopThread()
    pools = [loop.run(create_pool(database_url, 5, application_name=f"tests-promo-{i}")) for i in range(2)]
    yield loop, pools
    for p in pools:
        loop.run(p.close())
    loop.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    max_uses=st.integers(1, 8),
    taps=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 1)), min_size=1, max_size=30),
    amount=st.integers(1, 10**8),
)
def test_redemptions_never_pass_max_uses_nor_repeat_a_user(
    replicas: tuple[LoopThread, list[asyncpg.Pool]], max_uses: int, taps: list[tuple[int, int]], amount: int
) -> None:
    loop, pools = replicas

    async def example() -> None:
        tenant = await _tenant(pools[0])
        base = next(_users) * 100
        await store.create(pools[0], tenant, "UTC", _money("PROP", amount=amount, max_uses=max_uses), ADMIN)
        results = await asyncio.gather(
            *(
                store.redeem(pools[replica], Ledger(pools[replica]), tenant, base + user, "prop")
                for user, replica in taps
            )
        )
        distinct = len({user for user, _ in taps})
        winners = [r for r in results if r.outcome is RedeemOutcome.REDEEMED]
        assert len(winners) == min(max_uses, distinct)
        rows = await pools[0].fetch("SELECT user_id FROM promo_redemptions WHERE tenant_id = $1", tenant)
        assert len(rows) == len({r["user_id"] for r in rows}) == len(winners)
        total = await pools[0].fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = $1", tenant
        )
        assert total == amount * len(winners)
        assert await Ledger(pools[0]).reconcile(tenant) == []

    loop.run(example())
