"""The flagship models on KIE's dedicated endpoints, end to end through a real supervisor, the fake
Telegram and the fake KIE speaking each family's own request, status and callback shapes.

Per family: catalog → wizard → confirm → every result delivered, charged once at the price the
confirm screen showed (callback path and polling path); a failed task returns the money; KIE's 402 is
a refund; a 429 is retried and makes one task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from sandbox.kie import CallbackPolicy
from sandbox.stack import DemoTenant, ScriptedUser, Stack, SupervisorProcess, button, buttons
from sandbox.telegram.model import TranscriptEntry
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.billing.pricing import format_money
from tests.helpers import funded_user, tenant_id_of

pytestmark = pytest.mark.slow

START_BALANCE = 100_000
DUPLICATE_WINDOW_S = 4.0  # the next poll (3 s) or a retried callback would have come by then


@dataclass(frozen=True)
class Case:
    """One family's order, as a user makes it. In `answers`, "{prompt}" is replaced by the prompt."""

    model: str
    category: str
    title: str
    answers: tuple[tuple[str, str], ...]
    price: int  # minor units at the tenant's markup 2 and 40 kopecks per credit
    create_op: str
    status_op: str
    media: str
    outputs: int = 1

    @property
    def id(self) -> str:
        return self.model


CASES = [
    Case(
        model="openai/4o-image",
        category="Изображения",
        title="GPT-4o Image",
        answers=(("say", "{prompt}"), ("tap", "3:2")),
        price=480,  # 6 credits
        create_op="gpt4o.generate",
        status_op="gpt4o.recordInfo",
        media="photo",
    ),
    Case(
        model="flux/kontext",
        category="Изображения",
        title="Flux Kontext",
        answers=(("say", "{prompt}"), ("tap", "Max"), ("tap", "1:1")),
        price=640,  # Max: 8 credits
        create_op="flux.generate",
        status_op="flux.recordInfo",
        media="photo",
    ),
    Case(
        model="flux/kontext-edit",
        category="Редактирование",
        title="Flux Kontext Edit",
        answers=(("photo", ""), ("say", "{prompt}"), ("tap", "Pro"), ("tap", "Пропустить")),
        price=320,  # Pro: 4 credits
        create_op="flux.generate",
        status_op="flux.recordInfo",
        media="photo",
    ),
    Case(
        model="google/veo-3.1",
        category="Видео",
        title="Veo 3.1",
        answers=(("say", "{prompt}"), ("tap", "Быстрый"), ("tap", "По описанию"), ("tap", "9:16")),
        price=4800,  # Fast: 60 credits
        create_op="veo.generate",
        status_op="veo.recordInfo",
        media="video",
    ),
    Case(
        model="suno/v5",
        category="Аудио",
        title="Suno V5",
        answers=(("tap", "Нет"), ("tap", "Нет"), ("say", "{prompt}")),
        price=960,  # 12 credits for the two tracks
        create_op="suno.generate",
        status_op="suno.recordInfo",
        media="audio",
        outputs=2,
    ),
    Case(
        model="runway/gen-4",
        category="Видео",
        title="Runway Gen-4",
        answers=(("say", "{prompt}"), ("tap", "10 с"), ("tap", "720p"), ("tap", "9:16")),
        price=2400,  # 10 s at 720p: 30 credits
        create_op="runway.generate",
        status_op="runway.recordDetail",
        media="video",
    ),
    Case(
        model="midjourney/api",
        category="Изображения",
        title="Midjourney",
        answers=(("say", "{prompt}"), ("tap", "Быстрое"), ("tap", "16:9"), ("tap", "Версия 7")),
        price=640,  # fast: 8 credits for the four images
        create_op="mj.generate",
        status_op="mj.recordInfo",
        media="photo",
        outputs=4,
    ),
]


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-flagships-")))
    await s.start()
    await s.add_tenant("flagships", admins=(7_700_001,))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("flagships-1")
    await process.wait_active(1)
    yield process
    await process.stop()


_next_user = iter(range(7_710_000, 7_800_000))


async def _open_model(user: ScriptedUser, case: Case) -> TranscriptEntry:
    """From the main menu through the catalog's pages to the model's first wizard step."""
    menu = await user.say("/start", expect="Выберите, что создать")
    page = await user.tap(menu, case.category, expect="выберите модель")
    for _ in range(10):
        if any(text.startswith(case.title + " ·") for text, _ in buttons(page)):
            break
        page = await user.tap(page, "▶️", expect="выберите модель")
    card = await user.tap(page, case.title + " ·", expect=case.title)
    return await user.tap(card, "Выбрать", expect="Шаг 1/")


