"""Every message that mentions money is true for that job's ledger state (issue 15, items 9-12, 14, 22).

Real supervisor process, fake Telegram and fake KIE over loopback HTTP, real Postgres.
"""

from __future__ import annotations

import dataclasses
import secrets
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, buttons
from sandbox.telegram.model import Payment, TranscriptEntry
from sandbox.telegram.payments import _service_message
from shared.crypto import KeyRing
from supervisor.tenants import TenantStore
from tenant_runtime.billing.invoices import sign_invoice_payload
from tenant_runtime.billing.ledger import Ledger
from tests.helpers import funded_user, tenant_id_of, wait_until

pytestmark = pytest.mark.slow

MODEL = "google/imagen4-fast"
PRICE = 320  # 4 credits x markup 2 x 40 kopecks: "3,20 ₽"
START = 10_000  # "100 ₽"
WELCOME = 100_000  # "1 000 ₽"
REFERRAL = 5_000  # "50 ₽"
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
NOTHING_CHARGED = "ничего не списано"


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-money-")))
    await s.start()
    await s.add_tenant("money-shop", admins=(980001,))
    await s.add_tenant("bonus-shop", options=("--welcome-bonus", str(WELCOME), "--referral-bonus", str(REFERRAL)))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("money-1", JOB_TIMEOUT_SECONDS="60")
    await process.wait_active(2)
    yield process
    await process.stop()


@pytest.fixture
def slow_kie(stack: Stack) -> AsyncIterator[None]:
    """Generations take 4 s, so the test acts while the money is still held."""
    saved = stack.kie.config
    stack.kie.config = dataclasses.replace(saved, model_durations={MODEL: (4.0, 4.0)})
    yield None
    stack.kie.config = saved


_ids = iter(range(7_300_000, 7_400_000))


async def _confirm(user: ScriptedUser, prompt: str) -> TranscriptEntry:
    menu = await user.say("/start", expect="Выберите, что создать")
    await user.telegram.press_button(user.token, user.user_id, menu.message_id, f"md:{MODEL}:1", force=True)
    await user.expect("Шаг 1/2", after=menu.message_id - 1)  # the menu message becomes step 1
    step2 = await user.say(prompt, expect="Шаг 2/2")
    return await user.tap(step2, "Пропустить", expect="Цена")


async def _result(user: ScriptedUser, after: int) -> TranscriptEntry:
    return await user.telegram.wait_for_bot_message(
        user.token, user.user_id, after_message_id=after, timeout=30, predicate=lambda e: e.media_kind == "photo"
    )


def _said(stack: Stack, user: ScriptedUser) -> list[str]:
    return [e.text or e.caption or "" for e in stack.telegram.transcript(user.token, user.user_id) if e.from_bot]


async def _job(db: asyncpg.Pool, user: ScriptedUser) -> asyncpg.Record:
    jobs = await db.fetch("SELECT id, hold_id, status, price FROM jobs WHERE user_id = $1", user.user_id)
    assert len(jobs) == 1, jobs
    return jobs[0]


async def _wait_submitted(db: asyncpg.Pool, user: ScriptedUser) -> None:
    async def submitted() -> bool:
        return await db.fetchval("SELECT status FROM jobs WHERE user_id = $1", user.user_id) == "submitted"

    await wait_until(submitted, timeout=10, what="job submitted")


async def _balance(db: asyncpg.Pool, stack: Stack, user: ScriptedUser) -> tuple[int, int]:
    found = await Ledger(db).balance(await tenant_id_of(db, stack.tenants[0].slug), user.user_id)
    return found.available, found.held


async def test_flood_wait_after_generate_tells_the_held_money_not_nothing_charged(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, slow_kie: None
) -> None:
    user = await funded_user(stack, db, stack.tenants[0], next(_ids), START)
    confirm = await _confirm(user, "a flood wait on the button")
    # Removing the Generate button hits a flood wait longer than the bot waits: the handler fails after
    # the job and its hold exist.
    await stack.telegram.inject_faults(
        user.token, rate_limit_calls=1, rate_limit_method="editMessageReplyMarkup", retry_after=60
    )
    try:
        warning = await user.tap(confirm, "Сгенерировать", expect="Что-то пошло не так после запуска")
    finally:
        await stack.telegram.clear_faults(user.token)
    assert "Зарезервировано 3,20 ₽: спишется, только если генерация удастся" in (warning.text or "")
    result = await _result(user, confirm.message_id)
    assert "Списано 3,20 ₽ · Баланс 96,80 ₽" in (result.caption or "")
    assert not any(NOTHING_CHARGED in text for text in _said(stack, user))
    assert await _balance(db, stack, user) == (START - PRICE, 0)


