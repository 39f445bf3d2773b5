"""The locker against real Postgres. Invariant: every tenant some live, able process wants is held by
exactly one of them within a few beats, whatever the others are doing (booting, sick, frozen, gone)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import asyncpg
import pytest

from shared.db import LOCK_NS_TENANT, LOCK_SESSION, connect_dedicated, session_name
from supervisor.lifecycle import Lifecycle
from supervisor.locks import Locker
from supervisor.slot_state import State
from tests.helpers import add_bare_tenants, wait_until
from tests.stand_in_runtime import StandInRuntime


class Recorder:
    """What the locker told the lifecycle, beat by beat."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, frozenset[int]]] = []

    def __call__(self, held: Mapping[int, int]) -> None:
        self.calls.append((time.monotonic(), frozenset(held)))


@asynccontextmanager
async def running(*lockers: Locker) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(locker.run()) for locker in lockers]
    try:
        yield
    finally:
        for locker in lockers:
            await locker.release_all()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def locker(dsn: str, name: str, wanted: Callable[[], Mapping[int, int]], **kw: float) -> Locker:
    return Locker(dsn, name, wanted, Recorder(), heartbeat=kw.get("heartbeat", 0.1), trust_window=kw.get("trust", 4.0))


async def held_on_server(pool: asyncpg.Pool, keys: Mapping[int, int]) -> set[int]:
    rows = await pool.fetch(
        "SELECT objid::bigint AS k FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint::oid "
        "AND objsubid = 2 AND granted",
        LOCK_NS_TENANT,
    )
    found = {r["k"] for r in rows}
    return {tid for tid, key in keys.items() if key in found}


