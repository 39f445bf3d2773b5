"""The real supervisor process: many tenants, two replicas, crashes, signals, hot reload, webhooks."""

from __future__ import annotations

import asyncio
import json
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from sandbox.stack import ScriptedUser, Stack, SupervisorProcess
from tests.helpers import assert_no_secrets, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(pg_server_dsn: str) -> AsyncIterator[Stack]:
    """A fresh database and fakes per test: supervisors load every tenant they find."""
    import secrets

    from tests.conftest import _create_migrated, _drop

    name = f"tgsup_proc_{secrets.token_hex(4)}"
    dsn = await _create_migrated(pg_server_dsn, name)
    s = Stack(dsn, Path(tempfile.mkdtemp(prefix="tgsup-proc-")))
    await s.start()
    yield s
    await s.stop()
    await _drop(pg_server_dsn, name)


async def _connections(dsn: str, instance: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE $1",
                f"%:{instance}.%",  # <prefix>:<instance>.<per-start suffix>
            )
        )
    finally:
        await conn.close()


def _active(health: dict[str, object] | None) -> int:
    if not health:
        return 0
    tenants = health.get("tenants")
    by_state = tenants.get("by_state", {}) if isinstance(tenants, dict) else {}
    return int(by_state.get("active", 0)) if isinstance(by_state, dict) else 0


async def test_fifty_tenants_one_process_constant_connections(stack: Stack) -> None:
    await stack.add_tenants_direct("one", 1)
    sup = await stack.start_supervisor("conn-1", DB_POOL_SIZE="5")
    await sup.wait_active(1)
    with_one = await _connections(stack.database_url, "conn-1")
    await stack.add_tenants_direct("many", 49)
    await sup.wait_active(50, timeout=30)
    with_fifty = await _connections(stack.database_url, "conn-1")
    assert with_one <= 5 + 2 and with_fifty <= 5 + 2, (with_one, with_fifty)
    # Every tenant answers: one user per tenant for a handful of tenants.
    for tenant in stack.tenants[::10]:
        user = ScriptedUser(stack.telegram, tenant.token, 7000001)
        await user.say("/start", expect="Выберите")
    assert await sup.stop() == 0


async def test_two_replicas_share_tenants_and_fail_over(stack: Stack) -> None:
    tenants = await stack.add_tenants_direct("pair", 20)
    a = await stack.start_supervisor("rep-a")
    await a.wait_active(20)
    b = await stack.start_supervisor("rep-b")
    samples: list[tuple[int, int]] = []

    async def balanced() -> bool:
        ha, hb = await a.health(), await b.health()
        samples.append((_active(ha), _active(hb)))
        return _active(ha) + _active(hb) == 20 and _active(hb) >= 5

    await wait_until(balanced, timeout=20, what="tenants spread over both replicas")
    assert all(x + y <= 20 for x, y in samples), samples

    # SIGKILL the one holding most: the other takes everything within 10 s.
    started = time.monotonic()
    a.proc.kill()
    await a.proc.wait()
    await b.wait_active(20, timeout=10)
    kill_takeover = time.monotonic() - started
    assert kill_takeover <= 10

    c = await stack.start_supervisor("rep-c")
    await wait_until(lambda: _both(b, c), timeout=20, what="rebalance onto the new replica")
    started = time.monotonic()
    assert await b.stop(signal.SIGTERM) == 0
    await c.wait_active(20, timeout=5)
    assert time.monotonic() - started <= 5
    # Still exactly one webhook per bot, and users are served by the survivor.
    user = ScriptedUser(stack.telegram, tenants[3].token, 7000002)
    await user.say("/start", expect="Выберите")
    assert "shutdown complete" in b.log()


async def _both(b: SupervisorProcess, c: SupervisorProcess) -> bool:
    hb, hc = await b.health(), await c.health()
    return _active(hb) + _active(hc) == 20 and _active(hc) >= 5


