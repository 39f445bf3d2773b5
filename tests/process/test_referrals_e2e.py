"""Referrals end to end: the screen with the user's link, who joined and what it earned; a bonus for the
invited user too. Invariants: each referral pays each side once; a user never refers themself; a link
with a code nobody has pays nobody; the screen's numbers are the ledger's."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, buttons
from tenant_runtime.billing.ledger import Ledger
from tests.helpers import stays_true

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-ref-")))
    await s.start()
    await s.add_tenant("ref-shop", options=("--referral-bonus", "500", "--referral-bonus-invited", "300"))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisor(stack: Stack) -> AsyncIterator[SupervisorProcess]:
    process = await stack.start_supervisor("ref-1")
    await process.wait_active(1)
    yield process
    await process.stop()


async def _balance(pool: asyncpg.Pool, user_id: int) -> int:
    tenant_id = await pool.fetchval("SELECT id FROM tenants WHERE slug = 'ref-shop'")
    return (await Ledger(pool).balance(tenant_id, user_id)).available


async def test_each_referral_pays_both_sides_once_and_the_screen_tells_it(
    stack: Stack, supervisor: SupervisorProcess, module_pool: asyncpg.Pool
) -> None:
    token = stack.tenants[0].token
    alice = ScriptedUser(stack.telegram, token, 8_600_001)
    menu = await alice.say("/start", expect="Выберите, что создать")
    screen = await alice.tap(menu, "🎁 Пригласить друзей", expect="Приглашайте друзей")
    body = screen.text or ""
    assert "Пришло по ссылке: 0" in body and "Вы получили: 0 ₽" in body
    assert "+5 ₽" in body and "Другу — тоже подарок: +3 ₽" in body
    link = re.search(r"https://t\.me/ref_shop_bot\?start=(ref_[\w-]+)", body)
    assert link is not None
    assert [label for label, _ in buttons(screen)] == ["📤 Поделиться ссылкой", "🏠 Главное меню"]

    bob = ScriptedUser(stack.telegram, token, 8_600_002)
    await bob.say(f"/start {link.group(1)}", expect="Вы пришли по приглашению: +3 ₽")
    await alice.expect("По вашей ссылке пришёл новый пользователь: +5 ₽", after=screen.message_id)
    assert (await _balance(module_pool, bob.user_id), await _balance(module_pool, alice.user_id)) == (300, 500)

    # Bob again with the link, Alice with her own, Carol with a code nobody has: nobody is paid.
    again = await bob.say(f"/start {link.group(1)}", expect="Выберите, что создать")
    await alice.say(f"/start {link.group(1)}", expect="Выберите, что создать")
    carol = ScriptedUser(stack.telegram, token, 8_600_003)
    await carol.say("/start ref_nobodyhasthis", expect="Выберите, что создать")
    await stays_true(
        lambda: not [e for e in stack.telegram.transcript(token, bob.user_id) if "приглашению" in (e.text or "")][1:],
        window=2,
        what="a second invited bonus",
    )
    assert again.message_id
    assert (await _balance(module_pool, bob.user_id), await _balance(module_pool, alice.user_id)) == (300, 500)
    assert await _balance(module_pool, carol.user_id) == 0

    menu = await alice.say("/start", expect="Выберите, что создать")
    screen = await alice.tap(menu, "🎁 Пригласить друзей", expect="Пришло по ссылке: 1")
    assert "Вы получили: 5 ₽" in (screen.text or "")
