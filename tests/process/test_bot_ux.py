"""What a Telegram user sees, through the fake Telegram, real HTTP and real Postgres."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, button, buttons
from sandbox.telegram.model import TranscriptEntry
from shared.registry import load_registry
from tenant_runtime.billing.ledger import Ledger

pytestmark = pytest.mark.slow

ADMIN = 960001


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-ux-")))
    await s.start()
    await s.add_tenant("ux-shop", admins=(ADMIN,), options=("--welcome-bonus", "100000"))
    await s.add_tenant("ux-other", options=("--language", "en"))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("ux-1")
    await process.wait_active(2)
    yield process
    await process.stop()


_ids = iter(range(9_100_000, 9_200_000))


def labels(entry: TranscriptEntry) -> list[str]:
    return [text for text, _ in buttons(entry)]


async def open_model(user: ScriptedUser, category: str, title: str) -> TranscriptEntry:
    menu = await user.say("/start", expect="Выберите, что создать")
    page = await user.tap(menu, category, expect="выберите модель")
    for _ in range(5):
        if any(title in text for text in labels(page)):
            break
        page = await user.tap(page, "▶️", expect="выберите модель")
    card = await user.tap(page, title, expect="Цена")
    assert labels(card) == ["✅ Выбрать", "⬅️ Назад"]
    return await user.tap(card, "Выбрать", expect="Шаг 1/")


async def finish(user: ScriptedUser, confirm: TranscriptEntry, media: str) -> TranscriptEntry:
    assert "Цена" in (confirm.text or "") and "Баланс после" in (confirm.text or "")
    assert labels(confirm) == ["🚀 Сгенерировать", "✏️ Изменить", "✖️ Отмена"]
    queued = await user.tap(confirm, "Сгенерировать", expect="в очереди")
    result = await user.telegram.wait_for_bot_message(
        user.token,
        user.user_id,
        after_message_id=queued.message_id,
        timeout=30,
        predicate=lambda e: e.media_kind is not None or "❌" in (e.text or ""),
    )
    assert result.media_kind == media, result
    assert labels(result) == ["🔁 Повторить", "✏️ Изменить параметры", "🏠 Главное меню"]
    return result


async def test_main_menu_lists_categories_with_counts(stack: Stack, supervisor: SupervisorProcess) -> None:
    user = ScriptedUser(stack.telegram, stack.tenants[0].token, next(_ids))
    menu = await user.say("/start", expect="Выберите, что создать")
    names = labels(menu)
    for category in ("🖼 Изображения", "🪄 Редактирование", "🎬 Видео", "🔍 Улучшение качества", "🎧 Аудио"):
        assert any(n.startswith(category + " (") for n in names), names
    assert "💰 Баланс" in names and "⭐ Пополнить" in names and "🧾 История" in names
    assert "🎁" in (stack.telegram.transcript(user.token, user.user_id)[-2].text or "")  # welcome bonus note


async def test_image_edit_upscale_video_audio_end_to_end(stack: Stack, supervisor: SupervisorProcess) -> None:
    token = stack.tenants[0].token
    # Image: prompt, then an enum as buttons, then the confirm screen.
    user = ScriptedUser(stack.telegram, token, next(_ids))
    step = await open_model(user, "Изображения", "Z-Image")
    assert "Опишите изображение" in (step.text or "") and labels(step) == ["⬅️ Назад", "✖️ Отмена"]
    step = await user.say("a cat astronaut", expect="Шаг 2/2")
    assert labels(step)[:5] == ["1:1", "4:3", "3:4", "16:9", "9:16"]
    assert "Пропустить" not in " ".join(labels(step)), "a required enum has no silent default"
    confirm = await user.tap(step, "1:1", expect="Цена")
    await finish(user, confirm, "photo")
    # Edit: a photo where an image is needed.
    user = ScriptedUser(stack.telegram, token, next(_ids))
    step = await open_model(user, "Редактирование", "Удаление фона")
    assert "Отправьте фото" in (step.text or "")
    confirm = await user.send_photo(expect="Цена")
    await finish(user, confirm, "photo")
    # Upscale.
    user = ScriptedUser(stack.telegram, token, next(_ids))
    step = await open_model(user, "Улучшение качества", "Crisp")
    confirm = await user.send_photo(expect="Цена")
    await finish(user, confirm, "photo")
    # Video: prompt, then optional choices each with a skip button.
    user = ScriptedUser(stack.telegram, token, next(_ids))
    step = await open_model(user, "Видео", "Grok Imagine")
    entry = await user.say("waves on a beach", expect="Шаг 2/")
    for _ in range(8):
        if "Цена" in (entry.text or ""):
            break
        assert any("Пропустить" in label for label in labels(entry))
        entry = await user.tap(entry, "Пропустить")
    await finish(user, entry, "video")
    # Audio.
    user = ScriptedUser(stack.telegram, token, next(_ids))
    step = await open_model(user, "Аудио", "ElevenLabs")
    confirm = await user.say("Привет! Это проверка озвучки.", expect="Цена")
    await finish(user, confirm, "audio")


async def test_wizard_bad_inputs_keep_the_conversation_usable(stack: Stack, supervisor: SupervisorProcess) -> None:
    token = stack.tenants[0].token
    user = ScriptedUser(stack.telegram, token, next(_ids))
    step = await open_model(user, "Изображения", "Z-Image")
    await user.say("x" * 1001, expect="Слишком длинный текст: 1001 символов, максимум 1000")
    step2 = await user.say("a fine prompt", expect="Шаг 2/2")
    await user.say("16:9 please", expect="Выберите вариант кнопкой")
    # A stale button: step 1's keyboard is gone, but an old "back" press is answered, not ignored.
    await user.telegram.press_button(token, user.user_id, step.message_id, "v:0:0", force=True)
    await user.expect("", after=step2.message_id)
    confirm = await user.tap(step2, "4:3", expect="Цена")
    assert "4:3" in (confirm.text or "")
    # Text where a photo is expected.
    user2 = ScriptedUser(stack.telegram, token, next(_ids))
    await open_model(user2, "Редактирование", "Удаление фона")
    await user2.say("here is my photo", expect="Здесь нужно фото")
    # Out-of-range and non-numeric numbers (an optional bounded number of Qwen).
    user3 = ScriptedUser(stack.telegram, token, next(_ids))
    entry = await open_model(user3, "Изображения", "Qwen Image")
    entry = await user3.say("a quiet lake", expect="Шаг 2/")
    for _ in range(8):
        if "число" in (entry.text or "").lower():
            break
        entry = await user3.tap(entry, "Пропустить", expect="Шаг")
    await user3.say("1000", expect="Число должно быть от")
    await user3.say("abc", expect="Это не число")
    # /cancel mid-wizard, then the bot works as before.
    await user3.say("/cancel", expect="Отменено")
    await user3.say("/start", expect="Выберите, что создать")
    await user3.say("hello?", expect="Не понял сообщение")
    unanswered = [c for c in stack.telegram.callbacks(token) if not c.answered]
    assert not unanswered, unanswered


async def test_stale_menu_button_gets_a_fresh_menu(stack: Stack, supervisor: SupervisorProcess) -> None:
    token = stack.tenants[0].token
    user = ScriptedUser(stack.telegram, token, next(_ids))
    menu = await user.say("/start", expect="Выберите, что создать")
    await user.telegram.press_button(token, user.user_id, menu.message_id, "zz:unknown", force=True)
    await user.expect("Это меню устарело", after=menu.message_id)
    fresh = await user.expect("Выберите, что создать", after=menu.message_id)
    assert fresh.message_id > menu.message_id


async def test_double_tap_on_generate_starts_one_generation(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    token = stack.tenants[0].token
    user = ScriptedUser(stack.telegram, token, next(_ids))
    step = await open_model(user, "Изображения", "Z-Image")
    step2 = await user.say("double tap", expect="Шаг 2/2")
    confirm = await user.tap(step2, "1:1", expect="Цена")
    data = dict(buttons(confirm))["🚀 Сгенерировать"]
    for _ in range(10):
        await user.telegram.press_button(token, user.user_id, confirm.message_id, data, force=True)
    await user.telegram.wait_for_bot_message(
        token,
        user.user_id,
        after_message_id=confirm.message_id,
        predicate=lambda e: e.media_kind == "photo",
        timeout=30,
    )
    count = await db.fetchval(
        "SELECT count(*) FROM jobs j JOIN tenants t ON t.id = j.tenant_id WHERE t.slug = 'ux-shop' AND j.user_id = $1",
        user.user_id,
    )
    assert count == 1
    assert step is not None


async def test_same_user_in_two_tenants_is_two_accounts(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    user_id = next(_ids)
    ru = ScriptedUser(stack.telegram, stack.tenants[0].token, user_id)
    other = ScriptedUser(stack.telegram, stack.tenants[1].token, user_id, language="ru")
    await ru.say("/start", expect="Выберите")
    await other.say("/start", expect="Выберите")
    step = await open_model(ru, "Изображения", "Z-Image")
    # Mid-wizard in tenant A; tenant B's conversation is its own.
    await other.say("some text", expect="Не понял сообщение")
    await ru.say("still my prompt", expect="Шаг 2/2")
    balance_a = await ru.say("/balance", expect="Баланс")
    balance_b = await other.say("/balance", expect="Баланс")
    assert "1 000 ₽" in (balance_a.text or "") and "0 ₽" in (balance_b.text or "")
    rows = await db.fetch(
        "SELECT t.slug, a.available FROM accounts a JOIN tenants t ON t.id = a.tenant_id "
        "WHERE a.user_id = $1 ORDER BY 1",
        user_id,
    )
    assert [(r["slug"], r["available"]) for r in rows] == [("ux-shop", 100000)]
    assert step is not None


async def test_english_user_gets_english(stack: Stack, supervisor: SupervisorProcess) -> None:
    en = ScriptedUser(stack.telegram, stack.tenants[0].token, next(_ids), language="en")
    menu = await en.say("/start", expect="Choose what to create")
    assert "🖼 Images" in " ".join(labels(menu))
    ru = ScriptedUser(stack.telegram, stack.tenants[0].token, next(_ids), language="ru")
    await ru.say("/start", expect="Выберите, что создать")
    # A tenant whose default language is English serves users of other languages in English.
    de = ScriptedUser(stack.telegram, stack.tenants[1].token, next(_ids), language="de")
    await de.say("/help", expect="I create images")
    switched = await en.tap(menu, "Язык", expect="Выберите, что создать")
    assert "🖼 Изображения" in " ".join(labels(switched))


async def test_admin_panel_only_for_admins_of_this_tenant(
    stack: Stack, supervisor: SupervisorProcess, db: asyncpg.Pool
) -> None:
    shop, other = stack.tenants
    customer = ScriptedUser(stack.telegram, shop.token, next(_ids))
    await customer.say("/start", expect="Выберите")
    await customer.say("/admin", expect="Неизвестная команда")
    admin = ScriptedUser(stack.telegram, shop.token, ADMIN)
    panel = await admin.say("/admin", expect="Админ-панель")
    prompt = await admin.tap(panel, "Начислить", expect="id сумма причина")
    await admin.say(f"{customer.user_id} 150", expect="Не понял")
    await admin.say(f"{customer.user_id} 150 compensation", expect="Начислено 150 ₽")
    entry = await db.fetchrow(
        "SELECT actor, reason, amount FROM ledger_entries e JOIN tenants t ON t.id = e.tenant_id "
        "WHERE t.slug = 'ux-shop' AND e.user_id = $1 AND kind = 'admin_credit'",
        customer.user_id,
    )
    assert dict(entry) == {"actor": f"admin:{ADMIN}", "reason": "compensation", "amount": 15000}
    stats = await admin.tap(panel, "📊 Статистика", expect="Статистика: сегодня")
    month = await admin.tap(stats, "30 дней", expect="Статистика: 30 дней")
    assert "Новых пользователей:" in (month.text or "") and "Europe/Moscow" in (month.text or "")
    back = await admin.tap(month, "⬅️ Назад", expect="Админ-панель")
    exports = await admin.tap(back, "📤 Экспорт", expect="Экспорт в CSV")
    assert [label for label, _ in buttons(exports)][:4] == [
        "👥 Пользователи",
        "⭐ Платежи",
        "🎨 Генерации",
        "Разделитель «;» → сменить на «,»",
    ]
    await stack.telegram.press_button(shop.token, ADMIN, exports.message_id, button(exports, "👥 Пользователи"))
    document = await stack.telegram.wait_for_bot_message(
        shop.token, ADMIN, predicate=lambda e: e.media_kind == "document", after_message_id=exports.message_id
    )
    assert document.file_id is not None
    data = stack.telegram.file_data(shop.token, document.file_id) or b""
    rows = data.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("user_id;username;first_name") and any(r.startswith(f"{customer.user_id};") for r in rows)
    back = await admin.tap(exports, "⬅️ Назад", expect="Админ-панель")
    assert back.message_id == panel.message_id, "the panel edited in place"
    deduct = await admin.tap(panel, "Списать", expect="id сумма причина")
    await admin.say(f"{customer.user_id} 999999 too much", expect="Нельзя списать")
    # The same admin id has no power in another tenant.
    outsider = ScriptedUser(stack.telegram, other.token, ADMIN)
    await outsider.say("/start", expect="Выберите")
    await outsider.say("/admin", expect="Неизвестная команда")
    assert prompt is not None and deduct is not None
    tenant_id = await db.fetchval("SELECT id FROM tenants WHERE slug = 'ux-shop'")
    assert await Ledger(db).reconcile(tenant_id) == []


async def test_admin_switching_a_model_off_updates_the_menu_counts(stack: Stack, supervisor: SupervisorProcess) -> None:
    shop = stack.tenants[0]
    first = load_registry().sellable()[0]
    category_label = {"image": "🖼 Изображения", "edit": "🪄 Редактирование", "video": "🎬 Видео"}[first.category]

    def count(menu: TranscriptEntry) -> int:
        label = next(n for n in labels(menu) if n.startswith(category_label + " ("))
        return int(label.rsplit("(", 1)[1].rstrip(")"))

    customer = ScriptedUser(stack.telegram, shop.token, next(_ids))
    before = count(await customer.say("/start", expect="Выберите"))
    admin = ScriptedUser(stack.telegram, shop.token, ADMIN)
    panel = await admin.say("/admin", expect="Админ-панель")
    models = await admin.tap(panel, "Модели", expect="включить/выключить")
    models = await admin.tap(models, f"✅ {first.id}", expect="включить/выключить")
    assert f"🚫 {first.id}" in labels(models)
    assert count(await customer.say("/start", expect="Выберите")) == before - 1
    models = await admin.tap(models, f"🚫 {first.id}", expect="включить/выключить")
    assert f"✅ {first.id}" in labels(models)
    assert count(await customer.say("/start", expect="Выберите")) == before