async def test_revoked_token_and_crashing_handler_stay_isolated(stack: Stack) -> None:
    good, revoked, broken = await stack.add_tenants_direct("iso", 3)
    await stack.telegram.inject_faults(revoked.token, revoke=True)
    sup = await stack.start_supervisor("iso-1")
    await sup.wait_for(
        lambda h: _active(h) == 2 and h["tenants"]["by_state"].get("token_invalid") == 1,  # type: ignore[index]
        timeout=20,
        what="two active, one token_invalid",
    )
    conn = await asyncpg.connect(stack.database_url)
    try:
        assert await conn.fetchval("SELECT status FROM tenants WHERE slug = $1", revoked.slug) == "token_invalid"
        # Corrupt one user's conversation so every update of theirs makes the handler raise.
        broken_id = await conn.fetchval("SELECT id FROM tenants WHERE slug = $1", broken.slug)
        user_id = 7000003
        await conn.execute(
            "INSERT INTO fsm_states (tenant_id, chat_id, user_id, state, data) VALUES ($1, $2, $2, $3, $4)",
            broken_id,
            user_id,
            "Wizard:input",
            json.dumps({"model": "z-image", "step": "not-a-number"}),
        )
    finally:
        await conn.close()
    victim = ScriptedUser(stack.telegram, broken.token, user_id)
    for _ in range(3):
        await victim.say("hello", expect="Что-то пошло не так")
    other = ScriptedUser(stack.telegram, good.token, user_id)
    await other.say("/start", expect="Выберите")
    health = await sup.health()
    assert health is not None and _active(health) == 2
    assert "handler failed" in sup.log()
    assert_no_secrets(sup.log(), [t.token for t in stack.tenants] + [t.kie_key for t in stack.tenants])


async def test_cli_changes_reach_a_running_supervisor(stack: Stack) -> None:
    await stack.add_tenants_direct("hot", 1)
    sup = await stack.start_supervisor("hot-1")
    await sup.wait_active(1)
    started = time.monotonic()
    tenant = await stack.add_tenant("hot-added")
    await sup.wait_active(2, timeout=2 + 3)  # 2 s target plus the getMe/setWebhook of the new bot
    add_seconds = time.monotonic() - started
    await stack.cli("tenants", "disable", tenant.slug)
    await sup.wait_for(lambda h: _active(h) == 1, timeout=2, what="disabled tenant stopped")
    await stack.cli("tenants", "enable", tenant.slug)
    await sup.wait_active(2, timeout=5)
    restarts_before = stack.telegram.calls(tenant.token, "getMe")
    await stack.cli("tenants", "update", tenant.slug, "--markup", "3")
    # The change reached the process (NOTIFY, then a reload of the row)...
    await wait_until(
        lambda: any(
            "tenant reconfigured in place" in line and f'"tenant": "{tenant.slug}"' in line
            for line in sup.log().splitlines()
        ),
        timeout=5,
        what="the markup change applied",
    )
    user = ScriptedUser(stack.telegram, tenant.token, 7000004)
    await user.say("/start", expect="Выберите")
    # ...and did not restart the runtime: no new getMe, and the tenant never left 'active'.
    assert len(stack.telegram.calls(tenant.token, "getMe")) == len(restarts_before)
    assert _active(await sup.health()) == 2
    assert add_seconds < 6


