"""Input the product must survive, with real supervisor processes.

- An update Postgres refuses (a NUL in a text for jsonb, an id past 64 bits) is not a database outage:
  it is answered 200 and skipped, and the chat (webhook) or the bot (polling) goes on being served.
- /health and /ready follow the database within seconds each way.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess
from tests.helpers import wait_until
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(pg_server_dsn: str) -> AsyncIterator[Stack]:
    from tests.conftest import _create_migrated, _drop

    name = f"tgsup_input_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-input-")))
    await s.start()
    yield s
    await s.stop()
    await _drop(pg_server_dsn, name)


async def _webhook_secret(stack: Stack, slug: str) -> str:
    from shared.crypto import KeyRing
    from supervisor.tenants import TenantStore

    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    try:
        return (await TenantStore(pool, KeyRing([stack.master_key])).get(slug)).webhook_secret
    finally:
        await pool.close()


def _update(update_id: int, chat_id: int, text: str) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "U"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "U"},
            "text": text,
        },
    }


async def test_a_poison_update_is_skipped_and_the_chat_goes_on(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("poison", 1)
    sup = await stack.start_supervisor("poison-1")
    await sup.wait_active(1)
    user = ScriptedUser(stack.telegram, tenant.token, 7900001)
    await user.say("/start", expect="Выберите")
    url = f"{sup.base_url}/webhook/{tenant.slug}"
    headers = {"X-Telegram-Bot-Api-Secret-Token": await _webhook_secret(stack, tenant.slug)}
    async with httpx.AsyncClient(timeout=10) as client:
        nul = await client.post(url, json=_update(990001, user.user_id, "a\u0000b"), headers=headers)
        huge = await client.post(url, json=_update(990002, 2**63 + 5, "hi"), headers=headers)
    assert nul.status_code == 200, nul.text
    assert huge.status_code == 400, huge.text  # no Telegram id is that large: refused, nothing stored
    # The same chat is answered right after: not "temporarily unavailable", not blocked.
    await user.say("/start", expect="Выберите", timeout=10)
    assert "temporarily unavailable" not in sup.log() and "Traceback" not in sup.log()
    health = await sup.health()
    assert health is not None and health.get("db") == "ok"


async def test_a_poison_update_never_blocks_polling(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("poisonp", 1)
    sup = await stack.start_supervisor("poisonp-1", mode="polling")
    await sup.wait_active(1)
    user = ScriptedUser(stack.telegram, tenant.token, 7900002)
    await user.say("/start", expect="Выберите")
    await stack.telegram.send_text(tenant.token, user.user_id, "a\u0000b")
    # The offset moves past it: the next message is answered.
    await user.say("/start", expect="Выберите", timeout=15)
    assert "update refused by the database; skipped" in sup.log()


async def _ready(sup: SupervisorProcess) -> bool | None:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(f"{sup.base_url}/ready")
    except httpx.HTTPError:
        return None
    return response.status_code == 200


async def test_health_and_ready_follow_the_database_within_seconds(stack: Stack) -> None:
    await stack.add_tenants_direct("dbgone", 1)
    proxy = TcpProxy.for_dsn(stack.database_url)
    await proxy.start()
    sup = await stack.start_supervisor("dbgone-1", DATABASE_URL=proxy.dsn(stack.database_url))
    await sup.wait_active(1)
    await wait_until(lambda: _ready(sup), timeout=10, what="ready")
    cut_at = time.monotonic()
    await proxy.cut()

    async def not_ready() -> bool:
        return await _ready(sup) is False

    await wait_until(not_ready, timeout=8, what="/ready 503 after the database went away")
    down_after = time.monotonic() - cut_at
    health = await sup.health()
    assert health is not None and health.get("db") == "down" and health.get("degraded") is True, health
    restored_at = time.monotonic()
    await proxy.restore()
    await wait_until(lambda: _ready(sup), timeout=20, what="/ready 200 after the database came back")
    up_after = time.monotonic() - restored_at
    assert down_after <= 6, down_after  # the 4 s trust window, plus a beat
    assert up_after <= 16, up_after  # one reconnect attempt of the backoff
