"""Limits end to end (issue 17, item 1): a real supervisor, the fake Telegram and KIE, real Postgres.

The 6th free generation of the day is refused with its reset time while paid models still work; a
4th concurrent generation is refused; 100 messages in a minute get handler work for the limit and
exactly one notice; the operator's limits show in /admin and reach a running bot without a restart.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess
from sandbox.telegram.model import TranscriptEntry
from tenant_runtime.billing.ledger import Ledger
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ADMIN = 970001
PAID = "google/imagen4-fast"
PRICE = 320
_ids = iter(range(9_700_000, 9_800_000))


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-limits-")))
    await s.start()
    await s.add_tenant("limit-shop", admins=(ADMIN,))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("limits-1")
    await process.wait_active(1)
    yield process
    await process.stop()


async def _tenant_id(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT id FROM tenants WHERE slug = 'limit-shop'"))


def _user(stack: Stack) -> ScriptedUser:
    return ScriptedUser(stack.telegram, stack.tenants[0].token, next(_ids))


def _said(stack: Stack, user: ScriptedUser) -> list[str]:
    return [e.text or e.caption or "" for e in stack.telegram.transcript(user.token, user.user_id) if e.from_bot]


async def _photo(user: ScriptedUser, after: int) -> TranscriptEntry:
    return await user.telegram.wait_for_bot_message(
        user.token, user.user_id, after_message_id=after, timeout=30, predicate=lambda e: e.media_kind == "photo"
    )


async def _confirm_paid(user: ScriptedUser, prompt: str) -> TranscriptEntry:
    menu = await user.say("/start", expect="Выберите, что создать")
    await user.telegram.press_button(user.token, user.user_id, menu.message_id, f"md:{PAID}:1", force=True)
    await user.expect("Шаг 1/2", after=menu.message_id - 1)
    step2 = await user.say(prompt, expect="Шаг 2/2")
    return await user.tap(step2, "Пропустить", expect="Цена")


async def _fund(db: asyncpg.Pool, user: ScriptedUser, amount: int) -> None:
    await Ledger(db).credit(
        await _tenant_id(db),
        user.user_id,
        amount,
        kind="admin_credit",
        unique_key=f"fund:{user.user_id}",
        actor="admin:1",
        reason="test funds",
    )


async def test_sixth_free_generation_is_refused_with_the_reset_time_and_paid_models_still_work(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    user = _user(stack)
    menu = await user.say("/start", expect="Бесплатно: осталось 5 из 5 сегодня")
    page = await user.tap(menu, "Изображения", expect="выберите модель")
    card = await user.tap(page, "Z-Image", expect="Бесплатно: осталось 5 из 5 сегодня")
    await user.tap(card, "Выбрать", expect="Шаг 1/2")
    step2 = await user.say("a red fox", expect="Шаг 2/2")
    confirm = await user.tap(step2, "1:1", expect="Цена")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    result = await _photo(user, confirm.message_id)
    for _ in range(4):  # "Repeat" four times: five free generations today
        await user.tap(result, "Повторить", expect="в очереди")
        result = await _photo(user, result.message_id)
    refused = await user.tap(result, "Повторить", expect="Бесплатные генерации на сегодня закончились")
    body = refused.text or ""
    assert "5 из 5" in body and "Новые будут в 00:00 (Europe/Moscow), через" in body, body
    assert "Платные модели доступны как обычно" in body
    tenant_id = await _tenant_id(db)
    free_jobs = "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2 AND price = 0"
    assert await db.fetchval(free_jobs, tenant_id, user.user_id) == 5, "the refused generation wrote nothing"
    await user.say("/start", expect="Бесплатно: осталось 0 из 5 сегодня")
    # The card of the free model says so too, and choosing it is refused before the wizard.
    menu = await user.say("/start", expect="Выберите, что создать")
    page = await user.tap(menu, "Изображения", expect="выберите модель")
    card = await user.tap(page, "Z-Image", expect="Бесплатно: осталось 0 из 5 сегодня")
    await user.tap(card, "Выбрать", expect="Бесплатные генерации на сегодня закончились")
    # Paid models still work.
    await _fund(db, user, 10_000)
    confirm = await _confirm_paid(user, "a paid fox")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    paid = await _photo(user, confirm.message_id)
    assert "Списано 3,20 ₽" in (paid.caption or "")


@pytest.fixture
def slow_paid_model(stack: Stack) -> AsyncIterator[None]:
    saved = stack.kie.config
    stack.kie.config = dataclasses.replace(saved, model_durations={PAID: (12.0, 12.0)})
    yield None
    stack.kie.config = saved


async def test_a_fourth_concurrent_generation_is_refused(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool, slow_paid_model: None
) -> None:
    user = _user(stack)
    await user.say("/start", expect="Выберите, что создать")
    await _fund(db, user, 10_000)
    for i in range(3):
        confirm = await _confirm_paid(user, f"running {i}")
        await user.tap(confirm, "Сгенерировать", expect="в очереди")
    confirm = await _confirm_paid(user, "one too many")
    refused = await user.tap(confirm, "Сгенерировать", expect="Генераций в работе: 3")
    assert "максимум одновременно" in (refused.text or "") and "Сгенерировать" in (refused.text or "")
    tenant_id = await _tenant_id(db)
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE user_id = $1", user.user_id) == 3
    balance = await Ledger(db).balance(tenant_id, user.user_id)
    assert (balance.available, balance.held) == (10_000 - 3 * PRICE, 3 * PRICE), "nothing held for the 4th"
    # When one finishes, the same confirm screen's Generate works.
    await _photo(user, refused.message_id)
    await user.tap(confirm, "Сгенерировать", expect="в очереди")


async def test_a_hundred_messages_in_a_minute_get_the_limit_of_replies_and_one_notice(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    user = _user(stack)
    tenant_id = await _tenant_id(db)
    first = None
    for i in range(100):
        update = await stack.telegram.send_text(user.token, user.user_id, f"spam {i}")
        first = first or update.update_id

    async def all_handled() -> bool:
        done = await db.fetchval(
            "SELECT count(*) FROM updates_inbox WHERE tenant_id = $1 AND chat_id = $2 AND status = 'done'",
            tenant_id,
            user.user_id,
        )
        return int(done) == 100

    # Every update is finished (so nothing is still on its way), then the replies are counted.
    await wait_until(all_handled, timeout=60, what="100 updates handled")
    said = _said(stack, user)
    assert said.count("Не понял сообщение. Выберите действие в меню:") == 30, said
    assert sum("Слишком много сообщений подряд" in text for text in said) == 1, said
    assert len(said) == 31
    # A new window: served again.
    await db.execute(
        "UPDATE rate_windows SET started_at = now() - interval '61 seconds' WHERE tenant_id = $1 AND user_id = $2",
        tenant_id,
        user.user_id,
    )
    await user.say("/start", expect="Выберите, что создать")


async def test_admin_sees_the_limits_and_an_operator_change_reaches_the_running_bot(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    admin = ScriptedUser(stack.telegram, stack.tenants[0].token, ADMIN)
    shown = await admin.say("/admin", expect="Админ-панель")
    assert "Лимиты: бесплатно 5 в день · одновременно 3 · 30 сообщений в минуту · пояс Europe/Moscow" in (
        shown.text or ""
    )
    await stack.cli("tenants", "update", "limit-shop", "--free-daily", "7", "--timezone", "Asia/Tokyo")

    async def reloaded() -> bool:
        reply = await _user(stack).say("/start", expect="Выберите, что создать")
        return "осталось 7 из 7" in (reply.text or "")

    await wait_until(reloaded, timeout=15, interval=0.3, what="the new quota on the menu")
    shown = await admin.say("/admin", expect="Админ-панель")
    assert "бесплатно 7 в день" in (shown.text or "") and "пояс Asia/Tokyo" in (shown.text or "")
    await stack.cli("tenants", "update", "limit-shop", "--free-daily", "5", "--timezone", "Europe/Moscow")


async def test_limit_hits_are_counted_per_tenant_and_limit(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(f"{supervisor.base_url}/metrics")).text
    for series, value in (
        ('limit_hits_total{limit="rate",tenant="limit-shop"}', 70.0),  # 100 messages, 30 allowed
        ('limit_hits_total{limit="free_daily",tenant="limit-shop"}', 1.0),
        ('limit_hits_total{limit="open_jobs",tenant="limit-shop"}', 1.0),
    ):
        assert f"{series} {value}" in body, series