async def test_cancel_during_a_generation_says_what_happens_to_its_money(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, slow_kie: None
) -> None:
    user = await funded_user(stack, db, stack.tenants[0], next(_ids), START)
    confirm = await _confirm(user, "cancel me if you can")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    said = await user.say("/cancel", expect="остановить её нельзя")
    assert "Зарезервировано 3,20 ₽" in (said.text or "") and NOTHING_CHARGED not in (said.text or "")
    result = await _result(user, said.message_id)
    assert "Списано 3,20 ₽ · Баланс 96,80 ₽" in (result.caption or "")
    # With nothing running, /cancel cancels the wizard, and nothing was charged for it.
    await _confirm(user, "a draft")
    await user.say("/cancel", expect="Отменено. С вас ничего не списано.")


async def test_late_result_after_the_hold_expired_is_charged_from_the_balance(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, slow_kie: None
) -> None:
    user = await funded_user(stack, db, stack.tenants[0], next(_ids), START)
    tenant_id = await tenant_id_of(db, stack.tenants[0].slug)
    confirm = await _confirm(user, "a result after the hold expired")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    await _wait_submitted(db, user)
    assert await Ledger(db).expire_holds(tenant_id, now=FAR_FUTURE) == 1  # no process finished it in time
    result = await _result(user, confirm.message_id)
    assert "Списано 3,20 ₽ · Баланс 96,80 ₽" in (result.caption or "")
    job = await _job(db, user)
    holds = await db.fetch(
        "SELECT idempotency_key, status FROM holds WHERE tenant_id = $1 AND user_id = $2 ORDER BY id",
        tenant_id,
        user.user_id,
    )
    assert [(h["idempotency_key"], h["status"]) for h in holds] == [
        (f"job:{job['id']}", "expired"),
        (f"job:{job['id']}:late", "committed"),
    ]
    assert await _balance(db, stack, user) == (START - PRICE, 0)
    assert await Ledger(db).reconcile(tenant_id) == []


async def test_late_result_with_the_balance_spent_is_delivered_unpaid_and_says_so(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, slow_kie: None
) -> None:
    user = await funded_user(stack, db, stack.tenants[0], next(_ids), START)
    tenant_id = await tenant_id_of(db, stack.tenants[0].slug)
    ledger = Ledger(db)
    confirm = await _confirm(user, "late and unpaid")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    await _wait_submitted(db, user)
    assert await ledger.expire_holds(tenant_id, now=FAR_FUTURE) == 1
    await ledger.debit(tenant_id, user.user_id, START, unique_key=f"spent:{user.user_id}", actor="admin:1", reason="x")
    result = await _result(user, confirm.message_id)
    assert "Не списано: резерв 3,20 ₽ истёк до результата" in (result.caption or "")
    assert "Баланс 0 ₽" in (result.caption or "")
    assert await _balance(db, stack, user) == (0, 0)
    assert await ledger.reconcile(tenant_id) == []


