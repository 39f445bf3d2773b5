"""The durable inbox against real Postgres: who may take over an update someone else claimed."""

from __future__ import annotations

import asyncpg

from shared.db import LISTEN_SESSION, POOL_SESSION, connect_dedicated, create_pool, session_name
from tenant_runtime.inbox import Inbox
from tests.helpers import add_bare_tenants, wait_until


async def test_claims_of_a_gone_process_are_taken_over_at_once(module_database: str, module_pool: asyncpg.Pool) -> None:
    (tenant,) = await add_bare_tenants(module_pool, "inbox", 1, first_bot_id=881_000_000)
    tenant_id = tenant.id
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
