"""The money layer against real Postgres: concurrency, idempotency, refunds, tenant isolation."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from shared.db import create_pool
from tenant_runtime.billing.invoices import InvoicePayload, sign_invoice_payload, verify_invoice_payload
from tenant_runtime.billing.ledger import (
    Balance,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidRequest,
    Ledger,
    LedgerError,
    RefundRefused,
)

USER = 424242  # the same Telegram user id is used in several tenants on purpose


async def make_tenant(pool: asyncpg.Pool) -> int:
    tenant_id: int = await pool.fetchval(
        """INSERT INTO tenants (slug, display_name, bot_id, bot_token_enc, webhook_secret_enc, callback_secret_enc)
           VALUES ($1, 'Ledger test', $2, 'x', 'x', 'x') RETURNING id""",
        f"ledger-{secrets.token_hex(6)}",
        secrets.randbelow(10**15),
    )
    return tenant_id


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> int:
    return await make_tenant(pool)


@pytest.fixture
def ledger(pool: asyncpg.Pool) -> Ledger:
    return Ledger(pool)


async def fund(ledger: Ledger, tenant_id: int, user_id: int, amount: int) -> None:
    assert await ledger.credit(
        tenant_id,
        user_id,
        amount,
        kind="admin_credit",
        unique_key=secrets.token_hex(8),
        actor="admin:1",
        reason="test funding",
    )


async def entries(pool: asyncpg.Pool, tenant_id: int) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM ledger_entries WHERE tenant_id = $1", tenant_id)
    return count


# -- concurrency soak ------------------------------------------------------------------------------


async def test_concurrent_reserves_never_overdraw(database_url: str, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 1000)
    wide = await create_pool(database_url, 25, application_name="tests-soak")
    try:
        soak = Ledger(wide)

        async def attempt(i: int) -> bool:
            try:
                await soak.reserve(tenant, USER, 30, f"job-{i}", correlation_id=None, actor="system", ttl_seconds=60)
            except InsufficientFunds:
                return False
            return True

        results = await asyncio.gather(*(attempt(i) for i in range(50)))
    finally:
        await wide.close()
    assert sum(results) == 1000 // 30
    assert await ledger.balance(tenant, USER) == Balance(available=1000 % 30, held=1000 - 1000 % 30)
    assert await ledger.reconcile(tenant) == []


async def test_concurrent_reserves_with_one_key_make_one_hold(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 500)
    holds = await asyncio.gather(
        *(
            ledger.reserve(tenant, USER, 100, "same-job", correlation_id="c1", actor="user:1", ttl_seconds=60)
            for _ in range(10)
        )
    )
    assert len({h.id for h in holds}) == 1
    assert await ledger.balance(tenant, USER) == Balance(available=400, held=100)
    movements = await pool.fetchval(
        "SELECT count(*) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'hold'", tenant
    )
    assert movements == 1


async def test_concurrent_commit_and_release_one_wins(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 20 * 10)
    for i in range(20):
        hold = await ledger.reserve(tenant, USER, 10, f"race-{i}", correlation_id=None, actor="system", ttl_seconds=60)
        committed, released = await asyncio.gather(ledger.commit(tenant, hold.id), ledger.release(tenant, hold.id))
        assert committed != released
    resolutions = await pool.fetch(
        """SELECT hold_id FROM ledger_entries WHERE tenant_id = $1 AND kind IN ('commit', 'release', 'expiry')
           GROUP BY hold_id HAVING count(*) > 1""",
        tenant,
    )
    assert resolutions == []
    assert (await ledger.balance(tenant, USER)).held == 0
    assert await ledger.reconcile(tenant) == []


async def test_same_payment_from_two_processes_credits_once(database_url: str, pool: asyncpg.Pool, tenant: int) -> None:
    other = await create_pool(database_url, 2, application_name="tests-replica")
    try:
        first, second = Ledger(pool), Ledger(other)
        results = await asyncio.gather(
            *(
                instance.record_star_payment(tenant, USER, "charge-dup", 50, 7500, "payload")
                for _ in range(5)
                for instance in (first, second)
            )
        )
    finally:
        await other.close()
    assert sorted(results) == [False] * 9 + [True]
    assert await first.balance(tenant, USER) == Balance(7500, 0)
    assert await first.reconcile(tenant) == []


async def test_concurrent_sweepers_expire_each_hold_once(ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 1000)
    holds = [
        await ledger.reserve(tenant, USER, 10, f"sweep-{i}", correlation_id=None, actor="system", ttl_seconds=60)
        for i in range(30)
    ]
    later = max(h.expires_at for h in holds)
    counts = await asyncio.gather(*(ledger.expire_holds(tenant, now=later) for _ in range(4)))
    assert sum(counts) == 30
    assert await ledger.balance(tenant, USER) == Balance(1000, 0)
    assert await ledger.reconcile(tenant) == []


# -- holds -----------------------------------------------------------------------------------------


async def test_reserve_commit_release(ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 300)
    spent = await ledger.reserve(tenant, USER, 120, "a", correlation_id="job-a", actor="user:1", ttl_seconds=60)
    returned = await ledger.reserve(tenant, USER, 80, "b", correlation_id="job-b", actor="user:1", ttl_seconds=60)
    assert spent.status == "pending" and spent.amount == 120
    assert await ledger.balance(tenant, USER) == Balance(100, 200)
    assert await ledger.commit(tenant, spent.id)
    assert await ledger.release(tenant, returned.id)
    assert await ledger.balance(tenant, USER) == Balance(180, 0)
    assert not await ledger.commit(tenant, spent.id)
    assert not await ledger.release(tenant, spent.id)
    assert not await ledger.commit(tenant, returned.id)
    again = await ledger.reserve(tenant, USER, 120, "a", correlation_id="job-a", actor="user:1", ttl_seconds=60)
    assert again.id == spent.id and again.status == "committed"
    assert await ledger.balance(tenant, USER) == Balance(180, 0)
    assert await ledger.reconcile(tenant) == []


async def test_reserve_key_reused_differently_is_a_conflict(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 300)
    await ledger.reserve(tenant, USER, 100, "k", correlation_id=None, actor="system", ttl_seconds=60)
    before = await entries(pool, tenant)
    with pytest.raises(IdempotencyConflict):
        await ledger.reserve(tenant, USER, 101, "k", correlation_id=None, actor="system", ttl_seconds=60)
    with pytest.raises(IdempotencyConflict):
        await ledger.reserve(tenant, USER + 1, 100, "k", correlation_id=None, actor="system", ttl_seconds=60)
    assert await entries(pool, tenant) == before
    assert await ledger.balance(tenant, USER) == Balance(200, 100)


async def test_insufficient_funds_says_how_much_is_missing(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 70)
    before = await entries(pool, tenant)
    with pytest.raises(InsufficientFunds) as caught:
        await ledger.reserve(tenant, USER, 100, "big", correlation_id=None, actor="system", ttl_seconds=60)
    assert (caught.value.available, caught.value.required, caught.value.missing) == (70, 100, 30)
    assert await entries(pool, tenant) == before
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE tenant_id = $1", tenant) == 0
    with pytest.raises(InsufficientFunds) as unknown:
        await ledger.reserve(tenant, USER + 5, 1, "nobody", correlation_id=None, actor="system", ttl_seconds=60)
    assert unknown.value.available == 0


async def test_hold_joins_the_callers_transaction(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 100)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await ledger.reserve(tenant, USER, 60, "joined", correlation_id=None, actor="system", ttl_seconds=60, conn=conn)
        # A refusal inside the caller's transaction rolls back only its savepoint.
        with pytest.raises(InsufficientFunds):
            await ledger.reserve(
                tenant, USER, 60, "too-much", correlation_id=None, actor="system", ttl_seconds=60, conn=conn
            )
        assert await ledger.balance(tenant, USER, conn=conn) == Balance(40, 60)
        await tx.rollback()
    assert await ledger.balance(tenant, USER) == Balance(100, 0)
    assert await pool.fetchval("SELECT count(*) FROM holds WHERE tenant_id = $1", tenant) == 0


async def test_expiry_releases_only_what_is_due(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 100)
    short = await ledger.reserve(tenant, USER, 30, "short", correlation_id=None, actor="system", ttl_seconds=60)
    long = await ledger.reserve(tenant, USER, 20, "long", correlation_id=None, actor="system", ttl_seconds=3600)
    assert await ledger.expire_holds(tenant) == 0
    assert await ledger.expire_holds(tenant, now=short.expires_at - timedelta(microseconds=1)) == 0
    assert await ledger.expire_holds(tenant, now=short.expires_at) == 1
    assert await ledger.balance(tenant, USER) == Balance(80, 20)
    assert not await ledger.commit(tenant, short.id)
    assert await ledger.commit(tenant, long.id)
    kinds = [e.kind for e in await ledger.history(tenant, USER)]
    assert kinds == ["commit", "expiry", "hold", "hold", "admin_credit"]
    status = await pool.fetchval("SELECT status FROM holds WHERE id = $1", short.id)
    assert status == "expired"


# -- credits, debits, bonuses ----------------------------------------------------------------------


async def test_credit_is_applied_once_per_key(ledger: Ledger, tenant: int) -> None:
    args = {"kind": "admin_credit", "unique_key": "topup-1", "actor": "admin:77", "reason": "promo"}
    assert await ledger.credit(tenant, USER, 500, **args)  # type: ignore[arg-type]
    assert not await ledger.credit(tenant, USER, 500, **args)  # type: ignore[arg-type]
    concurrent = await asyncio.gather(
        *(
            ledger.credit(tenant, USER, 10, kind="admin_credit", unique_key="topup-2", actor="admin:77", reason="promo")
            for _ in range(8)
        )
    )
    assert sum(concurrent) == 1
    assert await ledger.balance(tenant, USER) == Balance(510, 0)
    [latest, first] = await ledger.history(tenant, USER)
    assert (first.kind, first.amount, first.actor, first.reason) == ("admin_credit", 500, "admin:77", "promo")
    assert (first.available_delta, first.held_delta, first.available_after, first.held_after) == (500, 0, 500, 0)
    assert latest.available_after == 510


async def test_debit_is_conditional_and_idempotent(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 100)
    assert await ledger.debit(tenant, USER, 100, unique_key="fine-1", actor="admin:5", reason="chargeback")
    # A retry after the money is gone is still "already applied", not "insufficient".
    assert not await ledger.debit(tenant, USER, 100, unique_key="fine-1", actor="admin:5", reason="chargeback")
    with pytest.raises(InsufficientFunds):
        await ledger.debit(tenant, USER, 1, unique_key="fine-2", actor="admin:5", reason="chargeback")
    assert await ledger.balance(tenant, USER) == Balance(0, 0)
    [entry, _] = await ledger.history(tenant, USER)
    assert (entry.kind, entry.actor, entry.available_delta) == ("admin_debit", "admin:5", -100)


async def test_bonuses(ledger: Ledger, tenant: int) -> None:
    assert await ledger.grant_welcome_bonus(tenant, USER, 300)
    assert not await ledger.grant_welcome_bonus(tenant, USER, 300)
    assert not await ledger.grant_welcome_bonus(tenant, USER + 1, 0)
    assert await ledger.grant_referral_bonus(tenant, USER, USER + 1, 50)
    assert not await ledger.grant_referral_bonus(tenant, USER, USER + 1, 50)
    assert not await ledger.grant_referral_bonus(tenant, USER + 2, USER + 1, 50)  # one referral pays once
    with pytest.raises(InvalidRequest, match="own referrer"):
        await ledger.grant_referral_bonus(tenant, USER, USER, 50)
    assert await ledger.balance(tenant, USER) == Balance(350, 0)
    assert await ledger.balance(tenant, USER + 2) == Balance(0, 0)
    assert await ledger.reconcile(tenant) == []


@pytest.mark.parametrize("amount", [0, -5, 1.5, True, "10"])
async def test_bad_amounts_write_nothing(pool: asyncpg.Pool, ledger: Ledger, tenant: int, amount: Any) -> None:
    with pytest.raises(InvalidRequest, match="positive whole number"):
        await ledger.credit(
            tenant,
            USER,
            amount,
            kind="admin_credit",
            unique_key="x",
            actor="admin:1",
            reason="r",
        )
    with pytest.raises(InvalidRequest):
        await ledger.debit(tenant, USER, amount, unique_key="x", actor="admin:1", reason="r")
    with pytest.raises(InvalidRequest):
        await ledger.reserve(tenant, USER, amount, "x", correlation_id=None, actor="system", ttl_seconds=60)
    with pytest.raises(InvalidRequest):
        await ledger.record_star_payment(tenant, USER, "c", 10, amount, "p")
    assert await entries(pool, tenant) == 0
    assert await pool.fetchval("SELECT count(*) FROM accounts WHERE tenant_id = $1", tenant) == 0


async def test_admin_operations_need_a_reason(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 100)
    for reason in ("", "   "):
        with pytest.raises(InvalidRequest, match="reason"):
            await ledger.debit(tenant, USER, 10, unique_key="d", actor="admin:1", reason=reason)
    with pytest.raises(InvalidRequest, match="reason"):
        await ledger.credit(tenant, USER, 10, kind="admin_credit", unique_key="c", actor="admin:1")
    with pytest.raises(InvalidRequest):
        await ledger.reserve(tenant, USER, 10, "", correlation_id=None, actor="system", ttl_seconds=60)
    with pytest.raises(InvalidRequest):
        await ledger.reserve(tenant, USER, 10, "ttl", correlation_id=None, actor="system", ttl_seconds=0)
    with pytest.raises(InvalidRequest):
        await ledger.credit(tenant, USER, 10, kind="topup", unique_key="c", actor="admin:1")  # type: ignore[arg-type]
    assert await entries(pool, tenant) == 1
    assert await ledger.balance(tenant, USER) == Balance(100, 0)


# -- the ledger itself -----------------------------------------------------------------------------


async def test_ledger_is_append_only(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 100)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("UPDATE ledger_entries SET amount = 1 WHERE tenant_id = $1", tenant)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM ledger_entries WHERE tenant_id = $1", tenant)
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await pool.execute("DELETE FROM accounts WHERE tenant_id = $1", tenant)
    assert await entries(pool, tenant) == 1
    # Removing the tenant is the one way its history goes.
    await pool.execute("DELETE FROM tenants WHERE id = $1", tenant)
    assert await entries(pool, tenant) == 0


async def test_reconcile_finds_a_tampered_balance(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    await fund(ledger, tenant, USER, 100)
    await ledger.reserve(tenant, USER, 40, "h", correlation_id=None, actor="system", ttl_seconds=60)
    assert await ledger.reconcile(tenant) == []
    await pool.execute("UPDATE accounts SET available = available + 1 WHERE tenant_id = $1", tenant)
    [bad] = await ledger.reconcile(tenant)
    assert (bad.tenant_id, bad.user_id, bad.available, bad.ledger_available) == (tenant, USER, 61, 60)
    assert bad in await ledger.reconcile(None)
    await pool.execute("UPDATE accounts SET available = available - 1, held = held + 5 WHERE tenant_id = $1", tenant)
    [bad] = await ledger.reconcile(tenant)
    assert (bad.held, bad.ledger_held, bad.pending_held) == (45, 40, 40)
    await pool.execute("UPDATE accounts SET held = held - 5 WHERE tenant_id = $1", tenant)


async def test_history_pages_newest_first(ledger: Ledger, tenant: int) -> None:
    for amount in (1, 2, 3, 4, 5):
        await fund(ledger, tenant, USER, amount)
    assert [e.amount for e in await ledger.history(tenant, USER, limit=2)] == [5, 4]
    assert [e.amount for e in await ledger.history(tenant, USER, limit=2, offset=2)] == [3, 2]
    assert await ledger.history(tenant, USER + 1) == []


# -- tenant isolation ------------------------------------------------------------------------------


async def test_tenants_are_separate_balance_namespaces(pool: asyncpg.Pool, ledger: Ledger) -> None:
    a, b = await make_tenant(pool), await make_tenant(pool)
    await fund(ledger, a, USER, 1000)
    await fund(ledger, b, USER, 50)
    hold = await ledger.reserve(a, USER, 300, "job", correlation_id=None, actor="system", ttl_seconds=60)
    await ledger.record_star_payment(a, USER, "charge-a", 10, 1500, "p")

    # Tenant B's handles on tenant A's objects do nothing.
    assert not await ledger.commit(b, hold.id)
    assert not await ledger.release(b, hold.id)
    assert await ledger.expire_holds(b, now=hold.expires_at + timedelta(days=1)) == 0
    with pytest.raises(RefundRefused, match="no Stars payment"):
        await ledger.begin_star_refund(b, "charge-a", admin_id=9)
    assert not await ledger.finish_star_refund(b, "charge-a", ok=False)
    # The same key in B is B's own key: it is not A's hold.
    other = await ledger.reserve(b, USER, 50, "job", correlation_id=None, actor="system", ttl_seconds=60)
    assert other.id != hold.id and other.tenant_id == b
    # The same charge id in B is a different payment.
    assert await ledger.record_star_payment(b, USER, "charge-a", 1, 150, "p")

    assert await ledger.balance(a, USER) == Balance(1000 - 300 + 1500, 300)
    assert await ledger.balance(b, USER) == Balance(150, 50)
    assert all(e.tenant_id == b for e in await ledger.history(b, USER))
    assert await ledger.commit(a, hold.id)
    assert await ledger.balance(b, USER) == Balance(150, 50)
    assert await ledger.reconcile(a) == [] and await ledger.reconcile(b) == []


# -- Telegram Stars --------------------------------------------------------------------------------


async def test_refund_refused_when_the_money_is_spent(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    assert await ledger.record_star_payment(tenant, USER, "ch-1", 100, 15000, "p")
    hold = await ledger.reserve(tenant, USER, 4000, "gen", correlation_id=None, actor="system", ttl_seconds=60)
    assert await ledger.commit(tenant, hold.id)
    with pytest.raises(RefundRefused, match="already spent 4000 of it") as caught:
        await ledger.begin_star_refund(tenant, "ch-1", admin_id=9)
    assert caught.value.spent == 4000
    assert await ledger.balance(tenant, USER) == Balance(11000, 0)
    assert await pool.fetchval("SELECT status FROM star_payments WHERE tenant_id = $1", tenant) == "paid"


async def test_refund_reverted_when_telegram_fails(pool: asyncpg.Pool, ledger: Ledger, tenant: int) -> None:
    assert await ledger.record_star_payment(tenant, USER, "ch-2", 100, 15000, "p")
    refund = await ledger.begin_star_refund(tenant, "ch-2", admin_id=9)
    assert (refund.user_id, refund.stars, refund.amount_minor) == (USER, 100, 15000)
    assert await ledger.balance(tenant, USER) == Balance(0, 0)
    with pytest.raises(RefundRefused, match="in progress"):
        await ledger.begin_star_refund(tenant, "ch-2", admin_id=9)

    assert await ledger.finish_star_refund(tenant, "ch-2", ok=False)
    assert not await ledger.finish_star_refund(tenant, "ch-2", ok=False)
    assert await ledger.balance(tenant, USER) == Balance(15000, 0)
    assert await pool.fetchval("SELECT status FROM star_payments WHERE tenant_id = $1", tenant) == "paid"

    await ledger.begin_star_refund(tenant, "ch-2", admin_id=10)
    assert await ledger.finish_star_refund(tenant, "ch-2", ok=True)
    assert not await ledger.finish_star_refund(tenant, "ch-2", ok=True)
    with pytest.raises(RefundRefused, match="already been refunded"):
        await ledger.begin_star_refund(tenant, "ch-2", admin_id=9)
    row = await pool.fetchrow("SELECT status, refunded_by, refunded_at FROM star_payments WHERE tenant_id = $1", tenant)
    assert (row["status"], row["refunded_by"]) == ("refunded", 10) and row["refunded_at"] is not None
    assert await ledger.balance(tenant, USER) == Balance(0, 0)
    kinds = [(e.kind, e.actor) for e in await ledger.history(tenant, USER)]
    assert kinds == [
        ("refund", "admin:10"),
        ("refund_reverted", "admin:9"),
        ("refund", "admin:9"),
        ("topup", f"user:{USER}"),
    ]
    assert await ledger.reconcile(tenant) == []


async def test_concurrent_refunds_debit_once(ledger: Ledger, tenant: int) -> None:
    assert await ledger.record_star_payment(tenant, USER, "ch-3", 10, 1500, "p")
    outcomes = await asyncio.gather(
        *(ledger.begin_star_refund(tenant, "ch-3", admin_id=9) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, RefundRefused) for o in outcomes if isinstance(o, BaseException))
    assert await ledger.balance(tenant, USER) == Balance(0, 0)


async def test_a_charge_id_cannot_change_owner(ledger: Ledger, tenant: int) -> None:
    assert await ledger.record_star_payment(tenant, USER, "ch-4", 10, 1500, "p")
    with pytest.raises(IdempotencyConflict):
        await ledger.record_star_payment(tenant, USER + 1, "ch-4", 10, 1500, "p")
    assert await ledger.balance(tenant, USER + 1) == Balance(0, 0)


def test_invoice_payload_round_trip() -> None:
    payload = sign_invoice_payload("s3cret", 12, USER, 100, 15000)
    assert len(payload.encode()) <= 128
    parsed = verify_invoice_payload("s3cret", payload)
    assert parsed == InvoicePayload(12, USER, 100, 15000)
    assert parsed.matches(tenant_id=12, user_id=USER, stars=100)
    assert not parsed.matches(tenant_id=13, user_id=USER, stars=100)
    assert not parsed.matches(tenant_id=12, user_id=USER + 1, stars=100)
    assert not parsed.matches(tenant_id=12, user_id=USER, stars=1)


def test_invoice_payload_rejects_tampering() -> None:
    payload = sign_invoice_payload("s3cret", 12, USER, 100, 15000)
    version, tenant_id, user_id, stars, amount, signature = payload.split(".")
    forged = [
        f"{version}.{tenant_id}.{user_id}.{stars}.1500000.{signature}",
        f"{version}.{tenant_id}.{user_id}.1.{amount}.{signature}",
        f"{version}.{tenant_id}.1.{stars}.{amount}.{signature}",
        f"{version}.13.{user_id}.{stars}.{amount}.{signature}",
        payload[:-1] + ("A" if payload[-1] != "A" else "B"),
        payload + "x",
        "",
        "v1.1.2.3.4",
        f"{version}.{tenant_id}.{user_id}.{stars}.{amount}.{'٣' * 22}",
    ]
    for candidate in forged:
        assert verify_invoice_payload("s3cret", candidate) is None, candidate
    assert verify_invoice_payload("other", payload) is None


def test_invoice_payload_fits_telegram_limit_at_extremes() -> None:
    biggest = 2**63 - 1
    payload = sign_invoice_payload("k", biggest, biggest, 999_999_999, biggest)
    assert len(payload.encode()) <= 128
    assert verify_invoice_payload("k", payload) == InvoicePayload(biggest, biggest, 999_999_999, biggest)
    with pytest.raises(ValueError):
        sign_invoice_payload("k", 1, 1, 0, 100)
    with pytest.raises(ValueError):
        sign_invoice_payload("", 1, 1, 1, 100)


def test_errors_share_a_base() -> None:
    for error in (InsufficientFunds, IdempotencyConflict, RefundRefused, InvalidRequest):
        assert issubclass(error, LedgerError)