async def test_stale_option_button_is_followed_by_a_fresh_screen(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    user = await funded_user(stack, db, stack.tenants[0], next(_ids), START)
    menu = await user.say("/start", expect="Выберите, что создать")
    await user.telegram.press_button(user.token, user.user_id, menu.message_id, f"md:{MODEL}:1", force=True)
    step1 = await user.expect("Шаг 1/2", after=menu.message_id - 1)
    step2 = await user.say("a stale option", expect="Шаг 2/2")
    # An option button of step 1, pressed while the wizard is at step 2.
    await user.telegram.press_button(user.token, user.user_id, step1.message_id, "v:0:0", force=True)
    fresh = await user.expect("Шаг 2/2", after=step2.message_id)
    assert buttons(fresh) == buttons(step2)
    stale = [c for c in stack.telegram.callbacks(user.token) if c.message_id == step1.message_id]
    assert stale and stale[-1].answered and stale[-1].text == "Это меню устарело — вот актуальное."


async def test_welcome_bonus_on_a_first_message_that_is_not_start_is_announced(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    user = ScriptedUser(stack.telegram, stack.tenants[1].token, next(_ids))
    hint = await user.say("привет", expect="Не понял сообщение")
    said = _said(stack, user)
    assert said[0] == "🎁 Вам начислен приветственный бонус: 1 000 ₽. Баланс: 1 000 ₽"
    assert said[-1] == hint.text
    await user.say("/start", expect="Выберите, что создать")
    assert sum("🎁" in text for text in _said(stack, user)) == 1


async def test_bonuses_are_granted_when_the_first_update_is_retried(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[1]
    tenant_id = await tenant_id_of(db, tenant.slug)
    referrer = ScriptedUser(stack.telegram, tenant.token, next(_ids))
    await referrer.say("/start", expect="Выберите, что создать")
    code = await db.fetchval(
        "SELECT referral_code FROM bot_users WHERE tenant_id = $1 AND user_id = $2", tenant_id, referrer.user_id
    )
    newcomer = ScriptedUser(stack.telegram, tenant.token, next(_ids))
    # The first attempt at the newcomer's /start recorded the user, then hit a database error: the
    # retry finds the user already there (not "new") with no bonus granted yet.
    await db.execute(
        "INSERT INTO bot_users (tenant_id, user_id, language, referral_code) VALUES ($1, $2, 'ru', $3)",
        tenant_id,
        newcomer.user_id,
        secrets.token_urlsafe(6),
    )
    await newcomer.say(f"/start ref_{code}", expect="Выберите, что создать")
    assert "🎁 Вам начислен приветственный бонус: 1 000 ₽" in _said(stack, newcomer)[0]
    note = await referrer.expect("По вашей ссылке пришёл новый пользователь: +50 ₽", after=0)
    assert note is not None
    ledger = Ledger(db)
    assert (await ledger.balance(tenant_id, newcomer.user_id)).available == WELCOME
    assert (await ledger.balance(tenant_id, referrer.user_id)).available == WELCOME + REFERRAL


async def test_repeated_stars_charge_id_with_another_amount_is_answered_truthfully(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    tenant_id = await tenant_id_of(db, tenant.slug)
    user = ScriptedUser(stack.telegram, tenant.token, next(_ids))
    menu = await user.say("/start", expect="Выберите, что создать")
    packages = await user.tap(menu, "Пополнить", expect="звёздами")
    await user.tap(packages, "50 ⭐", expect=None)
    invoice = await user.telegram.wait_for_bot_message(
        user.token, user.user_id, predicate=lambda e: e.invoice is not None, after_message_id=packages.message_id
    )
    charge = await stack.telegram.pay_invoice(user.token, user.user_id, invoice.message_id)
    done = await user.expect("Баланс пополнен на 75 ₽", after=invoice.message_id)
    # Telegram's service message again for the same charge id, now with a (validly signed) 100-Star payload.
    # The fake has no public control for this, so the test emits it through the fake's own helper.
    config = await TenantStore(db, KeyRing([stack.master_key])).get(tenant.slug)
    assert config is not None
    payload = sign_invoice_payload(config.callback_secret, tenant_id, user.user_id, 100, 15_000)
    fake = stack.telegram._state
    bot = fake.control_bot(tenant.token)
    payment = Payment(
        user_id=user.user_id,
        currency="XTR",
        total_amount=100,
        invoice_payload=payload,
        telegram_payment_charge_id=charge,
        provider_payment_charge_id=f"{user.user_id}_again",
    )
    _service_message(fake, bot, bot.chats[user.user_id], successful_payment=payment)
    said = await user.expect("уже зачислен раньше: +75 ₽", after=done.message_id)
    assert "(150 ₽)" in (said.text or "") and charge in (said.text or "")
    assert NOTHING_CHARGED not in (said.text or "") and "пошло не так" not in (said.text or "")
    assert (await Ledger(db).balance(tenant_id, user.user_id)).available == 7_500


async def _card_price(user: ScriptedUser) -> str:
    menu = await user.say("/start", expect="Выберите, что создать")
    await user.telegram.press_button(user.token, user.user_id, menu.message_id, f"md:{MODEL}:0", force=True)
    card = await user.expect("Цена", after=menu.message_id - 1)
    return card.text or ""


async def test_price_change_between_confirm_and_generate_asks_again(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    # Last in the module: it leaves the tenant's markup at 3.
    tenant = stack.tenants[0]
    user = await funded_user(stack, db, stack.tenants[0], next(_ids), START)
    watcher = ScriptedUser(stack.telegram, tenant.token, next(_ids))
    confirm = await _confirm(user, "the price moves")
    assert "3,20 ₽" in (confirm.text or "")
    await stack.cli("tenants", "update", tenant.slug, "--markup", "3")
    prices: list[str] = []

    async def repriced() -> bool:
        prices.append(await _card_price(watcher))
        return "4,80 ₽" in prices[-1]

    await wait_until(repriced, timeout=15, interval=0.2, what="the new markup in the running bot")
    again = await user.tap(confirm, "Сгенерировать", expect="Цена изменилась")
    assert "было 3,20 ₽, теперь 4,80 ₽" in (again.text or "")
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE user_id = $1", user.user_id) == 0
    # The old screen's button is stale now; the new one charges what it shows.
    await user.telegram.press_button(user.token, user.user_id, confirm.message_id, buttons(confirm)[0][1], force=True)
    fresh = await user.expect("4,80 ₽", after=again.message_id)
    assert buttons(fresh) == buttons(again)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE user_id = $1", user.user_id) == 0
    await user.tap(fresh, "Сгенерировать", expect="в очереди")
    result = await _result(user, fresh.message_id)
    assert "Списано 4,80 ₽" in (result.caption or "")
    assert (await _job(db, user))["price"] == 480
