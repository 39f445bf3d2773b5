"""Runtime states published to Postgres: only changes are written, `since` and `troubled_since` follow
the states on the database's clock, a full write repairs and cleans, a failed write is retried."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.db import DB_UNAVAILABLE, create_pool
from supervisor.publish import RuntimePublisher, SlotReport
from supervisor.slot_state import State
from tenant_runtime.config import TenantConfig
from tests.helpers import add_bare_tenants, wait_until
from tests.tcp_proxy import TcpProxy


@pytest.fixture
async def tenants(pool: asyncpg.Pool) -> AsyncIterator[list[TenantConfig]]:
    added = await add_bare_tenants(pool, f"pub{secrets.token_hex(2)}", 3, 760000000 + secrets.randbelow(10**6) * 10)
    yield added
    await pool.execute("DELETE FROM tenants WHERE id = ANY($1::bigint[])", [t.id for t in added])


@pytest.fixture
async def identity(pool: asyncpg.Pool) -> AsyncIterator[str]:
    name = f"pub-{secrets.token_hex(3)}"
    await pool.execute("INSERT INTO instances (name, host, pid, version) VALUES ($1, 'h', 1, 't')", name)
    yield name
    await pool.execute("DELETE FROM tenant_runtime_states WHERE instance = $1", name)
    await pool.execute("DELETE FROM instances WHERE name = $1", name)


async def _rows(pool: asyncpg.Pool, identity: str) -> dict[int, asyncpg.Record]:
    rows = await pool.fetch(
        "SELECT tenant_id, state, since, troubled_since, last_error, xmin::text::bigint AS version "
        "FROM tenant_runtime_states WHERE instance = $1",
        identity,
    )
    return {r["tenant_id"]: r for r in rows}


async def test_only_changed_slots_are_written_and_since_follows_the_state(
    pool: asyncpg.Pool, tenants: list[TenantConfig], identity: str
) -> None:
    a, b, c = (t.id for t in tenants)
    reports = {a: SlotReport(State.ACTIVE, None), b: SlotReport(State.STANDBY, None), c: SlotReport(State.ACTIVE, None)}
    publisher = RuntimePublisher(pool, identity, lambda: dict(reports), full_every=3600)
    assert await publisher.publish_once()
    first = await _rows(pool, identity)
    assert {tid: r["state"] for tid, r in first.items()} == {a: "active", b: "standby", c: "active"}

    assert not await publisher.publish_once(), "nothing changed: no statement at all"

    reports[b] = SlotReport(State.BACKOFF, "TelegramServerError: Bad Gateway")
    del reports[c]  # the tenant was disabled: this process no longer has a slot for it
    assert await publisher.publish_once()
    second = await _rows(pool, identity)
    assert set(second) == {a, b}
    assert second[a]["version"] == first[a]["version"], "an unchanged slot's row is not rewritten"
    assert second[b]["state"] == "backoff" and second[b]["last_error"] == "TelegramServerError: Bad Gateway"
    assert second[b]["since"] > first[b]["since"]

    reports[b] = SlotReport(State.BACKOFF, "TelegramServerError: Bad Gateway (again)")
    assert await publisher.publish_once()
    third = await _rows(pool, identity)
    assert third[b]["since"] == second[b]["since"], "the same state with another error keeps its since"


async def test_trouble_lasts_through_restarts_and_ends_when_healthy(
    pool: asyncpg.Pool, tenants: list[TenantConfig], identity: str
) -> None:
    tid = tenants[0].id
    reports = {tid: SlotReport(State.STARTING, None)}
    publisher = RuntimePublisher(pool, identity, lambda: dict(reports), full_every=3600)
    await publisher.publish_once()
    assert (await _rows(pool, identity))[tid]["troubled_since"] is None, "a first start is no trouble"
    troubled = None
    for state in (State.BACKOFF, State.STARTING, State.BACKOFF, State.QUARANTINED, State.STARTING):
        reports[tid] = SlotReport(state, "RuntimeError: boom")
        await publisher.publish_once()
        row = (await _rows(pool, identity))[tid]
        troubled = troubled or row["troubled_since"]
        assert row["troubled_since"] is not None and row["troubled_since"] == troubled, state
    reports[tid] = SlotReport(State.STANDBY, "RuntimeError: boom")
    await publisher.publish_once()
    assert (await _rows(pool, identity))[tid]["troubled_since"] is None


async def test_a_full_write_repairs_rows_and_drops_processes_that_are_gone(
    pool: asyncpg.Pool, tenants: list[TenantConfig], identity: str
) -> None:
    a, b, _ = (t.id for t in tenants)
    live_peer, dead_peer = f"peer-{secrets.token_hex(3)}", f"dead-{secrets.token_hex(3)}"
    await pool.execute("INSERT INTO instances (name, host, pid, version) VALUES ($1, 'h', 2, 't')", live_peer)
    try:
        for peer in (live_peer, dead_peer):
            await pool.execute(
                "INSERT INTO tenant_runtime_states (tenant_id, instance, state) VALUES ($1, $2, 'standby')", a, peer
            )
        reports = {a: SlotReport(State.ACTIVE, None), b: SlotReport(State.STANDBY, None)}
        publisher = RuntimePublisher(pool, identity, lambda: dict(reports), full_every=0)
        await publisher.publish_once()
        await pool.execute("DELETE FROM tenant_runtime_states WHERE instance = $1 AND tenant_id = $2", identity, b)
        await publisher.publish_once()  # full again (full_every=0)
        assert set(await _rows(pool, identity)) == {a, b}, "a row removed behind our back comes back"
        peers = {r["instance"] for r in await pool.fetch("SELECT instance FROM tenant_runtime_states")}
        assert live_peer in peers and dead_peer not in peers
    finally:
        await pool.execute("DELETE FROM tenant_runtime_states WHERE instance = ANY($1::text[])", [live_peer, dead_peer])
        await pool.execute("DELETE FROM instances WHERE name = $1", live_peer)


async def test_a_removed_tenant_does_not_fail_the_statement_for_the_others(
    pool: asyncpg.Pool, tenants: list[TenantConfig], identity: str
) -> None:
    a, b, _ = (t.id for t in tenants)
    reports = {a: SlotReport(State.ACTIVE, None), b: SlotReport(State.ACTIVE, None)}
    publisher = RuntimePublisher(pool, identity, lambda: dict(reports), full_every=3600)
    await pool.execute("DELETE FROM tenants WHERE id = $1", b)  # removed before this process noticed
    await publisher.publish_once()
    assert set(await _rows(pool, identity)) == {a}


async def test_a_failed_write_is_written_at_the_next_tick(
    database_url: str, pool: asyncpg.Pool, tenants: list[TenantConfig], identity: str
) -> None:
    tid = tenants[0].id
    proxy = TcpProxy.for_dsn(database_url)
    await proxy.start()
    own = await create_pool(proxy.dsn(database_url), 1, application_name="pub-fail")
    try:
        reports = {tid: SlotReport(State.ACTIVE, None)}
        publisher = RuntimePublisher(own, identity, lambda: dict(reports), full_every=3600)
        await publisher.publish_once()
        reports[tid] = SlotReport(State.BACKOFF, "OSError: unreachable")
        await proxy.cut()  # Postgres away from this process
        with pytest.raises(DB_UNAVAILABLE):
            await publisher.publish_once()
        assert (await _rows(pool, identity))[tid]["state"] == "active"
        await proxy.restore()

        async def written() -> bool:
            # periodic() calls again after a failure; the change that failed is still pending.
            with contextlib.suppress(*DB_UNAVAILABLE):
                await publisher.publish_once()
            return bool((await _rows(pool, identity))[tid]["state"] == "backoff")

        await wait_until(written, timeout=20, interval=0.2, what="the failed change written at a later tick")
    finally:
        own.terminate()
        await proxy.cut()
