"""A real supervisor after SIGTERM: what it has in hand finishes and is answered; what arrives from then on
is refused with 503 (for the other replica, or Telegram's redelivery), never 404, and never taken in."""

from __future__ import annotations

import asyncio
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from bench.loadgen import MENU_NEEDLE, start_update
from sandbox.stack import ScriptedUser, Stack
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

LATENCY_S = 2.0  # every Telegram call of the bot, once it is active: the first update is still in hand at SIGTERM


@pytest.fixture
async def stack(pg_server_dsn: str) -> AsyncIterator[Stack]:
    import secrets

    from tests.conftest import _create_migrated, _drop

    name = f"tgsup_stop_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-stop-")))
    await s.start()
    yield s
    await s.stop()
    await _drop(pg_server_dsn, name)


async def test_after_sigterm_the_update_in_hand_is_answered_and_new_ones_get_503(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("stop", 1)
    sup = await stack.start_supervisor("stop-1")
    await sup.wait_active(1)
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    try:
        from shared.crypto import KeyRing
        from supervisor.tenants import TenantStore

        secret = (await TenantStore(pool, KeyRing([stack.master_key])).get(tenant.slug)).webhook_secret
        for user_id in (7100001, 7100002):  # the users must exist in the fake for the bot to reply
            await stack.telegram.send_text(tenant.token, user_id, "hi")
            await ScriptedUser(stack.telegram, tenant.token, user_id).expect("Не понял", after=0)
        await stack.telegram.inject_faults(tenant.token, latency=LATENCY_S)

        url = f"{sup.base_url}/webhook/{tenant.slug}"
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret, "Content-Type": "application/json"}
        async with httpx.AsyncClient(timeout=30) as client:
            in_hand = asyncio.create_task(client.post(url, content=start_update(555001, 7100001), headers=headers))

            async def claimed() -> bool:
                row = await pool.fetchval("SELECT status FROM updates_inbox WHERE update_id = 555001")
                return row == "processing"

            await wait_until(claimed, timeout=10, what="the first update claimed and in hand")
            sup.proc.send_signal(signal.SIGTERM)

            async def stopping() -> bool:
                health = await sup.health()
                return bool(health) and health.get("phase") == "stopping"

            await wait_until(stopping, timeout=5, what="/health says stopping")
            late = await client.post(url, content=start_update(555002, 7100002), headers=headers)
            ready = await client.get(f"{sup.base_url}/ready")
            assert (late.status_code, late.json()) == (503, {"ok": False, "error": "stopping"})
            assert ready.status_code == 503
            assert (await in_hand).status_code == 200  # answered, not cut off by the stop
        assert await asyncio.wait_for(sup.proc.wait(), timeout=30) == 0

        menus = {
            int(c.params["chat_id"])
            for c in stack.telegram.calls(tenant.token, "sendMessage")
            if MENU_NEEDLE in str(c.params.get("text"))
        }
        assert menus == {7100001}  # the one in hand got its menu; the refused one was not taken in
        refused = await pool.fetchval("SELECT count(*) FROM updates_inbox WHERE update_id = 555002")
        assert refused == 0
    finally:
        await pool.close()