async def _order(user: ScriptedUser, case: Case, prompt: str) -> TranscriptEntry:
    """Answer the wizard and tap Generate; returns the confirm screen as it was shown."""
    screen = await _open_model(user, case)
    for kind, value in case.answers:
        value = value.format(prompt=prompt)
        if kind == "say":
            screen = await user.say(value)
        elif kind == "photo":
            screen = await user.send_photo()
        else:
            screen = await user.tap(screen, value)
    assert "Цена" in (screen.text or ""), screen.text
    await user.tap(screen, "Сгенерировать", expect="в очереди")
    return screen


def _shown_price(confirm: TranscriptEntry) -> int:
    found = re.search(r"Цена: ([\d\s]+(?:,\d\d)?) ₽", confirm.text or "")
    assert found, confirm.text
    rubles, _, kopecks = found.group(1).replace(" ", "").partition(",")
    return int(rubles) * 100 + int(kopecks or 0)


def _results(stack: Stack, user: ScriptedUser, case: Case, after: int) -> list[TranscriptEntry]:
    return [
        e
        for e in stack.telegram.transcript(user.token, user.user_id)
        if e.from_bot and e.message_id > after and e.media_kind == case.media
    ]


def _failures(stack: Stack, user: ScriptedUser, after: int) -> list[TranscriptEntry]:
    return [
        e
        for e in stack.telegram.transcript(user.token, user.user_id)
        if e.from_bot and e.message_id > after and "❌" in (e.text or "")
    ]


