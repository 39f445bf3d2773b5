"""The inbox reclaimer resumes a reclaimed update only on the runtime that serves its tenant when the
reclaim query returns. A slot that stopped (or was rebuilt) while the query ran must not get it: the
claim is given straight back, so the tenant's next owner takes it at once instead of after the lease.
(The same shape as chaos seed 707's lost reply, found in the reclaimer while fixing the webhook path.)

Real Postgres and the real inbox; the slot table is the lifecycle's own `Slot`, the runtime a recorder."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest

from shared.settings import Settings
from supervisor.census import take_census
from supervisor.compose import Parts
from supervisor.loops import BackgroundLoops
from supervisor.slot import Slot
from supervisor.slot_state import State
from tenant_runtime.inbox import RECLAIM_AFTER_SECONDS, Inbox, Pending
from tenant_runtime.services import Services
from tests.helpers import add_bare_tenants

_ids = itertools.count()


class RecordingRuntime:
    def __init__(self) -> None:
        self.open_updates: set[int] = set()
        self.resumed: list[int] = []

    def resume(self, pending: Pending) -> None:
        self.resumed.append(pending.update_id)


class InboxWithStep(Inbox):
    """The real inbox; `during_query` runs after the reclaim query returned, before the reclaimer goes on."""

    def __init__(self, pool: asyncpg.Pool, instance: str, during_query: Callable[[], None]) -> None:
        super().__init__(pool, instance)
        self.during_query = during_query

    async def reclaim_stale(
        self, tenant_ids: Collection[int], *, exclude: Collection[tuple[int, int]] = (), limit: int = 200
    ) -> list[Pending]:
        found = await super().reclaim_stale(tenant_ids, exclude=exclude, limit=limit)
        self.during_query()
        return found


class SlotTable:
    """The lifecycle as the reclaimer reads it: its slots, and who serves them (counted afresh on every
    ask, since the steps below change a slot directly)."""

    def __init__(self, slots: dict[int, Slot]) -> None:
        self.slots = slots

    def active(self) -> Mapping[int, Any]:
        return take_census(self.slots, 0).active


async def _orphan(pool: asyncpg.Pool) -> tuple[int, int]:
    """A tenant and an update accepted by a process that is gone (no Postgres session of that name)."""
    (config,) = await add_bare_tenants(pool, f"reclaim-{next(_ids)}", 1, first_bot_id=882_100_000 + 10 * next(_ids))
    update_id = 5_000 + next(_ids)
    await pool.execute(
        "INSERT INTO updates_inbox (tenant_id, update_id, chat_id, payload, claimed_by) VALUES ($1, $2, 7, $3, 'gone-x')",
        config.id,
        update_id,
        {"update_id": update_id},
    )
    return config.id, update_id


async def _reclaim_with(pool: asyncpg.Pool, tenant_id: int, step: Callable[[Slot], None]) -> RecordingRuntime:
    runtime = RecordingRuntime()
    slot = Slot(
        config=cast(Any, SimpleNamespace(id=tenant_id, lock_key=tenant_id)),
        state=State.ACTIVE,
        runtime=cast(Any, runtime),
    )
    slot.locked = True
    parts = Parts(lifecycle=cast(Any, SlotTable({tenant_id: slot})))
    loops = BackgroundLoops(cast(Settings, None), "reclaimer-a", parts, database_ok=lambda: True)
    inbox = InboxWithStep(pool, "reclaimer-a", lambda: step(slot))
    await loops._reclaim(cast(Services, SimpleNamespace(inbox=inbox)))
    return runtime


async def _released(pool: asyncpg.Pool, tenant_id: int, update_id: int) -> bool:
    """The claim's lease is over: any process, live or not, takes the update at its next try."""
    over = await pool.fetchval(
        "SELECT claimed_at < now() - make_interval(secs => $3) FROM updates_inbox "
        "WHERE tenant_id = $1 AND update_id = $2 AND status = 'processing'",
        tenant_id,
        update_id,
        RECLAIM_AFTER_SECONDS,
    )
    return bool(over)


def _stop(slot: Slot) -> None:
    slot.state = State.STOPPED


def _step_down(slot: Slot) -> None:
    slot.locked = False


def _nothing(slot: Slot) -> None:
    return None


@pytest.mark.parametrize("step", [_stop, _step_down], ids=["slot stopped", "lock lost"])
async def test_an_update_reclaimed_while_its_slot_stops_is_given_back_not_resumed(
    module_pool: asyncpg.Pool, step: Callable[[Slot], None]
) -> None:
    tenant_id, update_id = await _orphan(module_pool)
    runtime = await _reclaim_with(module_pool, tenant_id, step)
    assert runtime.resumed == [], "a runtime that no longer serves its tenant was handed an update"
    assert await _released(module_pool, tenant_id, update_id)


async def test_an_update_reclaimed_for_a_serving_slot_is_resumed_on_it(module_pool: asyncpg.Pool) -> None:
    tenant_id, update_id = await _orphan(module_pool)
    runtime = await _reclaim_with(module_pool, tenant_id, _nothing)
    assert runtime.resumed == [update_id]
    assert not await _released(module_pool, tenant_id, update_id), "the claim is this process's now"
