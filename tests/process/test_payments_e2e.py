"""Telegram Stars top-ups through the fake Telegram: credited once, refunds, two processes."""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, buttons
from shared.crypto import KeyRing
from supervisor.tenants import TenantStore
from tenant_runtime.billing.ledger import Ledger
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ADMIN = 970001


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-pay-")))
    await s.start()
    await s.add_tenant("pay-shop", admins=(ADMIN,))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisors(stack: Stack) -> AsyncIterator[tuple[SupervisorProcess, SupervisorProcess]]:
    # Refunds left without Telegram's answer are asked about again after a second, not five minutes.
    a = await stack.start_supervisor("pay-a", REFUND_SETTLE_AFTER_SECONDS="1")
    await a.wait_active(1)
    b = await stack.start_supervisor("pay-b", REFUND_SETTLE_AFTER_SECONDS="1")
    yield a, b
    await b.stop()
    await a.stop()


async def _buy(stack: Stack, user: ScriptedUser) -> str:
    menu = await user.say("/start", expect="Выберите, что создать")
    packages = await user.tap(menu, "Пополнить", expect="звёздами")
    await user.tap(packages, "50 ⭐", expect=None)
    invoice = await user.telegram.wait_for_bot_message(
        user.token, user.user_id, predicate=lambda e: e.invoice is not None, after_message_id=packages.message_id
    )
    assert invoice.invoice is not None and invoice.invoice["currency"] == "XTR"
    charge = await stack.telegram.pay_invoice(user.token, user.user_id, invoice.message_id)
    await user.expect("Баланс пополнен на 75 ₽", after=invoice.message_id)
    return charge


async def _balance(db: asyncpg.Pool, user_id: int) -> int:
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = 'pay-shop'")
    return (await Ledger(db).balance(tenant_id, user_id)).available


