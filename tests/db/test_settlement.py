"""Settling a job's hold, the late-result rule, and the job money state every message is worded from."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.db import create_pool
from tenant_runtime.billing.job_money import JobMoney, MoneyState, hold_keys, read_job_money
from tenant_runtime.billing.ledger import ChargeConflict, InsufficientFunds, Ledger
from tenant_runtime.billing.settlement import Settlement, settle_job_hold
from tests.db.test_ledger import fund, make_tenant
from tests.db.test_ledger_properties import LoopThread

FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


async def reserve_for_job(ledger: Ledger, tenant_id: int, user_id: int, job_id: int, price: int) -> int:
    hold = await ledger.reserve(
        tenant_id, user_id, price, hold_keys(job_id)[0], correlation_id="c", actor=f"user:{user_id}", ttl_seconds=600
    )
    return hold.id


async def settle(
    pool: asyncpg.Pool, ledger: Ledger, tenant_id: int, user_id: int, job_id: int, hold_id: int, price: int, ok: bool
) -> Settlement:
    async with pool.acquire() as conn, conn.transaction():
        return await settle_job_hold(
            ledger,
            conn,
            tenant_id,
            job_id=job_id,
            user_id=user_id,
            hold_id=hold_id,
            price=price,
            ok=ok,
            correlation_id="c",
        )


async def money(pool: asyncpg.Pool, tenant_id: int, user_id: int, job_id: int | None, *, ok: bool) -> JobMoney:
    return await read_job_money(pool, tenant_id, user_id, job_id, succeeded=ok, currency="RUB")


async def test_job_money_through_a_jobs_life(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    tenant = await make_tenant(pool)
    await fund(ledger, tenant, 1, 1000)
    assert await money(pool, tenant, 1, None, ok=False) == JobMoney(MoneyState.NOTHING, 0, 1000, 0, "RUB")
    assert (await money(pool, tenant, 1, 77, ok=True)).state == MoneyState.NOTHING  # a free job: no hold
    hold = await reserve_for_job(ledger, tenant, 1, 77, 300)
    assert await money(pool, tenant, 1, 77, ok=False) == JobMoney(MoneyState.HELD, 300, 700, 300, "RUB")
    assert await settle(pool, ledger, tenant, 1, 77, hold, 300, True) == Settlement.COMMITTED
    assert await money(pool, tenant, 1, 77, ok=True) == JobMoney(MoneyState.CHARGED, 300, 700, 0, "RUB")
    failed = await reserve_for_job(ledger, tenant, 1, 78, 200)
    assert await settle(pool, ledger, tenant, 1, 78, failed, 200, False) == Settlement.RELEASED
    assert await money(pool, tenant, 1, 78, ok=False) == JobMoney(MoneyState.RETURNED, 200, 700, 0, "RUB")


async def test_late_result_is_charged_from_the_balance_once(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    tenant = await make_tenant(pool)
    await fund(ledger, tenant, 1, 1000)
    hold = await reserve_for_job(ledger, tenant, 1, 5, 300)
    assert await ledger.expire_holds(tenant, now=FAR_FUTURE) == 1
    assert await settle(pool, ledger, tenant, 1, 5, hold, 300, True) == Settlement.LATE_CHARGED
    # A second settlement (the job's status guard prevents it; the key would too) charges nothing more.
    assert await settle(pool, ledger, tenant, 1, 5, hold, 300, True) == Settlement.LATE_CHARGED
    assert await money(pool, tenant, 1, 5, ok=True) == JobMoney(MoneyState.CHARGED, 300, 700, 0, "RUB")
    kinds = await pool.fetch(
        "SELECT kind, amount FROM ledger_entries WHERE tenant_id = $1 AND hold_id IS NOT NULL ORDER BY id", tenant
    )
    assert [(r["kind"], r["amount"]) for r in kinds] == [("hold", 300), ("expiry", 300), ("hold", 300), ("commit", 300)]
    assert await ledger.reconcile(tenant) == []


async def test_late_result_with_a_short_balance_is_delivered_unpaid(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    tenant = await make_tenant(pool)
    await fund(ledger, tenant, 1, 300)
    hold = await reserve_for_job(ledger, tenant, 1, 6, 300)
    assert await ledger.expire_holds(tenant, now=FAR_FUTURE) == 1
    await ledger.debit(tenant, 1, 200, unique_key="spent", actor="admin:1", reason="spent meanwhile")
    assert await settle(pool, ledger, tenant, 1, 6, hold, 300, True) == Settlement.LATE_UNPAID
    assert await money(pool, tenant, 1, 6, ok=True) == JobMoney(MoneyState.WAIVED, 300, 100, 0, "RUB")
    assert await ledger.reconcile(tenant) == []


async def test_failure_after_the_hold_expired_returns_nothing_twice(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    tenant = await make_tenant(pool)
    await fund(ledger, tenant, 1, 300)
    hold = await reserve_for_job(ledger, tenant, 1, 7, 300)
    assert await ledger.expire_holds(tenant, now=FAR_FUTURE) == 1
    assert await settle(pool, ledger, tenant, 1, 7, hold, 300, False) == Settlement.ALREADY_RETURNED
    assert await money(pool, tenant, 1, 7, ok=False) == JobMoney(MoneyState.RETURNED, 300, 300, 0, "RUB")


async def test_charge_refuses_an_overdraft_and_writes_nothing(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    tenant = await make_tenant(pool)
    await fund(ledger, tenant, 1, 100)
    with pytest.raises(InsufficientFunds):
        await ledger.charge(tenant, 1, 101, "k", correlation_id=None, actor="system")
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE tenant_id = $1", tenant) == 0
    assert (await ledger.balance(tenant, 1)).available == 100


async def test_repeated_charge_id_with_another_amount_names_the_first_record(pool: asyncpg.Pool) -> None:
    ledger = Ledger(pool)
    tenant = await make_tenant(pool)
    assert await ledger.record_star_payment(tenant, 1, "ch-1", 50, 7500, "p")
    with pytest.raises(ChargeConflict) as raised:
        await ledger.record_star_payment(tenant, 1, "ch-1", 100, 15000, "p2")
    assert (raised.value.user_id, raised.value.amount_minor) == (1, 7500)
    assert (await ledger.balance(tenant, 1)).available == 7500


# --- the rule as a property: whatever the balance, the spending and the timing --------------------------


@dataclass
class Env:
    loop: LoopThread
    pool: asyncpg.Pool
    ledger: Ledger
    tenant: int


@pytest.fixture(scope="module")
def env(database_url: str) -> Iterator[Env]:
    loop = LoopThread()
    pool = loop.run(create_pool(database_url, 3, application_name="tests-settlement"))
    yield Env(loop, pool, Ledger(pool), loop.run(make_tenant(pool)))
    loop.run(pool.close())
    loop.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    balance=st.integers(min_value=1, max_value=10**7),
    price_share=st.floats(min_value=0.01, max_value=1.0),
    spend_share=st.floats(min_value=0.0, max_value=1.0),
    expired=st.booleans(),
    ok=st.booleans(),
)
def test_settlement_charges_at_most_once_and_conserves_money(
    env: Env, balance: int, price_share: float, spend_share: float, expired: bool, ok: bool
) -> None:
    price = max(1, int(balance * price_share))
    user, job = secrets.randbelow(10**12) + 1, secrets.randbelow(10**12) + 1

    async def scenario() -> tuple[Settlement, JobMoney, int]:
        ledger, tenant = env.ledger, env.tenant
        await fund(ledger, tenant, user, balance)
        hold = await reserve_for_job(ledger, tenant, user, job, price)
        if expired:
            await env.pool.execute("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = $1", hold)
            await ledger.expire_holds(tenant, now=datetime.now(UTC) + timedelta(seconds=1))
        available = (await ledger.balance(tenant, user)).available
        spent = int(available * spend_share)
        if spent:
            await ledger.debit(tenant, user, spent, unique_key=f"s{job}", actor="admin:1", reason="spent")
        before = (await ledger.balance(tenant, user)).available
        first = await settle(env.pool, ledger, tenant, user, job, hold, price, ok)
        after = await ledger.balance(tenant, user)
        await settle(env.pool, ledger, tenant, user, job, hold, price, ok)  # settled again: nothing moves
        assert await ledger.balance(tenant, user) == after
        return first, await money(env.pool, tenant, user, job, ok=ok), before

    settled, found, before = env.loop.run(scenario())
    if not expired:
        assert settled == (Settlement.COMMITTED if ok else Settlement.RELEASED)
        expected = before if ok else before + price
    elif not ok:
        assert settled == Settlement.ALREADY_RETURNED
        expected = before
    elif before >= price:
        assert settled == Settlement.LATE_CHARGED
        expected = before - price
    else:
        assert settled == Settlement.LATE_UNPAID
        expected = before
    assert (found.available, found.held) == (expected, 0)
    assert (
        found.state
        == {
            Settlement.COMMITTED: MoneyState.CHARGED,
            Settlement.LATE_CHARGED: MoneyState.CHARGED,
            Settlement.RELEASED: MoneyState.RETURNED,
            Settlement.ALREADY_RETURNED: MoneyState.RETURNED,
            Settlement.LATE_UNPAID: MoneyState.WAIVED,
        }[settled]
    )
    assert found.amount == price
    assert env.loop.run(env.ledger.reconcile(env.tenant)) == []
