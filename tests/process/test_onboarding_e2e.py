"""Shops created by their owners through the platform bot, end to end: a real supervisor process, the fake
Telegram (the platform bot, the owner's new bot, its users) and the fake KIE.

Invariants: nothing reaches `tenants` before the owner presses Create; a pending shop is served by nobody
until an operator approves it, and then within seconds; only the owner acts on their shop; every refused
input says why and writes nothing; no secret typed into the flow stays in the chat or reaches a log.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, bot_token, button, buttons
from sandbox.telegram.model import TranscriptEntry
from tests.helpers import assert_no_secrets, stays_true, wait_until

pytestmark = pytest.mark.slow

OPERATOR = 4_300_001
PLATFORM = bot_token(990_000_888)
_bot_ids = iter(range(880_900_001, 880_999_999))
_owner_ids = iter(range(4_310_001, 4_320_000))


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-onboarding-")))
    await s.start()
    await s.telegram.register_bot(PLATFORM, username="platform_bot")
    await s.telegram.send_text(PLATFORM, OPERATOR, "/start")  # Telegram: a bot writes only to who wrote first
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor(
        "onb-1", mode="polling", PLATFORM_BOT_TOKEN=PLATFORM, OPERATOR_CHAT_IDS=str(OPERATOR)
    )
    yield process
    await process.stop()


async def _new_bot(stack: Stack, username: str) -> str:
    token = bot_token(next(_bot_ids))
    await stack.telegram.register_bot(token, username=username)
    return token


def _kie_key(stack: Stack) -> str:
    key = "kie_" + secrets.token_hex(16)
    stack.kie.register_key(key, 500)
    return key


def _operator_chat(stack: Stack) -> list[TranscriptEntry]:
    return [e for e in stack.telegram.transcript(PLATFORM, OPERATOR) if e.from_bot]


async def _status(pool: asyncpg.Pool, slug: str) -> str | None:
    return await pool.fetchval("SELECT status FROM tenants WHERE slug = $1", slug)


async def _walk_to_summary(owner: ScriptedUser, name: str, token: str, kie_key: str) -> TranscriptEntry:
    """The whole /newshop flow up to the summary, taking the suggested slug."""
    await owner.say("/newshop", expect="Как назовём магазин")
    offer = await owner.say(name, expect="Короткое имя")
    suggested = next(label for label, _ in buttons(offer) if label.startswith("Взять "))
    await owner.tap(offer, suggested, expect="Токен бота")
    asked_key = await owner.say(token, expect="Теперь ключ API KIE.ai")
    assert "@" in (asked_key.text or "")
    language = await owner.say(kie_key, expect="Ключ принят")
    markup = await owner.tap(language, "Русский", expect="Наценка")
    return await owner.tap(markup, "×2", expect="Проверьте")


def _secret_messages_gone(stack: Stack, owner: ScriptedUser, *secrets_: str) -> None:
    for entry in stack.telegram.transcript(PLATFORM, owner.user_id):
        body = entry.text or ""
        if any(s in body for s in secrets_):
            assert entry.deleted, "a message holding a secret was left in the chat"


async def test_owner_creates_a_shop_the_operator_approves_and_its_users_are_served(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool
) -> None:
    owner = ScriptedUser(stack.telegram, PLATFORM, next(_owner_ids))
    token = await _new_bot(stack, "moi_magazin_bot")
    kie_key = _kie_key(stack)
    summary = await _walk_to_summary(owner, "Мой магазин", token, kie_key)
    assert "moi-magazin" in (summary.text or "")
    assert "@moi_magazin_bot" in (summary.text or "") and "×2" in (summary.text or "")
    assert await _status(module_pool, "moi-magazin") is None, "nothing is written before Create"
    await owner.tap(summary, "✅ Создать", expect="отправлена")
    assert await _status(module_pool, "moi-magazin") == "pending"
    _secret_messages_gone(stack, owner, token, kie_key)

    await wait_until(lambda: len(_operator_chat(stack)) >= 1, timeout=15, what="the approval request")
    request = _operator_chat(stack)[-1]
    assert "moi-magazin" in (request.text or "") and "@moi_magazin_bot" in (request.text or "")
    # Pending: served by nobody. A user's /start stays unanswered past many lock beats (0.5 s).
    buyer = ScriptedUser(stack.telegram, token, next(_owner_ids))
    await stack.telegram.send_text(token, buyer.user_id, "/start")
    await stays_true(
        lambda: not [e for e in stack.telegram.transcript(token, buyer.user_id) if e.from_bot],
        window=4,
        what="a pending shop answered a user",
    )

    approved_at = time.monotonic()
    await ScriptedUser(stack.telegram, PLATFORM, OPERATOR).tap(request, "✅ Одобрить", expect="Одобрен")
    await buyer.say("/start", expect="Выберите", timeout=10)
    assert time.monotonic() - approved_at < 10
    await owner.expect("работает: @moi_magazin_bot", after=summary.message_id)
    assert await module_pool.fetchval("SELECT admin_ids FROM tenants WHERE slug = 'moi-magazin'") == [owner.user_id]

    # The owner rotates the KIE key from /myshops; the message holding it is deleted.
    new_key = _kie_key(stack)
    shops = await owner.say("/myshops", expect="Ваши магазины")
    assert "работает" in (shops.text or "")
    await owner.tap(shops, "🔑 Ключ KIE · moi-magazin", expect="Новый ключ KIE")
    await owner.say(new_key, expect="заменён")
    _secret_messages_gone(stack, owner, new_key)
    actions = await module_pool.fetch(
        "SELECT actor, action FROM operator_audit WHERE tenant_slug = 'moi-magazin' ORDER BY id"
    )
    assert [(r["actor"], r["action"]) for r in actions] == [
        (f"owner:{owner.user_id}", "shop_create"),
        (f"operator:telegram:{OPERATOR}", "shop_approve"),
        (f"owner:{owner.user_id}", "shop_kie_key"),
    ]

    # Pause: the bot stops answering; resume: it answers again.
    shops = await owner.say("/myshops", expect="Ваши магазины")
    running = await _slots(supervisor)
    await owner.tap(shops, "⏸ Пауза · moi-magazin", expect="на паузе")
    assert await _status(module_pool, "moi-magazin") == "paused"
    await wait_until(lambda: _slots_are(supervisor, running - 1), timeout=10, what="the paused bot stopped")
    resume = await owner.say("/myshops", expect="на паузе")
    await owner.tap(resume, "▶️ Запустить · moi-magazin", expect="снова работает")
    await buyer.say("/start", expect="Выберите", timeout=10)

    # Someone else: sees no shop, and a forged press on the shop's button changes nothing.
    stranger = ScriptedUser(stack.telegram, PLATFORM, next(_owner_ids))
    mine = await stranger.say("/myshops", expect="нет магазинов")
    tenant_id = await module_pool.fetchval("SELECT id FROM tenants WHERE slug = 'moi-magazin'")
    version = await module_pool.fetchval("SELECT config_version FROM tenants WHERE id = $1", tenant_id)
    await stack.telegram.press_button(PLATFORM, stranger.user_id, mine.message_id, f"ms:pause:{tenant_id}", force=True)
    await wait_until(
        lambda: any(c.answered and c.text == "Это не ваш магазин." for c in stack.telegram.callbacks(PLATFORM)),
        timeout=10,
        what="the stranger told it is not theirs",
    )
    assert await module_pool.fetchval("SELECT config_version FROM tenants WHERE id = $1", tenant_id) == version
    assert await _status(module_pool, "moi-magazin") == "enabled"

    chats = "\n".join(
        e.text or "" for u in (owner.user_id, OPERATOR) for e in stack.telegram.transcript(PLATFORM, u) if not e.deleted
    )
    assert_no_secrets(chats + supervisor.log(), [token, kie_key, new_key, PLATFORM, stack.master_key])


async def _slots(supervisor: SupervisorProcess) -> int:
    tenants = (await supervisor.health() or {}).get("tenants")
    return int(tenants.get("total", 0)) if isinstance(tenants, dict) else 0


async def _slots_are(supervisor: SupervisorProcess, count: int) -> bool:
    return await _slots(supervisor) == count


async def _written(pool: asyncpg.Pool, owner_id: int) -> tuple[int, int]:
    tenants = await pool.fetchval("SELECT count(*) FROM tenants WHERE owner_id = $1", owner_id)
    audit = await pool.fetchval("SELECT count(*) FROM operator_audit WHERE actor = $1", f"owner:{owner_id}")
    return tenants, audit


async def test_every_bad_input_is_refused_with_a_reason_and_nothing_is_written(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool
) -> None:
    (existing,) = await stack.add_tenants_direct("onbx", 1)
    owner = ScriptedUser(stack.telegram, PLATFORM, next(_owner_ids))
    await owner.say("/newshop", expect="Как назовём магазин")
    await owner.say("Я" * 500, expect="от 1 до 64 символов")
    await owner.say("/nonsense", expect="Не понял")  # a command mid-flow is not a name
    await owner.say("Shop Two", expect="Предлагаю")
    await owner.say("Bad Slug!", expect="не подходит")
    await owner.say(existing.slug, expect="уже занято")
    await owner.say("shop-two-x", expect="Токен бота")
    await owner.send_photo(expect="текстом")

    wrong_shape = "12345:short"
    await owner.say(wrong_shape, expect="не похоже на токен")
    await owner.say(existing.token, expect="уже подключён к другому магазину")
    unknown = bot_token(next(_bot_ids))  # a well-formed token Telegram has never issued (or has revoked)
    await owner.say(unknown, expect="Telegram не принял этот токен")
    token = await _new_bot(stack, "shop_two_bot")
    await owner.say(token, expect="Бот @shop_two_bot найден")

    await owner.say("short", expect="не похоже на ключ KIE")
    rejected_key = "kie_" + secrets.token_hex(16)  # well-formed, but KIE has no such account
    await owner.say(rejected_key, expect="KIE.ai не принял этот ключ")
    kie_key = _kie_key(stack)
    language = await owner.say(kie_key, expect="Ключ принят")
    await owner.say("ru", expect="кнопкой")  # the language is chosen with a button
    markup = await owner.tap(language, "English", expect="Наценка")
    await owner.say("abc", expect="число от 1 до 100")
    await owner.say("1000", expect="число от 1 до 100")
    summary = await owner.say("2,5", expect="Проверьте")
    assert "×2.5" in (summary.text or "") and markup.message_id < summary.message_id
    assert await _written(module_pool, owner.user_id) == (0, 0), "nothing is written before Create"
    _secret_messages_gone(stack, owner, wrong_shape, existing.token, unknown, token, "short", rejected_key, kie_key)

    # A stale button (the language step is over) changes nothing.
    await stack.telegram.press_button(PLATFORM, owner.user_id, language.message_id, button(language, "Русский"))
    await wait_until(
        lambda: any(c.answered and c.text and "устарел" in c.text for c in stack.telegram.callbacks(PLATFORM)),
        timeout=10,
        what="the stale button answered",
    )
    await owner.tap(summary, "✅ Создать", expect="отправлена")
    assert await _status(module_pool, "shop-two-x") == "pending"
    assert await module_pool.fetchval("SELECT default_language FROM tenants WHERE slug = 'shop-two-x'") == "en"

    # A second /newshop while one waits for approval.
    await owner.say("/newshop", expect="ещё ждёт одобрения")
    assert await _written(module_pool, owner.user_id) == (1, 1)

    # Abandoned half-way (after the token) and then cancelled: no tenant, and the draft holds no secret.
    quitter = ScriptedUser(stack.telegram, PLATFORM, next(_owner_ids))
    abandoned = await _new_bot(stack, "abandoned_bot")
    await quitter.say("/newshop", expect="Как назовём магазин")
    offer = await quitter.say("Abandoned", expect="Предлагаю")
    await quitter.tap(offer, "Взять abandoned", expect="Токен бота")
    await quitter.say(abandoned, expect="найден")
    draft = await module_pool.fetchval("SELECT data::text FROM onboarding_drafts WHERE user_id = $1", quitter.user_id)
    assert draft and abandoned not in draft, "the draft holds the token encrypted"
    await quitter.say("/cancel", expect="Отменено")
    await quitter.say("/cancel", expect="Нечего отменять")
    assert await _written(module_pool, quitter.user_id) == (0, 0)
    assert await _status(module_pool, "abandoned") is None
    bot_id = int(abandoned.split(":")[0])
    assert not await module_pool.fetchval("SELECT EXISTS (SELECT 1 FROM tenants WHERE bot_id = $1)", bot_id)

    everything = "\n".join(e.text or "" for e in stack.telegram.transcript(PLATFORM, owner.user_id) if not e.deleted)
    assert_no_secrets(everything + supervisor.log(), [token, kie_key, rejected_key, unknown, abandoned, existing.token])
    assert "Traceback" not in supervisor.log()