async def test_stars_credited_once_even_when_redelivered_to_both_processes(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    a, b = supervisors
    tenant = stack.tenants[0]
    user = ScriptedUser(stack.telegram, tenant.token, 8_500_001)
    charge = await _buy(stack, user)
    assert await _balance(db, user.user_id) == 7500
    paid = next(
        u for u in stack.telegram.updates(tenant.token) if u.kind == "message" and "successful_payment" in u.payload
    )
    # Telegram redelivers (same update id) to the webhook, and a copy lands on each process directly.
    await stack.telegram.redeliver(tenant.token, paid.update_id)
    config = await TenantStore(db, KeyRing([stack.master_key])).get(tenant.slug)
    headers = {"X-Telegram-Bot-Api-Secret-Token": config.webhook_secret}
    fresh = {"update_id": paid.update_id + 10_000, "message": {**paid.payload, "date": int(time.time())}}
    async with httpx.AsyncClient(timeout=10) as client:
        for process in (a, b):
            for body in (paid.to_api(), fresh):
                response = await client.post(f"{process.base_url}/webhook/{tenant.slug}", json=body, headers=headers)
                assert response.status_code == 200
    assert await _balance(db, user.user_id) == 7500
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = 'pay-shop'")
    assert (
        await db.fetchval(
            "SELECT count(*) FROM star_payments WHERE tenant_id = $1 AND charge_id = $2", tenant_id, charge
        )
        == 1
    )
    credits = [e for e in stack.telegram.transcript(tenant.token, user.user_id) if "Баланс пополнен" in (e.text or "")]
    assert len(credits) == 1


async def test_forged_invoice_payload_is_refused_at_pre_checkout(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    from tenant_runtime.billing.invoices import sign_invoice_payload

    a, _ = supervisors
    tenant = stack.tenants[0]
    config = await TenantStore(db, KeyRing([stack.master_key])).get(tenant.slug)
    victim, thief = 8_500_002, 8_500_003
    await ScriptedUser(stack.telegram, tenant.token, thief).say("/start", expect="Выберите")
    cases = {
        "someone else's invoice": sign_invoice_payload(config.callback_secret, config.id, victim, 50, 7500),
        "wrong signature": sign_invoice_payload("not-the-secret", config.id, thief, 50, 7500),
        "garbage": "hello",
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": config.webhook_secret}
    async with httpx.AsyncClient(timeout=10) as client:
        for number, payload in enumerate(cases.values()):
            query = {
                "id": f"forged{number}",
                "from": {"id": thief, "is_bot": False, "first_name": "T"},
                "currency": "XTR",
                "total_amount": 50,
                "invoice_payload": payload,
            }
            body = {"update_id": 990_000 + number, "pre_checkout_query": query}
            response = await client.post(f"{a.base_url}/webhook/{tenant.slug}", json=body, headers=headers)
            assert response.status_code == 200
    answers = {
        c.params.get("pre_checkout_query_id"): c.params.get("ok")
        for c in stack.telegram.calls(tenant.token, "answerPreCheckoutQuery")
    }
    assert [answers.get(f"forged{n}") for n in range(len(cases))] == [False] * len(cases), answers
    assert await _balance(db, thief) == 0


async def test_admin_refund_and_refusal_when_spent(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    admin = ScriptedUser(stack.telegram, tenant.token, ADMIN)
    await admin.say("/start", expect="Выберите")
    buyer = ScriptedUser(stack.telegram, tenant.token, 8_500_004)
    charge = await _buy(stack, buyer)
    panel = await admin.say("/admin", expect="Админ-панель")
    await admin.tap(panel, "Возврат звёзд", expect=None)
    await admin.say(charge, expect="Возврат 50 ⭐ выполнен")
    assert await _balance(db, buyer.user_id) == 0
    assert stack.telegram.calls(tenant.token, "refundStarPayment")
    await admin.tap(panel, "Возврат звёзд", expect=None)
    await admin.say(charge, expect="Возврат невозможен")
    # Spent money cannot be refunded.
    spender = ScriptedUser(stack.telegram, tenant.token, 8_500_005)
    charge2 = await _buy(stack, spender)
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = 'pay-shop'")
    await Ledger(db).reserve(
        tenant_id,
        spender.user_id,
        5000,
        "spend-test",
        correlation_id=None,
        actor=f"user:{spender.user_id}",
        ttl_seconds=600,
    )
    await admin.tap(panel, "Возврат звёзд", expect=None)
    await admin.say(charge2, expect="Возврат невозможен")
    assert await _balance(db, spender.user_id) == 2500
    assert await Ledger(db).reconcile(tenant_id) == []


async def _payment_status(db: asyncpg.Pool, charge_id: str) -> str | None:
    status: str | None = await db.fetchval("SELECT status FROM star_payments WHERE charge_id = $1", charge_id)
    return status


async def test_unanswered_refund_is_settled_by_asking_telegram_again(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = 'pay-shop'")
    admin = ScriptedUser(stack.telegram, tenant.token, ADMIN)
    buyer = ScriptedUser(stack.telegram, tenant.token, 8_500_006)
    charge = await _buy(stack, buyer)
    panel = await admin.say("/admin", expect="Админ-панель")
    await admin.tap(panel, "Возврат звёзд", expect="id платежа")
    # Telegram answers the refund call (the bot's next call) with a 5xx: did the Stars go back?
    await stack.telegram.inject_faults(tenant.token, server_error_calls=1)
    await admin.say(charge, expect="Telegram не ответил")
    assert await _balance(db, buyer.user_id) == 0, "debited while the outcome is unknown"

    async def settled() -> bool:
        return await _payment_status(db, charge) == "refunded"

    await wait_until(settled, timeout=20, what="the refund settled")
    refund_calls = [
        c
        for c in stack.telegram.calls(tenant.token, "refundStarPayment")
        if c.params.get("telegram_payment_charge_id") == charge
    ]
    assert len(refund_calls) == 2  # the unanswered one and the settler's
    assert await _balance(db, buyer.user_id) == 0
    assert await Ledger(db).reconcile(tenant_id) == []
    # Operators see both answers on /metrics (served by whichever process holds the tenant).
    counts = {"unknown": 0.0, "refunded": 0.0}
    async with httpx.AsyncClient(timeout=10) as client:
        for process in supervisors:
            text = (await client.get(f"{process.base_url}/metrics")).text
            for outcome in counts:
                line = f'star_refunds_total{{outcome="{outcome}",tenant="pay-shop"}} '
                counts[outcome] += sum(float(x.split(" ")[-1]) for x in text.splitlines() if x.startswith(line))
    assert counts["unknown"] >= 1 and counts["refunded"] >= 1, counts


async def test_settler_credits_nothing_twice_when_telegram_had_refunded(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = 'pay-shop'")
    ledger = Ledger(db)
    buyer = ScriptedUser(stack.telegram, tenant.token, 8_500_007)
    charge = await _buy(stack, buyer)
    # The refund reached Telegram but its answer was lost: the ledger says 'refunding', Telegram says done.
    await ledger.begin_star_refund(tenant_id, charge, ADMIN)
    bot = Bot(tenant.token, session=AiohttpSession(api=stack.telegram.api_server))
    try:
        assert await bot.refund_star_payment(user_id=buyer.user_id, telegram_payment_charge_id=charge)
    finally:
        await bot.session.close()

    async def settled() -> bool:
        return await _payment_status(db, charge) == "refunded"

    await wait_until(settled, timeout=20, what="the refund settled")
    assert await _balance(db, buyer.user_id) == 0, "not credited back: the Stars did go back"
    # A charge Telegram does not know is a definite refusal: the balance comes back, the payment is 'paid'.
    await ledger.record_star_payment(tenant_id, buyer.user_id, "unknown-charge", 50, 7500, "test")
    await ledger.begin_star_refund(tenant_id, "unknown-charge", ADMIN)
    assert await _balance(db, buyer.user_id) == 0

    async def reverted() -> bool:
        return await _payment_status(db, "unknown-charge") == "paid"

    await wait_until(reverted, timeout=20, what="the refused refund reverted")
    assert await _balance(db, buyer.user_id) == 7500
    assert await ledger.reconcile(tenant_id) == []


async def test_tenant_sets_its_own_stars_packages_and_rate(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    await stack.cli("tenants", "update", tenant.slug, "--stars-packages", "10,20", "--stars-rate", "200")
    try:
        buyer = ScriptedUser(stack.telegram, tenant.token, 8_500_008)
        packages = None

        async def offered() -> bool:
            # The change reaches the running supervisor by NOTIFY: a fresh top-up screen shows it.
            nonlocal packages
            menu = await buyer.say("/start", expect="Выберите, что создать")
            packages = await buyer.tap(menu, "Пополнить", expect="звёздами")
            return [text for text, _ in buttons(packages)] == [
                "10 ⭐ → 20 ₽",
                "20 ⭐ → 40 ₽",
                "✏️ Другая сумма",
                "🏠 Главное меню",
            ]

        await wait_until(offered, timeout=10, interval=0.2, what="the tenant's packages on the top-up screen")
        assert packages is not None
        await buyer.tap(packages, "10 ⭐", expect=None)
        invoice = await buyer.telegram.wait_for_bot_message(
            buyer.token, buyer.user_id, predicate=lambda e: e.invoice is not None, after_message_id=packages.message_id
        )
        await stack.telegram.pay_invoice(buyer.token, buyer.user_id, invoice.message_id)
        await buyer.expect("Баланс пополнен на 20 ₽", after=invoice.message_id)
        assert await _balance(db, buyer.user_id) == 2000
    finally:
        await stack.cli("tenants", "update", tenant.slug, "--stars-packages", "default", "--stars-rate", "default")


async def test_a_custom_amount_of_stars_is_checked_then_invoiced_and_credited_once(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    buyer = ScriptedUser(stack.telegram, tenant.token, 8_500_009)
    menu = await buyer.say("/start", expect="Выберите, что создать")
    packages = await buyer.tap(menu, "Пополнить", expect="звёздами")
    await buyer.tap(packages, "✏️ Другая сумма", expect="Сколько звёзд? Целое число от 1 до 10000; 1 ⭐ = 1,50 ₽")
    for bad in ("0", "-5", "1e9", "сто", "10001", "12.5", "99999999999999999999"):
        await buyer.say(bad, expect="Нужно целое число звёзд от 1 до 10000")
    asked = await buyer.say("37", expect=None)
    invoice = await buyer.telegram.wait_for_bot_message(
        buyer.token, buyer.user_id, predicate=lambda e: e.invoice is not None, after_message_id=asked.message_id - 1
    )
    assert invoice.invoice is not None and invoice.invoice["total_amount"] == 37
    assert not [e for e in stack.telegram.transcript(tenant.token, buyer.user_id) if e.invoice][:-1], "one invoice"
    assert await _balance(db, buyer.user_id) == 0, "nothing credited for an invoice, or for bad amounts"
    await stack.telegram.pay_invoice(buyer.token, buyer.user_id, invoice.message_id)
    await buyer.expect("Баланс пополнен на 55,50 ₽", after=invoice.message_id)
    assert await _balance(db, buyer.user_id) == 37 * 150
