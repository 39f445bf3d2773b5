"""The durable inbox against real Postgres: who may take over an update someone else claimed."""

from __future__ import annotations

import secrets

import asyncpg

from shared.crypto import KeyRing, generate_key
from shared.db import LISTEN_SESSION, POOL_SESSION, connect_dedicated, create_pool, session_name
from supervisor.tenants import NewTenant, TenantStore
from tenant_runtime.inbox import Inbox
from tests.helpers import wait_until


async def _tenant(pool: asyncpg.Pool) -> int:
    bot_id = 881_000_000 + secrets.randbelow(1_000_000)
    token = f"{bot_id}:" + secrets.token_urlsafe(40)[:35].replace("-", "x")
    store = TenantStore(pool, KeyRing([generate_key()]))
    config = await store.add(
        NewTenant(
            slug=f"inbox-{bot_id}", display_name="x", bot_token=token, bot_id=bot_id, kie_api_key=None, admin_ids=[]
        )
    )
    return config.id


async def test_claims_of_a_gone_process_are_taken_over_at_once(module_database: str, module_pool: asyncpg.Pool) -> None:
    tenant_id = await _tenant(module_pool)
    # This process's own sessions carry its name, as the supervisor's pool does.
    my_pool = await create_pool(module_database, 2, application_name=session_name(POOL_SESSION, "inbox-me"))
    me = Inbox(my_pool, "inbox-me")
    # A process that was killed: it claimed the update and has no session left.
    gone = Inbox(module_pool, "inbox-gone")
    assert await gone.accept(tenant_id, 1, 10, {"update_id": 1})
    assert await gone.accept(tenant_id, 2, 10, {"update_id": 2})
    # A live process (here: its LISTEN session) keeps its claims until the lease runs out.
    alive_session = await connect_dedicated(
        module_database, application_name=session_name(LISTEN_SESSION, "inbox-alive")
    )
    try:
        alive = Inbox(module_pool, "inbox-alive")
        assert await alive.accept(tenant_id, 3, 11, {"update_id": 3})
        assert await alive.accept(tenant_id, 4, 11, {"update_id": 4})

        assert await me.accept(tenant_id, 1, 10, {"update_id": 1}), "Telegram's redelivery is handled now"
        assert not await me.accept(tenant_id, 3, 11, {"update_id": 3}), "still being handled by a live process"
        reclaimed = await me.reclaim_stale(tenant_id)
        assert [p.update_id for p in reclaimed] == [2]
        assert not await me.accept(tenant_id, 1, 10, {"update_id": 1}), "now ours: a duplicate"
        # Once the live process is gone too, its claims are free.
        await alive_session.close()

        async def session_gone() -> bool:
            names = await module_pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                session_name(LISTEN_SESSION, "inbox-alive"),
            )
            return names == 0

        await wait_until(session_gone, timeout=10, what="the closed session to leave pg_stat_activity")
        assert [p.update_id for p in await me.reclaim_stale(tenant_id)] == [3, 4]
    finally:
        await alive_session.close()
        await my_pool.close()
    claimed = await module_pool.fetch(
        "SELECT update_id, claimed_by, attempts FROM updates_inbox WHERE tenant_id = $1 ORDER BY update_id", tenant_id
    )
    assert [(r["update_id"], r["claimed_by"], r["attempts"]) for r in claimed] == [
        (1, "inbox-me", 2),
        (2, "inbox-me", 2),
        (3, "inbox-me", 2),
        (4, "inbox-me", 2),
    ]