async def _money(db: asyncpg.Pool, tenant: DemoTenant, user: ScriptedUser) -> tuple[int, int, list[str]]:
    """(available, held, the resolutions of the user's one job hold)."""
    tenant_id = await tenant_id_of(db, tenant.slug)
    ledger = Ledger(db)
    balance = await ledger.balance(tenant_id, user.user_id)
    jobs = await db.fetch("SELECT hold_id FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant_id, user.user_id)
    assert len(jobs) == 1, jobs
    kinds = await db.fetch(
        "SELECT kind FROM ledger_entries WHERE tenant_id = $1 AND hold_id = $2 AND kind <> 'hold' ORDER BY id",
        tenant_id,
        jobs[0]["hold_id"],
    )
    assert await ledger.reconcile(tenant_id) == []
    return balance.available, balance.held, [r["kind"] for r in kinds]


async def _assert_delivered_and_charged(
    stack: Stack, db: asyncpg.Pool, user: ScriptedUser, case: Case, confirm: TranscriptEntry
) -> list[TranscriptEntry]:
    price = _shown_price(confirm)
    assert price == case.price

    async def delivered() -> bool:
        return len(_results(stack, user, case, confirm.message_id)) >= case.outputs

    deadline = asyncio.get_running_loop().time() + 30
    while not await delivered():
        assert asyncio.get_running_loop().time() < deadline, stack.telegram.transcript(user.token, user.user_id)
        await asyncio.sleep(0.1)
    results = _results(stack, user, case, confirm.message_id)
    captions = [e.caption or "" for e in results if e.caption]
    assert any(f"Списано {format_money(price)}" in c for c in captions), captions
    if case.outputs > 1:
        assert len({e.media_group_id for e in results}) == 1 and results[0].media_group_id is not None
    await asyncio.sleep(DUPLICATE_WINDOW_S)
    assert len(_results(stack, user, case, confirm.message_id)) == case.outputs
    available, held, kinds = await _money(db, stack.tenants[0], user)
    assert (available, held, kinds) == (START_BALANCE - price, 0, ["commit"])
    return results


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_result_via_callback_charged_once_at_the_shown_price(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None, case: Case
) -> None:
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    confirm = await _order(user, case, "a lighthouse at dawn")
    await _assert_delivered_and_charged(stack, module_pool, user, case, confirm)
    assert any(c.delivered for c in stack.kie.callbacks)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_result_via_polling_when_callbacks_are_lost(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None, case: Case
) -> None:
    stack.kie.config = dataclasses.replace(stack.kie.config, callbacks=CallbackPolicy(drop=True))
    tenant = stack.tenants[0]
    before = stack.kie.calls(case.status_op, tenant.kie_key)
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    confirm = await _order(user, case, "a lighthouse by polling")
    await _assert_delivered_and_charged(stack, module_pool, user, case, confirm)
    assert stack.kie.calls(case.status_op, tenant.kie_key) > before


async def _assert_refunded(
    stack: Stack, db: asyncpg.Pool, user: ScriptedUser, confirm: TranscriptEntry, reason: str
) -> None:
    failure = await user.telegram.wait_for_bot_message(
        user.token,
        user.user_id,
        after_message_id=confirm.message_id,
        timeout=30,
        predicate=lambda e: "❌" in (e.text or ""),
    )
    price = _shown_price(confirm)
    assert reason in (failure.text or "")
    assert "возвращено на баланс" in (failure.text or "")
    available, held, kinds = await _money(db, stack.tenants[0], user)
    assert (available, held, kinds) == (START_BALANCE, 0, ["release"]), price
    await asyncio.sleep(1)
    assert len(_failures(stack, user, confirm.message_id)) == 1


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_failed_task_returns_the_money(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None, case: Case
) -> None:
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    confirm = await _order(user, case, "please FAIL this, policy")
    await _assert_refunded(stack, module_pool, user, confirm, "фильтром контента")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_kie_out_of_credits_refunds(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None, case: Case
) -> None:
    tenant = stack.tenants[0]
    stack.kie.inject(case.create_op, code=402, api_key=tenant.kie_key)
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    confirm = await _order(user, case, "no credits at KIE")
    await _assert_refunded(stack, module_pool, user, confirm, "временно недоступен")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_rate_limited_create_is_retried_once(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None, case: Case
) -> None:
    tenant = stack.tenants[0]
    before = stack.kie.calls(case.create_op, tenant.kie_key)
    stack.kie.inject(case.create_op, code=429, api_key=tenant.kie_key)
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    prompt = f"after a 429 for {case.model}"
    confirm = await _order(user, case, prompt)
    await _assert_delivered_and_charged(stack, module_pool, user, case, confirm)
    assert stack.kie.calls(case.create_op, tenant.kie_key) - before == 2
    made = [t for t in stack.kie.tasks.values() if t.model == case.create_op and t.input.get("prompt") == prompt]
    assert len(made) == 1


# ── follow-ups and refusals of particular families ─────────────────────────────


async def _wait_answer(stack: Stack, token: str, seen: int, message_id: int, data: str) -> str:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        fresh = [c for c in stack.telegram.callbacks(token)[seen:] if c.message_id == message_id and c.data == data]
        if fresh and fresh[0].answered:
            assert fresh[0].show_alert, fresh[0]
            return fresh[0].text or ""
        assert asyncio.get_running_loop().time() < deadline, "the bot did not answer the button"
        await asyncio.sleep(0.05)


async def test_veo_refuses_a_reference_mode_the_model_does_not_offer_before_any_money(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None
) -> None:
    """Reference photos are Fast-only and 16:9 / 9:16 only (KIE's docs): the wizard refuses them with
    the Quality model, and Auto after them, on the spot; nothing is created or held."""
    tenant = stack.tenants[0]
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    case = next(c for c in CASES if c.model == "google/veo-3.1")
    step = await _open_model(user, case)
    step = await user.say("a fox in the rain", expect="Режим")
    step = await user.tap(step, "Качество", expect="Из чего снимать")
    seen = len(stack.telegram.callbacks(tenant.token))
    data = button(step, "По вашим фото")
    await stack.telegram.press_button(tenant.token, user.user_id, step.message_id, data)
    alert = await _wait_answer(stack, tenant.token, seen, step.message_id, data)
    assert "недоступен вместе с уже выбранным" in alert and "Качество" in alert
    # Back to Fast, then reference photos, then Auto: refused the same way.
    step = await user.tap(step, "Назад", expect="Режим")
    step = await user.tap(step, "Быстрый", expect="Из чего снимать")
    step = await user.tap(step, "По вашим фото", expect="Соотношение сторон")
    seen = len(stack.telegram.callbacks(tenant.token))
    data = button(step, "Авто")
    await stack.telegram.press_button(tenant.token, user.user_id, step.message_id, data)
    alert = await _wait_answer(stack, tenant.token, seen, step.message_id, data)
    assert "По вашим фото" in alert
    step = await user.tap(step, "16:9", expect="Пришлите фото героев")
    tenant_id = await tenant_id_of(module_pool, tenant.slug)
    assert (
        await module_pool.fetchval(
            "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND user_id = $2", tenant_id, user.user_id
        )
        == 0
    )
    assert (
        await module_pool.fetchval(
            "SELECT count(*) FROM holds WHERE tenant_id = $1 AND user_id = $2", tenant_id, user.user_id
        )
        == 0
    )


async def test_veo_1080p_is_a_follow_up_job_of_its_own_with_its_confirm_and_no_charge(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None
) -> None:
    case = next(c for c in CASES if c.model == "google/veo-3.1")
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    confirm = await _order(user, case, "a harbour at night")
    (video,) = await _assert_delivered_and_charged(stack, module_pool, user, case, confirm)
    labels = [text for text, _ in buttons(video)]
    assert labels == ["📺 Видео в 1080p", "🔁 Повторить", "✏️ Изменить параметры", "🏠 Главное меню"], labels
    follow = await user.tap(video, "1080p", expect="Цена")
    assert "Veo 3.1 · 1080p" in (follow.text or "") and "бесплатно" in (follow.text or "")
    await user.tap(follow, "Сгенерировать", expect="в очереди")
    hd = await user.telegram.wait_for_bot_message(
        user.token,
        user.user_id,
        after_message_id=follow.message_id,
        timeout=40,
        predicate=lambda e: e.media_kind == "video" and "1080p" in (e.caption or ""),
    )
    assert "resolution=1080p" in (hd.media_source or "")
    assert [t for t, _ in buttons(hd)] == ["🏠 Главное меню"]  # a follow-up's result is not repeated
    tenant_id = await tenant_id_of(module_pool, stack.tenants[0].slug)
    jobs = await module_pool.fetch(
        "SELECT model, price, hold_id, status FROM jobs WHERE tenant_id = $1 AND user_id = $2 ORDER BY id",
        tenant_id,
        user.user_id,
    )
    assert [(j["model"], j["price"], j["hold_id"] is None) for j in jobs] == [
        ("google/veo-3.1", case.price, False),
        ("google/veo-3.1/1080p", 0, True),
    ]
    balance = await Ledger(module_pool).balance(tenant_id, user.user_id)
    assert (balance.available, balance.held) == (START_BALANCE - case.price, 0)


async def test_suno_custom_mode_asks_lyrics_style_and_title_and_sends_them_as_the_docs_say(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None
) -> None:
    case = next(c for c in CASES if c.model == "suno/v5")
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    step = await _open_model(user, case)
    assert "Шаг 1/3" in (step.text or "")  # description mode: the switches and the description
    step = await user.tap(step, "Да", expect="Шаг 2/")
    step = await user.tap(step, "Нет", expect="Текст песни")
    assert "Шаг 3/5" in (step.text or "")
    assert not any("Пропустить" in text for text, _ in buttons(step)), "lyrics cannot be skipped in custom mode"
    step = await user.say("[Verse] a song about the sea", expect="Стиль")
    assert not any("Пропустить" in text for text, _ in buttons(step))
    await user.say("x" * 1001, expect="Слишком длинный текст: 1001 символов, максимум 1000")
    step = await user.say("sea shanty, accordion", expect="Название трека")
    confirm = await user.say("The Sea", expect="Цена")
    await user.tap(confirm, "Сгенерировать", expect="в очереди")
    results = await _assert_delivered_and_charged(stack, module_pool, user, case, confirm)
    assert len(results) == 2
    after = await user.expect("что дальше?", after=results[-1].message_id - 1)
    assert [t for t, _ in buttons(after)] == ["🔁 Повторить", "✏️ Изменить параметры", "🏠 Главное меню"]
    (task,) = [t for t in stack.kie.tasks.values() if t.model == "suno.generate" and t.input.get("title") == "The Sea"]
    assert task.input == {
        "customMode": True,
        "instrumental": False,
        "model": "V5",
        "style": "sea shanty, accordion",
        "title": "The Sea",
        "prompt": "[Verse] a song about the sea",
        "callBackUrl": task.callback_url,
    }


async def test_runway_refuses_ten_seconds_at_1080p_before_any_money(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool, kie_defaults: None
) -> None:
    tenant = stack.tenants[0]
    case = next(c for c in CASES if c.model == "runway/gen-4")
    user = await funded_user(stack, module_pool, stack.tenants[0], next(_next_user), START_BALANCE)
    step = await _open_model(user, case)
    step = await user.say("waves on rocks", expect="Длительность")
    step = await user.tap(step, "10 с", expect="Разрешение")
    seen = len(stack.telegram.callbacks(tenant.token))
    data = button(step, "1080p")
    await stack.telegram.press_button(tenant.token, user.user_id, step.message_id, data)
    alert = await _wait_answer(stack, tenant.token, seen, step.message_id, data)
    assert "недоступен вместе с уже выбранным" in alert and "10 с" in alert
    confirm = await user.tap(step, "720p", expect="Соотношение сторон")
    confirm = await user.tap(confirm, "16:9", expect="Цена")
    assert _shown_price(confirm) == 2400
    tenant_id = await tenant_id_of(module_pool, tenant.slug)
    assert (
        await module_pool.fetchval(
            "SELECT count(*) FROM holds WHERE tenant_id = $1 AND user_id = $2", tenant_id, user.user_id
        )
        == 0
    )
