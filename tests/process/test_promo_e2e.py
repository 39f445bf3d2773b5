"""Promo codes end to end (issue 17, item 3): an admin creates codes in /admin (bad lines refused), users
redeem with /promo CODE or a deep link, exactly once each and never beyond max uses, also under 20 users
tapping at once on two supervisor processes. Real supervisors, fake Telegram and KIE, real Postgres."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess
from shared.crypto import KeyRing
from supervisor.tenants import TenantStore
from tenant_runtime.billing.ledger import Ledger
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ADMIN = 972001
SLUG = "promo-shop"
_ids = iter(range(9_820_000, 9_830_000))


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-promo-")))
    await s.start()
    await s.add_tenant(SLUG, admins=(ADMIN,))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisors(stack: Stack) -> AsyncIterator[tuple[SupervisorProcess, SupervisorProcess]]:
    a = await stack.start_supervisor("promo-a")
    b = await stack.start_supervisor("promo-b")
    await a.wait_for(lambda h: True, timeout=30, what="a up")
    yield a, b
    await asyncio.gather(a.stop(), b.stop())


async def _tenant_id(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG))


async def _served(stack: Stack) -> ScriptedUser:
    """A user who started the bot (so the fake knows the chat)."""
    user = ScriptedUser(stack.telegram, stack.tenants[0].token, next(_ids))
    await user.say("/start", expect="Выберите, что создать", timeout=30)
    return user


async def test_admin_creates_codes_and_users_redeem_them_once(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    admin = ScriptedUser(stack.telegram, stack.tenants[0].token, ADMIN)
    home = await admin.say("/admin", expect="Админ-панель", timeout=30)
    listing = await admin.tap(home, "Промокоды", expect="Промокоды")
    assert "Промокодов пока нет" in (listing.text or "")
    await admin.tap(listing, "Создать промокод", expect="КОД ЗНАЧЕНИЕ МАКС_ИСПОЛЬЗОВАНИЙ")
    for line, answer in (
        ("GI FT 50 20", "без пробелов"),
        ("GIFT 50", "Не понял"),
        ("GIFT🎁 50 20", "«GIFT🎁» не подходит"),
        ("G" * 200 + " 50 20", "не подходит"),
        ("GIFT 0 20", "Сумма — число больше нуля"),
        ("GIFT 50 0", "Использований — целое число от 1"),
        ("GIFT 50 20 2020-01-01", "Дата 2020-01-01 уже прошла"),
    ):
        await admin.say(line, expect=answer)
    assert await db.fetchval("SELECT count(*) FROM promo_codes") == 0, "no bad line wrote anything"
    created = await admin.say("gift 50 20 2099-12-31", expect="Промокод GIFT создан")
    assert "50 ₽, до 20 использований, до 31.12.2099 включительно" in (created.text or "")
    assert "https://t.me/promo_shop_bot?start=promo_GIFT" in (created.text or "")
    await admin.say("/admin", expect="Админ-панель")
    dup_home = await admin.say("/admin", expect="Админ-панель")
    dup = await admin.tap(dup_home, "Промокоды", expect="GIFT")
    await admin.tap(dup, "Создать промокод", expect="КОД ЗНАЧЕНИЕ")
    await admin.say("GIFT 10 1", expect="Промокод GIFT в этом боте уже есть")
    await admin.say("FREE2 2gen 5", expect="Промокод FREE2 создан: генераций: 2")

    user = await _served(stack)
    await user.say("/promo", expect="Отправьте промокод так: /promo КОД")
    await user.say("/promo gift", expect="🎟 Промокод GIFT активирован: +50 ₽. Баланс: 50 ₽")
    await user.say("/promo GIFT", expect="Вы уже активировали промокод GIFT")
    await user.say("/promo NOPE", expect="Промокод «NOPE» не найден")
    await user.say("/promo FREE2", expect="Бесплатные генерации: +2")
    await user.say("/start", expect="Бесплатно: осталось 5 из 5 сегодня · ещё 2 по промокодам")
    # A deep link redeems and then shows the menu.
    other = ScriptedUser(stack.telegram, stack.tenants[0].token, next(_ids))
    await other.say("/start promo_GIFT", expect="+50 ₽. Баланс: 50 ₽", timeout=30)
    await other.expect("Выберите, что создать", after=0)
    # The admin disables it; the list says so, and nobody can redeem it any more.
    home = await admin.say("/admin", expect="Админ-панель")
    listing = await admin.tap(home, "Промокоды", expect="GIFT")
    assert "использовано 2 из 20" in (listing.text or "")
    await admin.tap(listing, "Отключить GIFT", expect="Промокод GIFT отключён")
    third = await _served(stack)
    await third.say("/promo gift", expect="Промокод GIFT больше не действует")
    tenant_id = await _tenant_id(db)
    assert await Ledger(db).reconcile(tenant_id) == []


async def test_twenty_users_at_once_on_two_processes_never_pass_max_uses(
    stack: Stack, supervisors: tuple[SupervisorProcess, SupervisorProcess], db: asyncpg.Pool
) -> None:
    tenant = stack.tenants[0]
    await stack.cli("promo", "add", SLUG, "RACE", "--amount", "5.00", "--max-uses", "10")
    users = await asyncio.gather(*(_served(stack) for _ in range(20)))
    config = await TenantStore(db, KeyRing([stack.master_key])).get(SLUG)
    headers = {"X-Telegram-Bot-Api-Secret-Token": config.webhook_secret}
    text = "/promo RACE"

    def update(n: int, user_id: int) -> dict[str, object]:
        person = {"id": user_id, "is_bot": False, "first_name": "U", "language_code": "ru"}
        message = {
            "message_id": 100_000 + n,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "U"},
            "from": person,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len("/promo")}],
        }
        return {"update_id": 5_000_000 + n, "message": message}

    a, b = supervisors
    posts = [
        (process, update(2 * i + k, user.user_id)) for i, user in enumerate(users) for k, process in enumerate((a, b))
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        replies = await asyncio.gather(
            *(client.post(f"{p.base_url}/webhook/{SLUG}", json=body, headers=headers) for p, body in posts)
        )
    assert [r.status_code for r in replies] == [200] * 40
    tenant_id = await _tenant_id(db)
    winners = await db.fetch("SELECT user_id FROM promo_redemptions WHERE tenant_id = $1 AND code = 'RACE'", tenant_id)
    assert len(winners) == len({w["user_id"] for w in winners}) == 10
    assert await db.fetchval("SELECT uses FROM promo_codes WHERE tenant_id = $1 AND code = 'RACE'", tenant_id) == 10
    credited = await db.fetchval(
        "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = $1 AND unique_key LIKE 'promo:RACE:%'",
        tenant_id,
    )
    assert credited == 10 * 500

    # Every tap got exactly one truthful answer.
    def answers(user: ScriptedUser) -> list[str]:
        entries = stack.telegram.transcript(tenant.token, user.user_id)
        return [e.text or "" for e in entries if e.from_bot and "RACE" in (e.text or "")]

    await wait_until(lambda: all(len(answers(u)) == 2 for u in users), timeout=30, what="two answers per user")
    won = {w["user_id"] for w in winners}
    for user in users:
        said = answers(user)
        assert len(said) == 2, said
        if user.user_id in won:
            assert sum("активирован: +5 ₽. Баланс: 5 ₽" in s for s in said) == 1, said
            assert sum("Вы уже активировали промокод RACE" in s for s in said) == 1, said
        else:
            assert all("использован максимальное число раз" in s for s in said), said
    assert await Ledger(db).reconcile(tenant_id) == []

    # Counted per tenant and outcome, across both processes (each counts what it handled).
    totals: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for process in supervisors:
            body = (await client.get(f"{process.base_url}/metrics")).text
            for line in body.splitlines():
                if line.startswith("promo_redemptions_total{") and f'tenant="{SLUG}"' in line:
                    outcome = line.split('outcome="')[1].split('"')[0]
                    totals[outcome] = totals.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    assert totals == {"redeemed": 13.0, "already_used": 11.0, "used_up": 20.0, "unknown": 1.0, "disabled": 1.0}