async def test_a_slow_booting_process_takes_its_share_and_nothing_is_left_unheld(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    tenants = await add_bare_tenants(module_pool, "lk", 60, first_bot_id=880_000_000)
    wanted = {t.id: t.lock_key for t in tenants}
    by_key = sorted(wanted, key=wanted.__getitem__)
    first = locker(module_database, "lk-first", lambda: wanted)
    # The second process boots slowly: at first only 20 tenants with high keys are ready to serve.
    ready = {tid: wanted[tid] for tid in by_key[-20:]}
    second = locker(module_database, "lk-second", lambda: ready)
    async with running(first):
        await wait_until(lambda: len(first.held) == 60, timeout=10, what="the first process holds all")
        async with running(second):
            await wait_until(lambda: len(second.held) >= 10, timeout=10, what="the second takes some of its ready ones")
            assert set(second.held) <= set(ready), "a process took a tenant it cannot serve"
            await wait_until(
                lambda: len(set(first.held) | set(second.held)) == 60, timeout=5, what="every tenant held by someone"
            )
            ready = dict(wanted)
            await wait_until(
                lambda: (
                    len(first.held) == 30 and len(second.held) == 30 and len(set(first.held) | set(second.held)) == 60
                ),
                timeout=10,
                what="an even split, every tenant held, once every tenant is ready",
            )
            assert await held_on_server(module_pool, wanted) == set(wanted)


async def test_a_replica_that_cannot_serve_never_makes_the_healthy_one_drop_tenants(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    tenants = await add_bare_tenants(module_pool, "lks", 10, first_bot_id=880_100_000)
    wanted = {t.id: t.lock_key for t in tenants}
    healthy = locker(module_database, "lks-healthy", lambda: wanted)
    sick = locker(module_database, "lks-sick", dict)  # every runtime in backoff: able to serve nothing
    async with running(healthy, sick):
        await wait_until(lambda: len(healthy.held) == 10, timeout=10, what="the healthy process holds all")
        # Past many beats of both (0.1 s each): the healthy one keeps every tenant all along.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert len(healthy.held) == 10, f"healthy process dropped to {len(healthy.held)} beside a sick one"
            await asyncio.sleep(0.05)
        assert healthy.able_lockers == 1 and healthy.live_lockers == 2 and not sick.held


async def test_a_sick_replica_that_holds_locks_hands_them_to_the_healthy_one(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    tenants = await add_bare_tenants(module_pool, "lkh", 10, first_bot_id=880_200_000)
    wanted = {t.id: t.lock_key for t in tenants}
    able: dict[int, int] = dict(wanted)
    first = locker(module_database, "lkh-first", lambda: able)
    second = locker(module_database, "lkh-second", lambda: wanted)
    async with running(first, second):
        await wait_until(
            lambda: len(first.held) + len(second.held) == 10 and first.held and second.held,
            timeout=10,
            what="both hold some",
        )
        able.clear()  # the first loses Telegram: every runtime goes to backoff
        await wait_until(lambda: len(second.held) == 10, timeout=5, what="the healthy one holds everything")
        assert not first.held


async def test_a_removed_tenant_affects_only_itself(module_database: str, module_pool: asyncpg.Pool) -> None:
    tenants = await add_bare_tenants(module_pool, "lkr", 5, first_bot_id=880_300_000)
    wanted = {t.id: t.lock_key for t in tenants}
    first = locker(module_database, "lkr-first", lambda: wanted)
    recorder = first._on_held
    assert isinstance(recorder, Recorder)
    async with running(first):
        await wait_until(lambda: len(first.held) == 5, timeout=10, what="all held")
        # Removed from the table while this process still wants it (its listener has not caught up).
        gone = tenants[0].id
        await module_pool.execute("DELETE FROM tenants WHERE id = $1", gone)
        await first.release_all()
    # A new session that wants the removed tenant too: its lock_holders row cannot be written.
    second = locker(module_database, "lkr-second", lambda: wanted)
    recorder = second._on_held
    assert isinstance(recorder, Recorder)
    async with running(second):
        await wait_until(lambda: len(second.held) == 5, timeout=10, what="all five held, the removed one too")
        mark = len(recorder.calls)
        await asyncio.sleep(1.0)  # ten beats
        assert all(len(held) == 5 for _, held in recorder.calls[mark:]), "the locker stepped tenants down"
        rows = await module_pool.fetch("SELECT tenant_id FROM lock_holders WHERE instance = 'lkr-second'")
        assert {r["tenant_id"] for r in rows} == set(wanted) - {gone}


async def test_a_terminated_lock_session_steps_down_before_the_next_beat(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    tenants = await add_bare_tenants(module_pool, "lkt", 3, first_bot_id=880_400_000)
    wanted = {t.id: t.lock_key for t in tenants}
    one = locker(module_database, "lkt-one", lambda: wanted, heartbeat=5.0)
    recorder = one._on_held
    assert isinstance(recorder, Recorder)
    async with running(one):
        await wait_until(lambda: len(one.held) == 3, timeout=10, what="all held")
        killed_at = time.monotonic()
        await module_pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            session_name(LOCK_SESSION, "lkt-one"),
        )
        await wait_until(
            lambda: any(t > killed_at and not held for t, held in recorder.calls),
            timeout=2,
            what="the step-down (the next beat would be 5 s away)",
        )
        assert not one.holds(tenants[0].id, tenants[0].lock_key)
        await wait_until(lambda: len(one.held) == 3, timeout=10, what="locks taken again on a new session")


async def test_a_frozen_process_is_fenced_and_its_tenants_taken_over(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    tenants = await add_bare_tenants(module_pool, "lkf", 4, first_bot_id=880_500_000)
    wanted = {t.id: t.lock_key for t in tenants}
    # A process that took every lock, then froze: its session lives, its beats stopped long ago.
    frozen = await connect_dedicated(module_database, application_name=session_name(LOCK_SESSION, "lkf-frozen"))
    try:
        for key in wanted.values():
            assert await frozen.fetchval("SELECT pg_try_advisory_lock($1, $2)", LOCK_NS_TENANT, key)
        await module_pool.execute(
            "INSERT INTO lockers (identity, able, held, beat_at) VALUES ('lkf-frozen', 4, 4, now() - interval '1 hour')"
        )
        live = locker(module_database, "lkf-live", lambda: wanted, trust=1.0)
        async with running(live):
            await wait_until(lambda: len(live.held) == 4, timeout=10, what="the frozen process's tenants taken over")
        assert frozen.is_closed() or not await _alive(frozen)
    finally:
        frozen.terminate()


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1", timeout=2)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


async def test_a_process_that_froze_acts_for_no_tenant_until_a_beat_confirms(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    tenants = await add_bare_tenants(module_pool, "lkz", 2, first_bot_id=880_600_000)
    wanted = {t.id: t.lock_key for t in tenants}
    first = tenants[0]
    one = locker(module_database, "lkz-one", lambda: wanted, heartbeat=0.2, trust=1.0)
    async with running(one):
        # `held` fills in during a beat; the beat is confirmed only once it has finished.
        await wait_until(lambda: len(one.held) == 2 and one.confirmed(), timeout=10, what="all held, confirmed")
        assert one.holds(first.id, first.lock_key)
        # The whole process freezes past the trust window: blocking the event loop is what SIGSTOP
        # looks like from inside. On waking, before any beat ran, it must not trust what it held.
        time.sleep(1.3)
        assert not one.confirmed(), "a frozen process trusts locks peers may have fenced meanwhile"
        assert not one.holds(first.id, first.lock_key)
        await wait_until(one.confirmed, timeout=5, what="the next beat confirms again")
        assert one.holds(first.id, first.lock_key)
        # A lost session moves the epoch on: work begun under the old one never counts as held again.
        epoch = one.epoch
        await module_pool.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            session_name(LOCK_SESSION, "lkz-one"),
        )
        await wait_until(lambda: one.epoch > epoch, timeout=5, what="the step-down")
        await wait_until(one.confirmed, timeout=10, what="a new session confirmed")
        assert one.epoch > epoch


def _terminate_soon(dsn: str, application_name: str, after: float) -> threading.Thread:
    """Terminate a session from outside this (about to be blocked) event loop, as a peer's fencing or an
    operator would while the process stands still."""

    async def terminate() -> None:
        await asyncio.sleep(after)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", application_name
            )
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(terminate(),))
    thread.start()
    return thread


async def test_a_process_that_stood_still_trusts_no_lock_until_a_beat_after_the_stall(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    """A freeze shorter than the trust window (4 s) during which the lock session was terminated: on
    waking, the session's end is an event not processed yet, and a poll that was due may run first (chaos
    seed 5: one getUpdates beside the peer that had taken the bot). Invariant: after any stall, nothing
    counts as held until a beat that began after it has succeeded."""
    tenants = await add_bare_tenants(module_pool, "lkw", 2, first_bot_id=880_950_000)
    wanted = {t.id: t.lock_key for t in tenants}
    first = tenants[0]
    one = locker(module_database, "lkw-one", lambda: wanted, heartbeat=0.2)
    async with running(one):
        await wait_until(lambda: len(one.held) == 2 and one.confirmed(), timeout=10, what="all held, confirmed")
        terminator = _terminate_soon(module_database, session_name(LOCK_SESSION, "lkw-one"), after=0.3)
        time.sleep(1.5)  # the whole process stands still (what SIGSTOP looks like from inside)
        # Woken, before any callback ran: within the trust window, the termination not yet seen.
        assert not one.holds(first.id, first.lock_key), "a process that stood still trusted its locks"
        terminator.join()
        await wait_until(lambda: one.holds(first.id, first.lock_key), timeout=10, what="held again after a new beat")
        # A stall with the session intact costs one beat, not a step-down.
        epoch = one.epoch
        time.sleep(1.5)
        assert not one.confirmed()
        await wait_until(one.confirmed, timeout=5, what="confirmed by the next beat")
        assert one.epoch == epoch, "a stall alone stepped the process down"


async def test_a_handover_steps_down_before_unlocking_and_the_peer_takes_over_at_once(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    """A planned hand-over (a peer joined) leaves no tenant with two owners and none with no owner for a
    beat: the giver's runtimes step down while it still holds the locks, then it unlocks and tells the
    peers, which take the locks without waiting for their own next beat."""
    tenants = await add_bare_tenants(module_pool, "lkg", 8, first_bot_id=880_700_000)
    wanted = {t.id: t.lock_key for t in tenants}
    still_locked_while_stepping_down: list[bool] = []

    async def quiesce(tenant_ids: list[int], _timeout: float) -> bool:
        on_server = await held_on_server(module_pool, {tid: wanted[tid] for tid in tenant_ids})
        still_locked_while_stepping_down.append(on_server == set(tenant_ids))
        return True

    giver = Locker(module_database, "lkh-giver", lambda: wanted, Recorder(), heartbeat=0.1, quiesce=quiesce)
    # The taker beats once at start and then only every 60 s: only the giver's notice can wake it sooner.
    taker = locker(module_database, "lkh-taker", lambda: wanted, heartbeat=60)
    async with running(giver):
        await wait_until(lambda: len(giver.held) == 8, timeout=10, what="the giver holds all")
        async with running(taker):
            await wait_until(lambda: len(taker.held) == 4, timeout=15, what="the taker takes its share at once")
            assert len(giver.held) == 4 and not set(giver.held) & set(taker.held)
    assert still_locked_while_stepping_down and all(still_locked_while_stepping_down)


async def test_a_process_that_stops_wanting_its_tenants_steps_down_before_unlocking(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    """A process that finds it cannot reach Telegram wants nothing any more, and may be wrong about it
    (a false alarm). Invariant: it never unlocks a tenant whose runtime has not stepped down, so a peer
    that takes the lock never serves beside it."""
    tenants = await add_bare_tenants(module_pool, "lku", 4, first_bot_id=880_750_000)
    all_wanted = {t.id: t.lock_key for t in tenants}
    wanted = dict(all_wanted)
    asked: list[tuple[list[int], bool]] = []

    async def quiesce(tenant_ids: list[int], _timeout: float) -> bool:
        on_server = await held_on_server(module_pool, {tid: all_wanted[tid] for tid in tenant_ids})
        asked.append((tenant_ids, on_server == set(tenant_ids)))
        return True

    unable = Locker(module_database, "lku-unable", lambda: wanted, Recorder(), heartbeat=0.1, quiesce=quiesce)
    async with running(unable):
        await wait_until(lambda: len(unable.held) == 4, timeout=10, what="all held")
        wanted.clear()  # Telegram unreachable: `Lifecycle.wanted_locks` says nothing is wanted
        unable.poke()
        await wait_until(lambda: not unable.held, timeout=10, what="all released")
        assert await held_on_server(module_pool, all_wanted) == set()
    assert sorted(tid for ids, _ in asked for tid in ids) == sorted(all_wanted), "released without stepping down"
    assert all(locked for _, locked in asked), "unlocked before the runtimes stepped down"


async def test_no_tenant_is_handed_to_a_peer_that_stopped_beating(
    module_database: str, module_pool: asyncpg.Pool
) -> None:
    """A peer frozen since its last beat still counts as alive for the trust window (4 s), and said it
    had room. Handing it tenants would leave them held by nobody until the orphan rule takes them back
    (chaos seed 404: 2 s). Invariant: while such a peer is silent, every tenant stays held."""
    tenants = await add_bare_tenants(module_pool, "lkp", 8, first_bot_id=880_800_000)
    wanted = {t.id: t.lock_key for t in tenants}
    live = locker(module_database, "lkp-live", lambda: wanted, heartbeat=0.1)
    async with running(live):
        await wait_until(lambda: len(live.held) == 8, timeout=10, what="the live process holds all")
        # The peer's lock session is alive (a frozen process keeps its socket); its last beat, a second
        # ago, said it could serve all 8 and held none.
        frozen = await connect_dedicated(module_database, application_name=session_name(LOCK_SESSION, "lkp-frozen"))
        try:
            await module_pool.execute(
                "INSERT INTO lockers (identity, able, held, beat_at) VALUES ('lkp-frozen', 8, 0, now() - interval '1 s')"
            )
            await wait_until(lambda: live.live_lockers == 2, timeout=5, what="the live process sees the peer")
            # Twenty of the live process's beats (0.1 s), the peer still inside its 4 s trust window.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                assert await held_on_server(module_pool, wanted) == set(wanted), "a tenant held by nobody"
                await asyncio.sleep(0.05)
            assert len(live.held) == 8
        finally:
            frozen.terminate()


async def _never_invalid(_tenant_id: int, _reason: str, _version: int) -> None:
    raise AssertionError("no token is rejected here")


@pytest.mark.parametrize(
    ("prefix", "change"),
    [("lkb-mode", {"bot_mode": "polling"}), ("lkb-token", {"bot_token": "880900002:rotated-token-of-the-same-bot"})],
)
async def test_a_slot_rebuilt_on_its_holder_keeps_the_lock_through_the_rebuild(
    module_database: str, module_pool: asyncpg.Pool, prefix: str, change: dict[str, str]
) -> None:
    """A mode change or a token rotation rebuilds the slot on the process that holds the tenant. The old
    slot takes a while to stop (updates in hand) and the new one to start (getMe): if the tenant left the
    wanted set in between, a waiting peer took the lock, activated (setWebhook, deleteWebhook) and handed
    it back milliseconds later, two processes driving one bot (chaos seed 88). Invariant: through the
    whole rebuild the lock stays with the holder, and the new slot ends up serving."""
    first_bot_id = 880_900_001 if prefix == "lkb-mode" else 880_900_002
    (tenant,) = await add_bare_tenants(module_pool, prefix, 1, first_bot_id=first_bot_id)
    slot = lambda: life.slots[tenant.id]  # noqa: E731
    life = Lifecycle(
        lambda config: StandInRuntime(config, hang_stop=0.5, slow_check=0.5),  # type: ignore[arg-type,return-value]
        _never_invalid,
        lambda: holder.poke(),
        lambda tid, key: holder.holds(tid, key),
    )
    holder = Locker(module_database, f"{prefix}-holder", life.wanted_locks, life.reconcile, heartbeat=0.1)
    peer = locker(module_database, f"{prefix}-peer", lambda: {tenant.id: tenant.lock_key}, heartbeat=0.1)
    await life.apply(tenant)
    async with running(holder):
        await wait_until(lambda: slot().state == State.ACTIVE, timeout=10, what="active on the holder")
        async with running(peer):
            await wait_until(lambda: peer.live_lockers == 2, timeout=5, what="the peer beats")
            old = slot()
            rebuild = asyncio.create_task(life.apply(dataclasses.replace(tenant, config_version=2, **change)))
            samples = 0
            while not (rebuild.done() and slot() is not old and slot().state == State.ACTIVE):
                assert not peer.held, "the peer took the lock during the rebuild"
                assert await held_on_server(module_pool, {tenant.id: tenant.lock_key}) == {tenant.id}, "held by nobody"
                samples += 1
                await asyncio.sleep(0.02)
            await rebuild
            assert samples >= 20, "the rebuild was too quick to be watched"  # 0.5 s stop + 0.5 s start
    await life.stop_all(drain_timeout=1)
