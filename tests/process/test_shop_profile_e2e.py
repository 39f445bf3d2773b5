"""Each shop its own words, end to end: the operator CLI sets welcome and help texts, descriptions and a
support contact; a real supervisor shows them to each shop's users in their language and makes the bots'
Telegram profiles match.

Invariants: a shop shows its own texts and nobody else's; Telegram's profile is set once per change, not
on every restart or failover; /admin appears in the menu of admins' chats only; a bad text file or
contact changes nothing.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import DemoTenant, ScriptedUser, Stack, buttons
from sandbox.telegram.model import TranscriptEntry
from tests.helpers import stays_true, wait_until

pytestmark = pytest.mark.slow

ADMIN_A = 4_400_001
PROFILE_CALLS = ("setMyCommands", "deleteMyCommands", "setMyDescription", "setMyShortDescription")


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-profile-")))
    await s.start()
    yield s
    await s.stop()


def _urls(entry: TranscriptEntry) -> list[str]:
    rows = (entry.reply_markup or {}).get("inline_keyboard", [])
    return [b["url"] for row in rows for b in row if "url" in b]


def _profile_sets(stack: Stack, tenant: DemoTenant) -> int:
    return sum(len(stack.telegram.calls(tenant.token, method)) for method in PROFILE_CALLS)


async def _update(stack: Stack, slug: str, *options: str) -> str:
    return await stack.cli("tenants", "update", slug, *options)


async def test_two_shops_show_their_own_words_and_telegram_profiles_follow_once(
    stack: Stack, module_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    a = await stack.add_tenant("brand-a", admins=(ADMIN_A,))
    b = await stack.add_tenant("brand-b", options=("--language", "en"))
    await stack.telegram.open_chat(a.token, ADMIN_A)  # the admin wrote to the bot once
    welcome = tmp_path / "welcome.txt"
    welcome.write_text("ru:\n<b>Ателье А</b> — картинки за минуту.\nen:\n<b>Studio A</b>: pictures in a minute.\n")
    (tmp_path / "about_ru.txt").write_text("Ателье А: картинки, видео и музыка по описанию.")
    printed = await _update(
        stack,
        a.slug,
        "--welcome-file",
        str(welcome),
        "--support",
        "@brand_a_help",
        "--description-file",
        f"ru:{tmp_path / 'about_ru.txt'}",
    )
    assert "<b>Ателье А</b> — картинки за минуту." in printed, "the operator sees what users will see"
    (tmp_path / "b.txt").write_text("Welcome to <i>B</i>.")
    (tmp_path / "b_help.txt").write_text('Write to us at <a href="https://b.example/help">b.example</a>.')
    await _update(
        stack,
        b.slug,
        "--welcome-file",
        f"en:{tmp_path / 'b.txt'}",
        "--help-file",
        f"en:{tmp_path / 'b_help.txt'}",
        "--support",
        "https://b.example/help",
    )

    sup = await stack.start_supervisor("prof-1")
    await sup.wait_active(2)
    ru_a = ScriptedUser(stack.telegram, a.token, 4_400_101, language="ru")
    en_a = ScriptedUser(stack.telegram, a.token, 4_400_102, language="en")
    en_b = ScriptedUser(stack.telegram, b.token, 4_400_103, language="en")
    await ru_a.say("/start", expect="Ателье А — картинки за минуту.")
    await en_a.say("/start", expect="Studio A: pictures in a minute.")
    menu_b = await en_b.say("/start", expect="Welcome to B.")
    assert "Studio A" not in (menu_b.text or "") and "Ателье" not in (menu_b.text or "")
    help_a = await ru_a.say("/help", expect="Я создаю изображения")  # no help text of its own: the default
    assert _urls(help_a) == ["https://t.me/brand_a_help"]
    help_b = await en_b.say("/help", expect="Write to us at b.example.")
    assert _urls(help_b) == ["https://b.example/help"]
    assert [label for label, _ in buttons(help_b)] == ["💬 Support", "🏠 Main menu"]

    # Telegram's profile: the menu per language, /admin only in the admin's chat, A's description in ru.
    await wait_until(lambda: stack.telegram.description(a.token, language="ru") != "", timeout=15, what="synced")
    assert stack.telegram.commands(a.token, language="ru") == ["start", "balance", "history", "help", "promo", "cancel"]
    assert "admin" not in stack.telegram.commands(a.token) and "admin" not in stack.telegram.commands(b.token)
    assert stack.telegram.commands(a.token, chat_id=ADMIN_A)[-1] == "admin"
    assert stack.telegram.description(a.token) == "Ателье А: картинки, видео и музыка по описанию."  # ru: the default
    assert stack.telegram.description(a.token, language="en") == ""
    assert stack.telegram.description(b.token) == ""
    await wait_until(lambda: _synced(module_pool, 2), timeout=15, what="both profiles recorded")
    sets_a, sets_b = _profile_sets(stack, a), _profile_sets(stack, b)

    # A restart (or a failover) with the same profile sets nothing: checked against what was applied.
    await sup.stop()
    sup = await stack.start_supervisor("prof-2")
    await sup.wait_active(2)
    await stays_true(
        lambda: (_profile_sets(stack, a), _profile_sets(stack, b)) == (sets_a, sets_b),
        window=4,
        what="a restart set the profile again",
    )

    # A new description is one call; a welcome text is not part of Telegram's profile: no call.
    short = tmp_path / "short.txt"
    short.write_text("ru:\nКартинки за минуту\nen:\nPictures in a minute\n")
    await _update(stack, a.slug, "--short-description-file", str(short))
    await wait_until(
        lambda: stack.telegram.description(a.token, "short_description", "en") == "Pictures in a minute",
        timeout=15,
        what="the short description",
    )
    await wait_until(lambda: _profile_sets(stack, a) == sets_a + 3, timeout=10, what="three short descriptions")
    assert len(stack.telegram.calls(a.token, "setMyShortDescription")) == 3  # default (ru), ru, en
    await _update(stack, a.slug, "--welcome-file", f"ru:{welcome}")
    await stays_true(lambda: _profile_sets(stack, a) == sets_a + 3, window=3, what="a welcome text set the profile")
    await sup.stop()


async def _synced(pool: asyncpg.Pool, count: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM bot_profiles WHERE fingerprint <> 'incomplete'") == count


async def test_bad_texts_and_contacts_change_nothing(stack: Stack, module_pool: asyncpg.Pool, tmp_path: Path) -> None:
    shop = await stack.add_tenant("brand-bad")
    version = await module_pool.fetchval("SELECT config_version FROM tenants WHERE slug = $1", shop.slug)
    bad_html = tmp_path / "bad.txt"
    bad_html.write_text("ru:\nПривет<br>мир\n")
    too_long = tmp_path / "long.txt"
    too_long.write_text("en:\n" + "x" * 121 + "\n")
    cases = [
        (("--welcome-file", str(bad_html)), "<br> is not a tag Telegram allows"),
        (("--short-description-file", str(too_long)), "Telegram allows at most 120"),
        (("--support", "support team"), "support contact"),
        (("--support", "http://insecure.example"), "support contact"),
        (("--help-file", str(tmp_path / "missing.txt")), "cannot read"),
        (("--welcome-file", f"de:{bad_html}"), "cannot read"),  # not a language: read as a path
    ]
    for options, message in cases:
        with pytest.raises(RuntimeError) as failed:
            await _update(stack, shop.slug, *options)
        assert message in str(failed.value) and "Traceback" not in str(failed.value), options
    row = await module_pool.fetchrow(
        "SELECT config_version, texts, support_url FROM tenants WHERE slug = $1", shop.slug
    )
    assert (row["config_version"], row["texts"], row["support_url"]) == (version, {}, None)


async def test_a_shops_admin_sets_its_words_from_the_bot(stack: Stack, module_pool: asyncpg.Pool) -> None:
    admin_id = 4_400_201
    shop = await stack.add_tenant("brand-own", admins=(admin_id,))
    sup = await stack.start_supervisor("prof-own")
    try:
        await sup.wait_active(len(stack.tenants))
        admin = ScriptedUser(stack.telegram, shop.token, admin_id)
        panel = await admin.say("/admin", expect="Админ-панель")
        settings = await admin.tap(panel, "⚙️ Тексты и поддержка", expect="Тексты магазина")
        assert "Приветствие: стандартное" in (settings.text or "")
        await admin.tap(settings, "Приветствие RU", expect="до 3000 символов")
        await admin.say("x" * 3001, expect="Не сохранено: welcome: the text is 3001 characters")
        await admin.say("Добро пожаловать в <b>наш</b> магазин & мастерскую", expect="Сохранено")
        await admin.tap(settings, "Кратко EN", expect="без оформления, до 120")
        await admin.say("y" * 121, expect="Не сохранено")
        await admin.say("Pictures & videos", expect="Сохранено")
        await admin.tap(settings, "💬 Поддержка", expect="@username или https")
        for bad in ("call us", "http://x.example", "@ab"):
            await admin.say(bad, expect="Не сохранено: support contact")
        await admin.say("@brand_own_help", expect="Сохранено")
        row = await module_pool.fetchrow("SELECT texts, support_url FROM tenants WHERE slug = $1", shop.slug)
        # What the admin typed as literal markup is kept as text, escaped: it never breaks the menu.
        assert row["texts"] == {
            "ru": {"welcome": "Добро пожаловать в &lt;b&gt;наш&lt;/b&gt; магазин &amp; мастерскую"},
            "en": {"short_description": "Pictures & videos"},
        }
        assert row["support_url"] == "https://t.me/brand_own_help"
        buyer = ScriptedUser(stack.telegram, shop.token, 4_400_202)
        await buyer.say("/start", expect="Добро пожаловать в <b>наш</b> магазин & мастерскую")
        help_ = await buyer.say("/help", expect="Я создаю")
        assert _urls(help_) == ["https://t.me/brand_own_help"]
        await wait_until(
            lambda: stack.telegram.description(shop.token, "short_description", "en") == "Pictures & videos",
            timeout=15,
            what="the short description in Telegram",
        )
        # "-" puts the default back.
        await admin.tap(settings, "Приветствие RU", expect="до 3000 символов")
        await admin.say("-", expect="Сохранено")
        assert await module_pool.fetchval("SELECT texts FROM tenants WHERE slug = $1", shop.slug) == {
            "en": {"short_description": "Pictures & videos"}
        }
        await buyer.say("/start", expect="Brand-Own")
    finally:
        await sup.stop()
