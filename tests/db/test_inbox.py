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
        reclaimed = await me.reclaim_stale([tenant_id])
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
        assert [p.update_id for p in await me.reclaim_stale([tenant_id])] == [3, 4]
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


async def test_a_live_process_keeps_a_slow_update_by_renewing_its_lease(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    (tenant,) = await add_bare_tenants(module_pool, "inboxl", 1, first_bot_id=881_100_000)
    mine_pool = await create_pool(module_database, 2, application_name=session_name(POOL_SESSION, "inboxl-me"))
    other_pool = await create_pool(module_database, 2, application_name=session_name(POOL_SESSION, "inboxl-other"))
    me, other = Inbox(mine_pool, "inboxl-me"), Inbox(other_pool, "inboxl-other")
    try:
        assert await me.accept(tenant.id, 1, 10, {"update_id": 1})
        assert await me.accept(tenant.id, 2, 10, {"update_id": 2})
        # A slow handler (or a queue behind one chat): the lease has run out by the clock...
        await module_pool.execute(
            "UPDATE updates_inbox SET claimed_at = now() - interval '2 minutes' WHERE tenant_id = $1", tenant.id
        )
        # ...but this process renews what it still has in hand (update 1), not what it gave up (2).
        assert await me.renew({tenant.id: [1]}) == 1
        assert [p.update_id for p in await other.reclaim_stale([tenant.id])] == [2]
        assert not await other.accept(tenant.id, 1, 10, {"update_id": 1}), "a renewed claim was taken over"
        # The reclaimer of the owner itself never takes its own in-flight update.
        await module_pool.execute(
            "UPDATE updates_inbox SET claimed_at = now() - interval '2 minutes' WHERE tenant_id = $1 AND update_id = 1",
            tenant.id,
        )
        assert await me.reclaim_stale([tenant.id], exclude={(tenant.id, 1)}) == []
        # A takeover wins over a late finish: the old claimer cannot mark what it no longer owns.
        assert [p.update_id for p in await other.reclaim_stale([tenant.id])] == [1]
        assert not await me.finish(tenant.id, 1, ok=True)
        assert await other.finish(tenant.id, 1, ok=True)
        status = await module_pool.fetchval(
            "SELECT claimed_by FROM updates_inbox WHERE tenant_id = $1 AND update_id = 1", tenant.id
        )
        assert status == "inboxl-other"
    finally:
        await mine_pool.close()
        await other_pool.close()


async def test_an_update_handed_back_in_an_outage_is_never_given_up(module_pool: asyncpg.Pool) -> None:
    """Handing an update back (Telegram out of reach) does not count as a failed try: after any number of
    hand-backs it is still taken by the next delivery, while an update whose handler keeps failing is still
    given up after MAX_ATTEMPTS."""
    from tenant_runtime.inbox import MAX_ATTEMPTS

    (tenant,) = await add_bare_tenants(module_pool, "inboxout", 1, first_bot_id=881_400_000)
    inbox = Inbox(module_pool, "inbox-outage")
    assert await inbox.accept(tenant.id, 1, 10, {"update_id": 1})
    for _ in range(3 * MAX_ATTEMPTS):
        await inbox.release(tenant.id, 1)
        assert await inbox.accept(tenant.id, 1, 10, {"update_id": 1}), "a redelivery after a hand-back"
    # A handler that fails each time (no hand-back): the redeliveries stop being taken.
    failing = Inbox(module_pool, "inbox-poison")
    assert await failing.accept(tenant.id, 2, 10, {"update_id": 2})
    taken = 1
    for _ in range(3 * MAX_ATTEMPTS):
        await module_pool.execute(
            "UPDATE updates_inbox SET claimed_at = now() - interval '1 hour' WHERE tenant_id = $1 AND update_id = 2",
            tenant.id,
        )
        taken += await failing.accept(tenant.id, 2, 10, {"update_id": 2})
    assert taken == MAX_ATTEMPTS
