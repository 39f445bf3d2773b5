"""The resync against a real registry: whatever NOTIFY was missed, the slots end up matching the rows
(changed, disabled, removed, added, a status the process set itself), and at rest it loads nothing."""

from __future__ import annotations

import secrets
from decimal import Decimal

import asyncpg
import pytest

from shared.crypto import KeyRing, generate_key
from supervisor.lifecycle import Lifecycle
from supervisor.resync import resync
from supervisor.slot_state import State
from supervisor.tenants import NewTenant, TenantChanges, TenantStore
from tenant_runtime.config import TenantStatus
from tests import own_database
from tests.helpers import make_token, wait_until
from tests.stand_in_runtime import StandInRuntime

database_url = own_database.database_url
pool = own_database.pool

_bots = iter(range(884_100_000, 884_200_000))


async def _add(store: TenantStore, slug: str) -> int:
    bot_id = next(_bots)
    new = NewTenant(
        slug=slug, display_name=slug, bot_token=make_token(bot_id), bot_id=bot_id, kie_api_key=None, admin_ids=[]
    )
    return (await store.add(new)).id


@pytest.fixture
async def store(pool: asyncpg.Pool) -> TenantStore:
    await pool.execute("DELETE FROM tenants")  # this module's database: the resync sees every row
    return TenantStore(pool, KeyRing([generate_key()]))


async def test_a_resync_applies_every_missed_change_and_loads_nothing_at_rest(store: TenantStore) -> None:
    async def mark_invalid(_tid: int, _reason: str, _version: int) -> None:
        return None

    life = Lifecycle(StandInRuntime, mark_invalid, lambda: None, lambda tid, key: False)  # type: ignore[arg-type]
    tag = secrets.token_hex(2)
    changed, disabled, removed, rejected, kept = [await _add(store, f"rs{tag}-{n}") for n in "abcde"]
    await life.sync(await store.all())
    await wait_until(lambda: life.counts() == {"standby": 5}, timeout=5, what="five slots in standby")
    assert await resync(store, life) == 0, "nothing changed, yet tenants were loaded"

    # Changes whose NOTIFY nobody heard: no listener runs here.
    await store.update(f"rs{tag}-a", TenantChanges(markup=Decimal("3")))
    await store.set_status(f"rs{tag}-b", TenantStatus.DISABLED.value)
    await store.remove(f"rs{tag}-c")
    await store.mark_token_invalid(rejected, "Unauthorized")  # no version bump: set by a process
    added = await _add(store, f"rs{tag}-f")
    assert await resync(store, life) == 4  # a, b, d and f; c is stopped without a load

    assert life.slots[changed].config.markup == Decimal("3")
    assert disabled not in life.slots and removed not in life.slots
    assert life.slots[rejected].state == State.TOKEN_INVALID
    await wait_until(lambda: life.slots[added].state == State.STANDBY, timeout=5, what="the added tenant started")
    assert life.slots[kept].state == State.STANDBY
    assert await resync(store, life) == 0, "at rest again, yet tenants were loaded"
    await life.stop_all(drain_timeout=1)
