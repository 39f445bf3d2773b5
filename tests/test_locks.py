"""The locker against real Postgres: tenants spread across processes and no lock is left unheld."""

from __future__ import annotations

import asyncio

import asyncpg

from supervisor.locks import Locker
from tests.helpers import add_bare_tenants, wait_until


async def _ignore(_acquired: set[int], _released: set[int]) -> None:
    return None


async def test_a_slow_booting_process_still_takes_its_share(module_database: str, module_pool: asyncpg.Pool) -> None:
    tenants = await add_bare_tenants(module_pool, "lk", 60, first_bot_id=880_000_000)
    wanted = {t.id: t.lock_key for t in tenants}
    by_key = sorted(wanted, key=wanted.__getitem__)
    first = Locker(module_database, "lk-first", lambda: wanted, _ignore, heartbeat=0.1)
    # The second process boots slowly: at first only some tenants with high keys are ready to serve.
    ready = {tid: wanted[tid] for tid in by_key[-20:]}
    second = Locker(module_database, "lk-second", lambda: ready, _ignore, heartbeat=0.1)
    tasks = [asyncio.create_task(first.run())]
    try:
        await wait_until(lambda: len(first.held) == 60, timeout=10, what="the first process holds all")
        tasks.append(asyncio.create_task(second.run()))
        await wait_until(lambda: len(second.held) == 10, timeout=10, what="the second takes a share of its ready ones")
        ready = dict(wanted)
        await wait_until(
            lambda: len(first.held) == 30 and len(second.held) == 30,
            timeout=10,
            what="an even split once every tenant is ready",
        )
        assert set(first.held).isdisjoint(second.held)
    finally:
        await first.release_all()
        await second.release_all()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
