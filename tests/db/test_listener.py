"""The tenant-change listener against real Postgres. Invariant: a change is seen within a few seconds
whatever happens to the listen session: a NOTIFY lost while the session was gone is read by the full
resync that follows every reconnect, and a closed session is noticed at once, not at the next poll."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from shared.db import LISTEN_SESSION, session_name
from supervisor.listener import CHANNEL, TenantListener
from tests.helpers import wait_until


async def test_a_terminated_listen_session_is_noticed_at_once_and_resynced(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    resyncs: list[float] = []
    changed: list[int] = []

    async def resync() -> None:
        resyncs.append(time.monotonic())

    async def on_change(tenant_id: int) -> None:
        changed.append(tenant_id)

    listener = TenantListener(module_database, "lst-one", resync, on_change, resync_interval=600)
    task = asyncio.create_task(listener.run())
    try:
        await wait_until(lambda: len(resyncs) == 1, timeout=10, what="the first resync")
        await module_pool.execute("SELECT pg_notify($1, '{\"id\": 7}')", CHANNEL)
        await wait_until(lambda: changed == [7], timeout=5, what="the change notified")
        killed_at = time.monotonic()
        await module_pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            session_name(LISTEN_SESSION, "lst-one"),
        )
        # The consumer polls a silent session every 5 s: only the termination listener is this fast.
        await wait_until(lambda: len(resyncs) == 2, timeout=3, what="a resync right after the reconnect")
        assert resyncs[1] - killed_at < 3
        # Its own close of the old session is not mistaken for another loss: no reconnect loop.
        await asyncio.sleep(2)
        assert len(resyncs) == 2, "the listener kept reconnecting"
        await module_pool.execute("SELECT pg_notify($1, '{\"id\": 8}')", CHANNEL)
        await wait_until(lambda: changed == [7, 8], timeout=5, what="changes seen on the new session")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
