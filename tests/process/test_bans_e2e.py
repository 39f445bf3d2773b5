"""Ban and unban end to end (issue 17, item 2): /admin → user lookup by @username → Ban with a reason; the
banned user gets one short message and nothing else, their held money comes back and a late result is
never charged nor delivered; Unban restores them. Real supervisor, fake Telegram and KIE, real Postgres."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, buttons
from tenant_runtime.billing.ledger import Ledger
from tenant_runtime.moderation.audit import AuditAction, recent
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ADMIN = 971001
VICTIM = 9_810_001
PAID = "google/imagen4-fast"


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-bans-")))
    await s.start()
    await s.add_tenant("ban-shop", admins=(ADMIN,))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("bans-1")
    await process.wait_active(1)
    yield process
    await process.stop()


def _bot_texts(stack: Stack, user_id: int, after: int = 0) -> list[str]:
    entries = stack.telegram.transcript(stack.tenants[0].token, user_id)
    return [e.text or e.caption or "" for e in entries if e.from_bot and e.message_id > after]


async def test_ban_and_unban_from_admin(stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool) -> None:
    db = module_pool
    token = stack.tenants[0].token
    tenant_id = int(await db.fetchval("SELECT id FROM tenants WHERE slug = 'ban-shop'"))
    victim = ScriptedUser(stack.telegram, token, VICTIM)
    update = await stack.telegram.send_text(token, VICTIM, "/start", username="Victim_User")
    await victim.expect("Выберите, что создать", after=update.message_id or 0)
    await Ledger(db).credit(
        tenant_id, VICTIM, 10_000, kind="admin_credit", unique_key="fund", actor="admin:1", reason="test"
    )
    # A generation running when the ban comes: KIE answers only after the ban.
    saved = stack.kie.config
    stack.kie.config = dataclasses.replace(saved, model_durations={PAID: (6.0, 6.0)})
    try:
        menu = await victim.say("/start", expect="Выберите, что создать")
        await stack.telegram.press_button(token, VICTIM, menu.message_id, f"md:{PAID}:1", force=True)
        await victim.expect("Шаг 1/2", after=menu.message_id - 1)
        step2 = await victim.say("a running fox", expect="Шаг 2/2")
        confirm = await victim.tap(step2, "Пропустить", expect="Цена")
        await victim.tap(confirm, "Сгенерировать", expect="в очереди")
        assert (await Ledger(db).balance(tenant_id, VICTIM)).held == 320

        admin = ScriptedUser(stack.telegram, token, ADMIN)
        home = await admin.say("/admin", expect="Админ-панель")
        ask = await admin.tap(home, "Пользователь", expect="Telegram id, @username или часть имени")
        # An admin's own card has no Ban button.
        own = await admin.say(str(ADMIN), expect=f"Пользователь {ADMIN}")
        assert not any("Заблокировать" in label for label, _ in buttons(own))
        # Part of a name: several matches are a list to choose from; one opens the card.
        await admin.tap(home, "Пользователь", expect="Telegram id, @username или часть имени")
        found = await admin.say("user", expect="Найдено 2")
        assert sorted(label.split(" · ")[-1] for label, _ in buttons(found)) == sorted([str(ADMIN), str(VICTIM)])
        chosen = next(label for label, _ in buttons(found) if label.endswith(str(VICTIM)))
        await admin.tap(found, chosen, expect=f"Пользователь {VICTIM} (@Victim_User)")
        ask = await admin.tap(home, "Пользователь", expect="Telegram id, @username или часть имени")
        card = await admin.say("@victim_user", expect=f"Пользователь {VICTIM} (@Victim_User)")
        prompt = await admin.tap(card, "Заблокировать", expect="причину блокировки")
        done = await admin.say("spam in the chat", expect=f"Пользователь {VICTIM} заблокирован")
        assert "Остановлено генераций: 1; из резерва вернулось на баланс 3,20 ₽. Баланс сохранён: 100 ₽" in (
            done.text or ""
        ), done.text
        assert ask and prompt
        balance = await Ledger(db).balance(tenant_id, VICTIM)
        assert (balance.available, balance.held) == (10_000, 0)

        # The banned user: one short message, then nothing at all, whatever they send or tap.
        banned_from = max(e.message_id for e in stack.telegram.transcript(token, VICTIM))
        first = None
        for text in ("/start", "hello", "/balance", "/promo X"):
            sent = await stack.telegram.send_text(token, VICTIM, text)
            first = first or sent.update_id
        await stack.telegram.press_button(token, VICTIM, menu.message_id, "m:balance", force=True)

        async def handled() -> bool:
            done = await db.fetchval(
                "SELECT count(*) FROM updates_inbox WHERE tenant_id = $1 AND chat_id = $2 AND update_id >= $3 "
                "AND status = 'done'",
                tenant_id,
                VICTIM,
                first,
            )
            return int(done) == 5

        await wait_until(handled, timeout=20, what="the banned user's updates handled")

        # The KIE task finishes after the ban: its callback changes nothing and nothing is delivered.
        async def called_back() -> bool:
            return any(c.delivered for c in stack.kie.callbacks if "/kie/callback/ban-shop/" in c.url)

        await wait_until(called_back, timeout=20, what="KIE's callback for the stopped generation")
        said = _bot_texts(stack, VICTIM, after=banned_from)
        assert said == ["Доступ к боту ограничен. Если это ошибка, напишите в поддержку."], said
        assert not any(e.media_kind for e in stack.telegram.transcript(token, VICTIM))
        balance = await Ledger(db).balance(tenant_id, VICTIM)
        assert (balance.available, balance.held) == (10_000, 0), "never charged for the stopped generation"
    finally:
        stack.kie.config = saved

    # Unban, with a reason; the user is served again.
    home = await admin.say("/admin", expect="Админ-панель")
    await admin.tap(home, "Пользователь", expect="Telegram id, @username или часть имени")
    card = await admin.say(str(VICTIM), expect="🚫 Заблокирован")
    assert "spam in the chat" in (card.text or "")
    await admin.tap(card, "Разблокировать", expect="причину разблокировки")
    await admin.say("appeal accepted", expect=f"Пользователь {VICTIM} разблокирован")
    await victim.say("/start", expect="Выберите, что создать")
    entries = await recent(db, tenant_id, str(VICTIM))
    assert [(e.action, e.actor, e.detail) for e in entries] == [
        (AuditAction.UNBAN, f"admin:{ADMIN}", "appeal accepted"),
        (AuditAction.BAN, f"admin:{ADMIN}", "spam in the chat"),
    ]
    assert await Ledger(db).reconcile(tenant_id) == []


async def test_bans_are_counted(stack: Stack, supervisor: SupervisorProcess) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(f"{supervisor.base_url}/metrics")).text
    assert 'bans_total{action="ban",tenant="ban-shop"} 1.0' in body
    assert 'bans_total{action="unban",tenant="ban-shop"} 1.0' in body
