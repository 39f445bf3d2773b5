"""Broadcasts end to end (issue 17, item 4): two real supervisors, the fake Telegram, real Postgres.

A broadcast to 2,000 users of one tenant: every reachable user gets it once (the one message that was
in flight when its sender was SIGKILLed is the only one that may be unknown, and it is never sent
twice), users who blocked the bot are counted and marked, the bot's interactive users keep getting their
replies within a second, the bot's calls stay under Telegram's limit, and the admin sees progress and a
final report. Pause, resume and cancel; bad inputs refused with nothing written.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess, buttons
from sandbox.telegram.model import TranscriptEntry
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

ADMIN = 973001
SLUG = "cast-shop"
AUDIENCE = 2000
BLOCKED = 40
MARK = "SALE-2000"
_ids = iter(range(9_840_000, 9_850_000))


@pytest.fixture(scope="module")
async def stack(module_database: str) -> AsyncIterator[Stack]:
    s = Stack(module_database, Path(tempfile.mkdtemp(prefix="tgsup-cast-")))
    await s.start()
    await s.add_tenant(SLUG, admins=(ADMIN,))
    yield s
    await s.stop()


@pytest.fixture(scope="module")
async def supervisors(stack: Stack) -> AsyncIterator[list[SupervisorProcess]]:
    processes = [await stack.start_supervisor("cast-a"), await stack.start_supervisor("cast-b")]
    await wait_until(lambda: _any_active(processes), timeout=30, what="a supervisor serving the tenant")
    yield processes
    for process in processes:
        if process.proc.returncode is None:
            await process.stop()


async def _any_active(processes: list[SupervisorProcess]) -> bool:
    for process in processes:
        health = await process.health()
        tenants = (health or {}).get("tenants")
        if isinstance(tenants, dict) and (tenants.get("by_state") or {}).get("active"):
            return True
    return False


async def _tenant_id(db: asyncpg.Pool) -> int:
    return int(await db.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG))


async def _admin_compose(admin: ScriptedUser) -> TranscriptEntry:
    home = await admin.say("/admin", expect="Админ-панель", timeout=30)
    return await admin.tap(home, "Рассылка", expect="Отправьте сообщение для рассылки")


async def test_bad_broadcasts_are_refused_and_nothing_is_written(
    stack: Stack, supervisors: list[SupervisorProcess], db: asyncpg.Pool
) -> None:
    token = stack.tenants[0].token
    admin = ScriptedUser(stack.telegram, token, ADMIN)
    await _admin_compose(admin)
    await admin.say("\u200b \u200b", expect="В сообщении нечего рассылать")
    await admin.say("x" * 4097, expect="Слишком длинно: 4097 символов, а Telegram разрешает боту не больше 4096")
    photo = await stack.telegram.send_photo(token, ADMIN, caption="y" * 1100)
    await admin.expect("Слишком длинно: 1100 символов", after=photo.message_id or 0)
    await admin.say("A fine message", expect="Добавить кнопку-ссылку")
    for line, answer in (
        ("just text", "Формат: Текст кнопки | https://адрес"),
        (" | https://example.com", "Текст кнопки — от 1 до 64"),
        ("Shop | javascript:alert(1)", "Ссылка не подходит"),
        ("Shop | https://exa mple.com", "Ссылка не подходит"),
        ("Shop | ftp://example.com/file", "Ссылка не подходит"),
    ):
        await admin.say(line, expect=answer)
    audiences = await admin.say("Shop | https://example.com/shop", expect="Кому отправить?")
    preview = stack.telegram.transcript(token, ADMIN)[-2]
    assert preview.text == "A fine message" and buttons(preview) == [("Shop", "")], "the preview is the real thing"
    await admin.tap(audiences, "Отмена", expect="Рассылка отменена, ничего не отправлено")
    assert await db.fetchval("SELECT count(*) FROM broadcasts") == 0


async def _seed(stack: Stack, db: asyncpg.Pool, count: int) -> list[int]:
    """Users who started the bot before: recorded by the bot, and their chats known to Telegram."""
    tenant_id = await _tenant_id(db)
    users = [next(_ids) for _ in range(count)]
    await db.executemany(
        "INSERT INTO bot_users (tenant_id, user_id, language, first_name, referral_code) VALUES ($1, $2, 'ru', 'U', $3)",
        [(tenant_id, user, f"r{user}") for user in users],
    )
    for user in users:
        await stack.telegram.open_chat(stack.tenants[0].token, user)
    return users


def _copies(stack: Stack, user: int, mark: str) -> int:
    return sum(
        1 for e in stack.telegram.transcript(stack.tenants[0].token, user) if e.from_bot and mark in (e.text or "")
    )


async def _start_broadcast(stack: Stack, db: asyncpg.Pool, text: str) -> int:
    admin = ScriptedUser(stack.telegram, stack.tenants[0].token, ADMIN)
    await _admin_compose(admin)
    ask = await admin.say(text, expect="Добавить кнопку-ссылку")
    audiences = await admin.tap(ask, "Без кнопки", expect="Кому отправить?")
    confirm = await admin.tap(audiences, "Всем", expect="получателям?")
    await admin.tap(confirm, "Отправить", expect="📣 Рассылка #")
    return int(await db.fetchval("SELECT max(id) FROM broadcasts"))


async def _status(db: asyncpg.Pool, broadcast: int) -> str:
    return str(await db.fetchval("SELECT status FROM broadcasts WHERE id = $1", broadcast))


async def _sent(db: asyncpg.Pool, broadcast: int) -> int:
    return int(
        await db.fetchval(
            "SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = $1 AND status <> 'pending'", broadcast
        )
    )


async def test_pause_resume_and_cancel(stack: Stack, supervisors: list[SupervisorProcess], db: asyncpg.Pool) -> None:
    users = await _seed(stack, db, 300)
    broadcast = await _start_broadcast(stack, db, "PAUSE-TEST spring sale")
    admin = ScriptedUser(stack.telegram, stack.tenants[0].token, ADMIN)
    await wait_until(lambda: _sent_at_least(db, broadcast, 20), timeout=30, what="the first messages")
    progress = next(
        e
        for e in reversed(stack.telegram.transcript(stack.tenants[0].token, ADMIN))
        if "📣 Рассылка #" in (e.text or "")
    )
    paused = await admin.tap(progress, "Пауза", expect="на паузе")
    assert any("Продолжить" in label for label, _ in buttons(paused))
    await asyncio.sleep(0.3)  # a message in flight when the pause came may still land
    frozen = await _sent(db, broadcast)
    # Nothing is sent while paused: wait well past the sender's tick and one batch, then look again.
    await asyncio.sleep(3)
    assert await _sent(db, broadcast) == frozen < len(users)
    resumed = await admin.tap(paused, "Продолжить", expect="идёт")
    await wait_until(lambda: _sent_at_least(db, broadcast, frozen + 20), timeout=30, what="sending again")
    await admin.tap(resumed, "Отменить рассылку", expect="отменена")
    await asyncio.sleep(0.3)
    stopped = await _sent(db, broadcast)
    await asyncio.sleep(3)
    assert await _sent(db, broadcast) == stopped < len(users), "nothing is sent after cancelling"
    assert await _status(db, broadcast) == "cancelled"
    # (The admin is a recipient too, and also got the preview: counted apart.)
    delivered = sum(_copies(stack, u, "PAUSE-TEST") for u in users)
    recorded = await db.fetchval(
        "SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = $1 AND status = 'sent' "
        "AND user_id = ANY($2::bigint[])",
        broadcast,
        users,
    )
    assert delivered == recorded and all(_copies(stack, u, "PAUSE-TEST") <= 1 for u in users)
    await db.execute(
        "UPDATE bot_users SET blocked_at = now() WHERE user_id = ANY($1::bigint[])", users
    )  # not in the next


async def _sent_at_least(db: asyncpg.Pool, broadcast: int, count: int) -> bool:
    return await _sent(db, broadcast) >= count


def _busiest_window(stack: Stack, token: str) -> list[tuple[str, int]]:
    """What the bot sent in its busiest second: broadcast messages and others, for a failure message."""
    calls = sorted(
        (c for c in stack.telegram.calls(token) if c.method in ("sendMessage", "editMessageText")), key=lambda c: c.at
    )
    best: list[str] = []
    for i, first in enumerate(calls):
        window = [
            "broadcast" if MARK in str(c.params.get("text")) else c.method for c in calls[i:] if c.at - first.at < 1.0
        ]
        best = max(best, window, key=len)
    return sorted((kind, best.count(kind)) for kind in set(best))


def _max_per_second(stamps: list[float]) -> int:
    stamps.sort()
    best, start = 0, 0
    for end, at in enumerate(stamps):
        while at - stamps[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _reply_time(user: ScriptedUser) -> float:
    began = time.monotonic()
    await user.say("/start", expect="Выберите, что создать", timeout=10)
    return time.monotonic() - began


async def test_two_thousand_users_once_each_through_a_sigkill_with_replies_in_time(
    stack: Stack, supervisors: list[SupervisorProcess], db: asyncpg.Pool
) -> None:
    token = stack.tenants[0].token
    tenant_id = await _tenant_id(db)
    users = await _seed(stack, db, AUDIENCE)
    blocked = users[::50][:BLOCKED]
    for user in blocked:
        await stack.telegram.block_bot(token, user)
    interactive = [ScriptedUser(stack.telegram, token, next(_ids)) for _ in range(10)]
    for user in interactive:
        await user.say("/start", expect="Выберите, что создать", timeout=30)
    await db.execute(  # they chat with the bot during the broadcast; they are not its audience
        "UPDATE bot_users SET blocked_at = now() WHERE tenant_id = $1 AND user_id = ANY($2::bigint[])",
        tenant_id,
        [u.user_id for u in interactive],
    )
    started = time.monotonic()
    broadcast = await _start_broadcast(stack, db, f"{MARK}: <b>everything</b> half price")
    total = int(await db.fetchval("SELECT total FROM broadcasts WHERE id = $1", broadcast))
    assert total == AUDIENCE + 1  # the admin is a user of the shop too

    # Interactive users while it runs: one /start every 0.3 s, spread over ten users (under their rate limit).
    latencies: list[float] = []
    turn = 0
    while await _sent(db, broadcast) < 700:
        latencies.append(await _reply_time(interactive[turn % 10]))
        turn += 1
        await asyncio.sleep(0.3)
    assert len(latencies) >= 15, "the broadcast was too fast to measure anything"

    # SIGKILL the process sending it, mid-way.
    holder = str(await db.fetchval("SELECT instance FROM lock_holders WHERE tenant_id = $1", tenant_id))
    victim = next(p for p in supervisors if holder.startswith(p.name + "."))
    survivor = next(p for p in supervisors if p is not victim)
    sent_before = await _sent(db, broadcast)
    victim.proc.send_signal(signal.SIGKILL)
    await victim.proc.wait()
    await wait_until(lambda: _is_holder(db, tenant_id, survivor.name), timeout=30, what="the survivor holds it")
    await wait_until(lambda: _sent_at_least(db, broadcast, sent_before + 50), timeout=60, what="sending resumed")
    after: list[float] = []
    for i in range(10):
        after.append(await _reply_time(interactive[i]))
        await asyncio.sleep(0.3)

    async def done() -> bool:
        return await _status(db, broadcast) == "done"

    await wait_until(done, timeout=240, interval=0.5, what="the broadcast done")
    elapsed = time.monotonic() - started

    # Exactly once: no duplicates; nothing missing but the one message that may have been in flight.
    rows = dict(await db.fetch("SELECT user_id, status FROM broadcast_recipients WHERE broadcast_id = $1", broadcast))
    copies = {user: _copies(stack, user, MARK) for user in users}
    assert max(copies.values()) == 1, [u for u, n in copies.items() if n > 1]
    unknown = [u for u in users if rows[u] == "unknown"]
    assert len(unknown) <= 1, unknown
    missing = [u for u in users if copies[u] == 0 and rows[u] not in ("blocked", "unknown")]
    assert missing == [], missing
    assert all(rows[u] == "sent" for u in users if copies[u] == 1 and u not in unknown)
    assert sorted(u for u in users if rows[u] == "blocked") == sorted(blocked)
    marked = await db.fetchval(
        "SELECT count(*) FROM bot_users WHERE tenant_id = $1 AND user_id = ANY($2::bigint[]) AND blocked_at IS NOT NULL",
        tenant_id,
        blocked,
    )
    assert marked == BLOCKED
    sent = sum(copies.values())
    assert sent == AUDIENCE - BLOCKED - len(unknown) + sum(copies[u] for u in unknown)

    # Replies within a second, before and after the failover.
    assert max(latencies) < 1.0 and max(after) < 1.0, (latencies, after)
    # Under Telegram's limit: the bot's sends (broadcast and replies) in any one second.
    stamps = [c.at for c in stack.telegram.calls(token) if c.method in ("sendMessage", "editMessageText")]
    busiest = _max_per_second(stamps)
    assert busiest <= 30, _busiest_window(stack, token)
    # The admin's progress message was kept current, and the final report came.
    admin_said = [e.text or "" for e in stack.telegram.transcript(token, ADMIN) if e.from_bot]
    report = next(t for t in reversed(admin_said) if t.startswith(f"✅ Рассылка #{broadcast} завершена"))
    assert f"заблокировали бота {BLOCKED}" in report and f"доставлено {AUDIENCE - BLOCKED - len(unknown) + 1}" in report
    broadcast_sends = [c.at for c in stack.telegram.calls(token, "sendMessage") if MARK in str(c.params.get("text"))]
    rate = len(broadcast_sends) / (max(broadcast_sends) - min(broadcast_sends))
    print(
        f"\nbroadcast: {len(broadcast_sends)} messages in {elapsed:.1f} s end to end, {rate:.1f} msg/s while sending; "
        f"replies during it: p50 {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
        f"({len(latencies)} samples); after the failover max {max(after) * 1000:.0f} ms; unknown {len(unknown)}; "
        f"busiest second {busiest} calls"
    )
    # The operator sees it on the status page.
    async with httpx.AsyncClient(timeout=5) as client:
        listed = (await client.get(f"{survivor.base_url}/status/broadcasts.json")).json()["broadcasts"]
    row = next(b for b in listed if b["id"] == broadcast)
    assert (row["tenant"], row["status"], row["blocked"], row["left"]) == (SLUG, "done", BLOCKED, 0)
    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.get(f"{survivor.base_url}/metrics")).text
    counted = {
        line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("broadcast_messages_total{") and f'tenant="{SLUG}"' in line
    }
    assert counted.get("sent", 0) > 0, counted  # what the survivor sent after the failover


async def _is_holder(db: asyncpg.Pool, tenant_id: int, name: str) -> bool:
    holder = await db.fetchval("SELECT instance FROM lock_holders WHERE tenant_id = $1", tenant_id)
    return bool(holder) and str(holder).startswith(name + ".")