async def test_webhook_endpoint_rejects_bad_requests_and_dedupes(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("hook", 1)
    sup = await stack.start_supervisor("hook-1")
    await sup.wait_active(1)
    conn = await asyncpg.connect(stack.database_url)
    try:
        from shared.crypto import KeyRing
        from supervisor.tenants import TenantStore

        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        secret = (await TenantStore(pool, KeyRing([stack.master_key])).get(tenant.slug)).webhook_secret
        await pool.close()
    finally:
        await conn.close()
    url = f"{sup.base_url}/webhook/{tenant.slug}"
    update = {
        "update_id": 424242,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": 7000005, "type": "private", "first_name": "U"},
            "from": {"id": 7000005, "is_bot": False, "first_name": "U"},
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(url, json=update)).status_code == 401
        assert (
            await client.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
        ).status_code == 401
        assert (await client.post(f"{sup.base_url}/webhook/nobody", json=update, headers=headers)).status_code == 404
        assert (await client.post(url, content=b"x" * (1024 * 1024), headers=headers)).status_code == 413
        assert (await client.post(url, content=b"{not json", headers=headers)).status_code == 400
        assert (await client.post(url, json={"hello": 1}, headers=headers)).status_code == 400
        # The user must exist in the fake for the bot to reply; then deliver the same update twice.
        await stack.telegram.send_text(tenant.token, 7000005, "hi")
        await ScriptedUser(stack.telegram, tenant.token, 7000005).expect("Не понял", after=0)
        first = await client.post(url, json=update, headers=headers)
        second = await client.post(url, json=update, headers=headers)
    assert first.status_code == 200 and second.status_code == 200
    menus = [
        c
        for c in stack.telegram.calls(tenant.token, "sendMessage")
        if "Выберите, что создать" in str(c.params.get("text"))
    ]
    assert len(menus) == 1, "the redelivered update was handled twice"
    assert secret not in sup.log()


async def test_polling_mode_serves_users(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("poll", 1)
    sup = await stack.start_supervisor("poll-1", mode="polling")
    await sup.wait_active(1)
    user = ScriptedUser(stack.telegram, tenant.token, 7000006)
    await user.say("/start", expect="Выберите")
    assert stack.telegram.calls(tenant.token, "deleteWebhook"), "polling starts by removing any webhook"
    assert await sup.stop() == 0


async def test_smoke_test_on_start_logs_passed_or_failed(stack: Stack) -> None:
    (tenant,) = await stack.add_tenants_direct("smoke", 1)
    good = await stack.start_supervisor(
        "smoke-1",
        SMOKE_TEST_ON_START="1",
        SMOKE_TEST_TENANT=tenant.slug,
        SMOKE_TEST_MODEL_ID="z-image",
        SMOKE_TEST_INPUT_JSON='{"prompt": "a test", "aspect_ratio": "1:1"}',
    )
    await wait_until(lambda: "smoke test PASSED" in good.log(), timeout=30, what="smoke test PASSED")
    assert await good.stop() == 0
    bad = await stack.start_supervisor(
        "smoke-2",
        SMOKE_TEST_ON_START="1",
        SMOKE_TEST_TENANT=tenant.slug,
        SMOKE_TEST_MODEL_ID="no/such-model",
    )
    await wait_until(lambda: "smoke test FAILED" in bad.log(), timeout=30, what="smoke test FAILED")
    health = await bad.health()
    assert health is not None and health["status"] == "ok", "a failed smoke test never blocks serving"
    assert tenant.kie_key not in good.log() + bad.log()


async def test_telegram_429_waits_for_that_bot_only(stack: Stack) -> None:
    limited, other = await stack.add_tenants_direct("rate", 2)
    sup = await stack.start_supervisor("rate-1")
    await sup.wait_active(2)
    await stack.telegram.inject_faults(
        limited.token, rate_limit_calls=1, rate_limit_method="sendMessage", retry_after=2
    )
    started = time.monotonic()
    slow = asyncio.create_task(ScriptedUser(stack.telegram, limited.token, 7000010).say("/start", expect="Выберите"))
    await ScriptedUser(stack.telegram, other.token, 7000011).say("/start", expect="Выберите")
    other_done = time.monotonic() - started
    await slow
    limited_done = time.monotonic() - started
    assert other_done < 2 <= limited_done, (other_done, limited_done)
    health = await sup.health()
    assert health is not None and _active(health) == 2, "a 429 is not a crash"
