"""Ownership under change, with real supervisor processes.

Invariant: every enabled tenant with a valid token is served by exactly one live process able to serve
it, within seconds of any change: token rotation, mode change, removal of another tenant, a replica
that cannot reach Telegram. "Served" is checked the way a user sees it: /start gets its menu.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

SERVED_WITHIN = 10.0


@pytest.fixture
async def stack(pg_server_dsn: str) -> AsyncIterator[Stack]:
    from tests.conftest import _create_migrated, _drop

    name = f"tgsup_own_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-own-")))
    await s.start()
    yield s
    await s.stop()
    await _drop(pg_server_dsn, name)


async def answers(stack: Stack, token: str, user_id: int, *, within: float = SERVED_WITHIN) -> float:
    """Seconds until /start gets the main menu from this bot (fails after `within`)."""
    started = time.monotonic()
    await ScriptedUser(stack.telegram, token, user_id).say("/start", expect="Выберите", timeout=within)
    return time.monotonic() - started


def _by_state(health: dict[str, object] | None, state: str) -> int:
    tenants = health.get("tenants") if health else None
    by_state = tenants.get("by_state", {}) if isinstance(tenants, dict) else {}
    return int(by_state.get(state, 0)) if isinstance(by_state, dict) else 0


async def _total_active(*sups: SupervisorProcess) -> int:
    return sum([_by_state(await s.health(), "active") for s in sups])


async def test_token_rotation_four_times_keeps_the_bot_served(stack: Stack) -> None:
    tenants = await stack.add_tenants_direct("rot", 3)
    a = await stack.start_supervisor("rot-a")
    b = await stack.start_supervisor("rot-b")
    await wait_until(lambda: _total_active_is(a, b, n=3), timeout=30, what="all three active")
    tenant = tenants[1]
    token = tenant.token
    for round_ in range(4):
        new = f"{token.split(':')[0]}:{secrets.token_urlsafe(26).replace('-', 'a')}"
        await stack.telegram.rotate_token(token, new)  # BotFather's /revoke
        await stack.cli("tenants", "update", tenant.slug, "--bot-token", env=stack.env(BOT_TOKEN=new))
        token = new
        await answers(stack, token, 7100000 + round_)
    # The other tenants never stopped answering.
    for i, other in enumerate(t for t in tenants if t is not tenant):
        await answers(stack, other.token, 7100100 + i)
    await wait_until(lambda: _total_active_is(a, b, n=3), timeout=SERVED_WITHIN, what="three active after rotations")


async def test_mode_round_trip_twice_keeps_the_bot_served_and_polled_once(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("mode", 1)
    a = await stack.start_supervisor("mode-a")
    b = await stack.start_supervisor("mode-b")
    await wait_until(lambda: _total_active_is(a, b, n=1), timeout=30, what="active")
    for round_ in range(2):
        await stack.cli("tenants", "update", tenant.slug, "--mode", "polling")
        await wait_until(
            lambda: stack.telegram.webhook_info(tenant.token).url == "",
            timeout=SERVED_WITHIN,
            what="the webhook removed for polling",
        )
        await answers(stack, tenant.token, 7200000 + 2 * round_)
        await stack.cli("tenants", "update", tenant.slug, "--mode", "webhook")
        await wait_until(
            lambda: stack.telegram.webhook_info(tenant.token).url != "",
            timeout=SERVED_WITHIN,
            what="the webhook set again",
        )
        await answers(stack, tenant.token, 7200001 + 2 * round_)
    await wait_until(lambda: _total_active_is(a, b, n=1), timeout=SERVED_WITHIN, what="exactly one active")


async def test_a_replica_that_cannot_reach_telegram_leaves_every_tenant_to_the_healthy_one(stack: Stack) -> None:
    tenants = await stack.add_tenants_direct("sick", 10)
    healthy = await stack.start_supervisor("sick-healthy")
    await healthy.wait_active(10)
    # The second replica's Telegram is a closed port: every runtime of it fails and backs off.
    sick = await stack.start_supervisor("sick-sick", TELEGRAM_API_BASE=f"http://127.0.0.1:{_closed_port()}")
    await sick.wait_for(lambda h: h.get("identity") is not None, timeout=30, what="the sick replica booted")
    # Past several of its restarts and many lock beats: the healthy one keeps (or takes back) all ten.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        await wait_until(
            lambda: _active_is(healthy, 10), timeout=SERVED_WITHIN, what="the healthy replica serving all ten"
        )
    for i, tenant in enumerate(tenants):
        await answers(stack, tenant.token, 7300000 + i)
    assert _by_state(await sick.health(), "active") == 0


async def test_removing_a_tenant_with_three_replicas_leaves_the_others_served(stack: Stack) -> None:
    tenants = await stack.add_tenants_direct("rm", 9)
    sups = [await stack.start_supervisor(f"rm-{i}") for i in range(3)]
    await wait_until(lambda: _total_active_is(*sups, n=9), timeout=30, what="nine active over three replicas")
    for removed in tenants[:3]:
        await stack.cli("tenants", "remove", removed.slug)
    await wait_until(lambda: _total_active_is(*sups, n=6), timeout=SERVED_WITHIN, what="six active")
    for i, tenant in enumerate(tenants[3:]):
        await answers(stack, tenant.token, 7400000 + i)
    for sup in sups:
        assert "lock connection lost" not in sup.log() and "locker failed" not in sup.log()


async def test_a_shop_removed_and_added_again_with_the_same_bot_is_answered(stack: Stack) -> None:
    """A re-added shop has a new webhook secret; Telegram cannot show a webhook's secret, so the owner
    must not take an unchanged URL for a webhook already set (chaos seed 22: every update bounced)."""
    shop = await stack.add_tenant("readd")
    sup = await stack.start_supervisor("readd-1")
    await sup.wait_active(1)
    await answers(stack, shop.token, 7_450_001)
    await stack.cli("tenants", "remove", shop.slug)
    await stack.cli(
        "tenants", "add", shop.slug, "--name", "Readd", env=stack.env(BOT_TOKEN=shop.token, KIE_API_KEY=shop.kie_key)
    )
    await answers(stack, shop.token, 7_450_002, within=SERVED_WITHIN + 5)


async def test_a_terminated_lock_session_hands_over_without_a_gap(stack: Stack) -> None:
    tenants = await stack.add_tenants_direct("term", 4)
    a = await stack.start_supervisor("term-a")
    await a.wait_active(4)
    b = await stack.start_supervisor("term-b")
    await wait_until(lambda: _total_active_is(a, b, n=4), timeout=30, what="four active")
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'tgsup-lock:term-a%'"
        )
    finally:
        await conn.close()
    for i, tenant in enumerate(tenants):
        await answers(stack, tenant.token, 7500000 + i)
    await wait_until(lambda: _total_active_is(a, b, n=4), timeout=SERVED_WITHIN, what="four active again")


async def test_a_replica_whose_telegram_path_goes_dark_hands_its_quiet_bots_over_within_the_bound(stack: Stack) -> None:
    """A blackholed path (packets dropped, nothing refused) fails no call before its timeout, and bots
    nobody writes to make no calls: the replica must find out by asking (chaos seed 404)."""
    from tests.tcp_proxy import TcpProxy

    tenants = await stack.add_tenants_direct("dark", 4)
    api = stack.telegram.base_url
    assert api is not None
    link = TcpProxy("127.0.0.1", int(api.rsplit(":", 1)[1].split("/")[0]))
    await link.start()
    try:
        dark = await stack.start_supervisor("dark-a", TELEGRAM_API_BASE=f"http://127.0.0.1:{link.port}")
        await dark.wait_active(4)
        healthy = await stack.start_supervisor("dark-b")
        await wait_until(lambda: _total_active_is(dark, healthy, n=4), timeout=30, what="four active")
        assert _by_state(await dark.health(), "active") > 0, "the dark replica holds tenants when its path goes dark"
        link.blackhole()
        await wait_until(
            lambda: _served_only_by(healthy, dark, n=4), timeout=SERVED_WITHIN, what="every tenant on the healthy one"
        )
        for i, tenant in enumerate(tenants):
            await answers(stack, tenant.token, 7620000 + i)
        assert "Telegram unreachable from this process" in dark.log()
        # The path comes back: the replica learns it by asking, and takes its share again.
        await link.restore()
        await wait_until(lambda: _active_is(dark, 2), timeout=30, what="the replica back to its share")
        await wait_until(lambda: _total_active_is(dark, healthy, n=4), timeout=SERVED_WITHIN, what="four active")
        for i, tenant in enumerate(tenants):
            await answers(stack, tenant.token, 7620100 + i)
    finally:
        await link.cut()


async def _served_only_by(serving: SupervisorProcess, idle: SupervisorProcess, *, n: int) -> bool:
    return await _active_is(serving, n) and await _active_is(idle, 0)


async def _total_active_is(*sups: SupervisorProcess, n: int) -> bool:
    return await _total_active(*sups) == n


async def _active_is(sup: SupervisorProcess, n: int) -> bool:
    return _by_state(await sup.health(), "active") == n


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_message_sent_while_the_token_is_revoked_is_answered_after_the_rotation(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("rev", 1)
    sup = await stack.start_supervisor("rev-a")
    await sup.wait_active(1)
    token = tenant.token
    await answers(stack, token, 7600000)  # the chat exists
    new = f"{token.split(':')[0]}:{secrets.token_urlsafe(26).replace('-', 'a')}"
    await stack.telegram.rotate_token(token, new)  # revoked at BotFather: the reply cannot be sent
    user = ScriptedUser(stack.telegram, new, 7600000)
    sent = await stack.telegram.send_text(new, user.user_id, "/start")
    await wait_until(lambda: "update handed back" in sup.log(), timeout=10, what="the update handed back")
    await stack.cli("tenants", "update", tenant.slug, "--bot-token", env=stack.env(BOT_TOKEN=new))
    # The operator rotates the token: the handed-back /start is answered, not lost.
    await user.expect("Выберите", after=sent.message_id, timeout=SERVED_WITHIN + 20)


async def test_a_replica_cut_off_from_telegram_hands_its_messages_to_the_next_owner(stack: Stack) -> None:
    from tests.tcp_proxy import TcpProxy

    tenants = await stack.add_tenants_direct("cut", 2)
    api = stack.telegram.base_url
    assert api is not None
    link = TcpProxy("127.0.0.1", int(api.rsplit(":", 1)[1].split("/")[0]))
    await link.start()
    cut = await stack.start_supervisor("cut-a", TELEGRAM_API_BASE=f"http://127.0.0.1:{link.port}")
    await cut.wait_active(2)
    healthy = await stack.start_supervisor("cut-b")
    for i, tenant in enumerate(tenants):
        await answers(stack, tenant.token, 7610000 + i)
    await link.cut()  # cut-a can still receive webhooks, but cannot reply
    for i, tenant in enumerate(tenants):
        await answers(stack, tenant.token, 7610100 + i, within=SERVED_WITHIN + 20)
    await wait_until(lambda: _active_is(healthy, 2), timeout=SERVED_WITHIN, what="the healthy replica serving both")
