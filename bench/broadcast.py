"""Figure: a broadcast to 2,000 users of one tenant (200 with --quick), sent through one supervisor to
the fake Telegram, while ten of the bot's users keep talking to it.

Reported: the broadcast's throughput (messages per second the fake received, first to last), the p99
time from an interactive user's /start to the bot's menu while the broadcast runs (target: under 1 s,
issue 17), and the busiest second of the bot's sends (Telegram allows about 30 a second per bot).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench.common import (
    MISS,
    PASS,
    Bench,
    BenchStack,
    FigureResult,
    Row,
    at_most,
    launch,
    median,
    percentile,
    rounded,
    stop,
    until_active,
)
from sandbox.stack import ScriptedUser

SLUG = "bcast"
ADMIN = 974_001
MARK = "BENCH-CAST"
MENU = "Выберите, что создать"
INTERACTIVE = 10
TELEGRAM_PER_SECOND = 30


def _plan(quick: bool) -> dict[str, Any]:
    return {"audience": 200 if quick else 2000, "done_timeout_s": 120.0 if quick else 300.0}


async def figure_broadcast(bench: Bench) -> FigureResult:
    plan = _plan(bench.quick)
    details: dict[str, Any] = {"plan": plan}
    async with bench.stack("broadcast", history_limit=None) as stack:
        await stack.add_tenant(SLUG, admins=(ADMIN,))
        launched = await launch(stack, f"b{bench.run_id}-cast")
        await until_active(launched, 1)
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
        try:
            token = stack.tenants[0].token
            tenant_id = int(await pool.fetchval("SELECT id FROM tenants WHERE slug = $1", SLUG))
            await _seed(stack, pool, tenant_id, plan["audience"])
            talkers = [ScriptedUser(stack.telegram, token, 9_900_000 + i) for i in range(INTERACTIVE)]
            for user in talkers:
                await user.say("/start", expect=MENU, timeout=30)
            await pool.execute(  # they talk to the bot during the broadcast; they are not its audience
                "UPDATE bot_users SET blocked_at = now() WHERE tenant_id = $1 AND user_id = ANY($2::bigint[])",
                tenant_id,
                [u.user_id for u in talkers],
            )
            bench.log(f"  broadcast: {plan['audience']} recipients, {INTERACTIVE} users talking meanwhile")
            broadcast = await _start(stack, pool)
            replies = await _talk_until_done(pool, broadcast, talkers, plan["done_timeout_s"])
            audience = {str(user) for user in _audience(plan["audience"])}
            sends = sorted(  # what the seeded users received (the admin gets a preview and a copy too)
                c.at
                for c in stack.telegram.calls(token, "sendMessage")
                if MARK in str(c.params.get("text")) and str(c.params.get("chat_id")) in audience
            )
            all_sends = sorted(
                c.at for c in stack.telegram.calls(token) if c.method in ("sendMessage", "editMessageText")
            )
            details.update(_summary(sends, all_sends, replies))
        finally:
            await pool.close()
        details["shutdown_s"] = round(await stop(launched.sup), 2)
    return FigureResult(rows=_rows(details, plan), details=details)


def _audience(count: int) -> range:
    return range(9_000_000, 9_000_000 + count)


async def _seed(stack: BenchStack, pool: asyncpg.Pool, tenant_id: int, count: int) -> None:
    """Users who started the bot before: recorded by the bot, and their chats known to Telegram."""
    users = _audience(count)
    await pool.executemany(
        "INSERT INTO bot_users (tenant_id, user_id, language, first_name, referral_code) VALUES ($1, $2, 'ru', 'U', $3)",
        [(tenant_id, user, f"r{user}") for user in users],
    )
    for user in users:
        await stack.telegram.open_chat(stack.tenants[0].token, user)


async def _start(stack: BenchStack, pool: asyncpg.Pool) -> int:
    admin = ScriptedUser(stack.telegram, stack.tenants[0].token, ADMIN)
    home = await admin.say("/admin", expect="Админ-панель", timeout=30)
    await admin.tap(home, "Рассылка", expect="Отправьте сообщение для рассылки")
    ask = await admin.say(f"{MARK}: <b>everything</b> half price", expect="Добавить кнопку-ссылку")
    audiences = await admin.tap(ask, "Без кнопки", expect="Кому отправить?")
    confirm = await admin.tap(audiences, "Всем", expect="получателям?")
    await admin.tap(confirm, "Отправить", expect="📣 Рассылка #")
    return int(await pool.fetchval("SELECT max(id) FROM broadcasts"))


async def _talk_until_done(
    pool: asyncpg.Pool, broadcast: int, talkers: list[ScriptedUser], timeout: float
) -> list[float]:
    """One /start every 0.3 s, spread over the talkers (under their rate limit), until the broadcast is
    done; the seconds each took to get the menu back."""
    replies: list[float] = []
    deadline = time.monotonic() + timeout
    turn = 0
    while time.monotonic() < deadline:
        status = await pool.fetchval("SELECT status FROM broadcasts WHERE id = $1", broadcast)
        if status == "done":
            return replies
        began = time.monotonic()
        await talkers[turn % len(talkers)].say("/start", expect=MENU, timeout=10)
        replies.append(time.monotonic() - began)
        turn += 1
        await asyncio.sleep(0.3)
    raise TimeoutError(f"broadcast {broadcast} not done within {timeout:.0f} s")


def _summary(sends: list[float], all_sends: list[float], replies: list[float]) -> dict[str, Any]:
    span = sends[-1] - sends[0] if len(sends) > 1 else None
    busiest = 0
    start = 0
    for end, stamp in enumerate(all_sends):
        while stamp - all_sends[start] >= 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return {
        "broadcast_messages": len(sends),
        "broadcast_seconds": rounded(span, 2),
        "messages_per_s": rounded(len(sends) / span, 1) if span else None,
        "reply_samples": len(replies),
        "reply_p50_ms": rounded(1000 * (median(replies) or 0), 1),
        "reply_p99_ms": rounded(1000 * (percentile(replies, 99) or 0), 1),
        "reply_max_ms": rounded(1000 * max(replies, default=0), 1),
        "busiest_second_calls": busiest,
    }


def _rows(details: dict[str, Any], plan: dict[str, Any]) -> list[Row]:
    delivered = details["broadcast_messages"]
    return [
        Row(
            "broadcast",
            "messages_per_s",
            f"broadcast throughput ({plan['audience']} recipients)",
            details["messages_per_s"],
            "msg/s",
            f"≤ {TELEGRAM_PER_SECOND} (Telegram's per-bot limit)",
            at_most(details["messages_per_s"], TELEGRAM_PER_SECOND),
            f"{delivered} delivered in {details['broadcast_seconds']} s; busiest second of the bot "
            f"{details['busiest_second_calls']} calls (broadcast and replies)",
        ),
        Row(
            "broadcast",
            "reply_p99_ms",
            "interactive reply during a broadcast, p99",
            details["reply_p99_ms"],
            "ms",
            "< 1000 ms",
            at_most(details["reply_p99_ms"], 999.9),
            f"p50 {details['reply_p50_ms']} ms, max {details['reply_max_ms']} ms over {details['reply_samples']} "
            "/start → menu round trips",
        ),
        Row(
            "broadcast",
            "recipients",
            "broadcast messages received by the fake",
            delivered,
            "",
            f"{plan['audience']}",
            PASS if delivered == plan["audience"] else MISS,
        ),
    ]
