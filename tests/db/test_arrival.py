"""An update's arrival is one statement: the claim, the rate count, the user's touch and the FSM row.
Invariants: a duplicate delivery counts nothing and touches nobody; an update over the rate limit does
not touch its user; what it returns is what the separate statements would have found; and the FSM row it
read answers reads of that key only until the key is written, and never after the update.

Real Postgres; the statements of `Inbox`, `count_hit`, `Users.touch` and `PgStorage` beside it."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Update

from shared.db import POOL_SESSION, create_pool, session_name
from tenant_runtime.arrival import Arrivals
from tenant_runtime.config import TenantConfig
from tenant_runtime.inbox import Inbox
from tenant_runtime.limits.shop_limits import ShopLimits
from tenant_runtime.telegram.fsm_storage import PgStorage, prefetched
from tests.helpers import add_bare_tenants

_ids = itertools.count()
USER = 7_700_001
ADMIN = 7_700_099


def _message(update_id: int, text: str, *, user: int = USER, chat: int | None = None) -> dict[str, Any]:
    sender = {"id": user, "is_bot": False, "first_name": "Анна", "username": "anna_b", "language_code": "en"}
    chat_part = {"id": chat if chat is not None else user, "type": "private"}
    message = {"message_id": update_id, "date": 0, "chat": chat_part, "from": sender, "text": text}
    return {"update_id": update_id, "message": message}


def _channel_post(update_id: int) -> dict[str, Any]:
    post = {"message_id": update_id, "date": 0, "chat": {"id": -100123, "type": "channel"}, "text": "hi"}
    return {"update_id": update_id, "channel_post": post}


@pytest.fixture
async def tenant(module_pool: asyncpg.Pool) -> TenantConfig:
    (config,) = await add_bare_tenants(module_pool, f"arrival-{next(_ids)}", 1, first_bot_id=883_300_000 + next(_ids))
    return dataclasses.replace(config, limits=ShopLimits(rate_per_minute=2), admin_ids=frozenset({ADMIN}))


@pytest.fixture
async def live_pool(module_database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool named as process "arrival-a"'s: its claims belong to a live process, not taken over."""
    pool = await create_pool(module_database, 2, application_name=session_name(POOL_SESSION, "arrival-a"))
    yield pool
    await pool.close()


async def test_a_delivery_is_claimed_counted_touched_and_read_in_one_statement(
    module_pool: asyncpg.Pool, live_pool: asyncpg.Pool, tenant: TenantConfig
) -> None:
    arrivals = Arrivals(live_pool, "arrival-a")
    payload = _message(1, "/start")
    first = await arrivals.claim(tenant, Update.model_validate(payload), payload, USER)
    assert first.accepted and first.hits == 1
    assert first.user is not None and first.user.is_new and first.user.language == "en"
    assert first.user.first_name == "Анна" and first.user.username == "anna_b"
    assert first.fsm is not None and first.fsm.state is None and first.fsm.data == {}

    # Telegram delivers it again (or the other replica got it): nothing counted, nobody touched.
    again = await arrivals.claim(tenant, Update.model_validate(payload), payload, USER)
    assert not again.accepted and again.hits is None and again.user is None and again.fsm is None
    hits = await module_pool.fetchval(
        "SELECT hits FROM rate_windows WHERE tenant_id = $1 AND user_id = $2", tenant.id, USER
    )
    assert hits == 1
    # The claim is the inbox's own: a second process's inbox sees the update as taken.
    assert not await Inbox(module_pool, "arrival-b").accept(tenant.id, 1, USER, payload)


async def test_over_the_rate_limit_the_user_is_not_touched(module_pool: asyncpg.Pool, tenant: TenantConfig) -> None:
    arrivals = Arrivals(module_pool, "arrival-a")
    found = []
    for update_id in (11, 12, 13):
        payload = _message(update_id, "hi")
        found.append(await arrivals.claim(tenant, Update.model_validate(payload), payload, USER))
    assert [a.hits for a in found] == [1, 2, 3]
    assert [a.user is not None for a in found] == [True, True, False], "the update over the limit touched its user"
    assert all(a.accepted for a in found)


async def test_no_sender_and_admins_are_not_counted(module_pool: asyncpg.Pool, tenant: TenantConfig) -> None:
    arrivals = Arrivals(module_pool, "arrival-a")
    post = _channel_post(21)
    nobody = await arrivals.claim(tenant, Update.model_validate(post), post, -100123)
    assert nobody.accepted and nobody.hits is None and nobody.user is None and nobody.fsm is None
    payload = _message(22, "/start", user=ADMIN)
    admin = await arrivals.claim(tenant, Update.model_validate(payload), payload, ADMIN)
    assert admin.accepted and admin.hits is None and admin.user is not None


async def test_without_the_claim_it_is_the_rest_of_the_arrival(module_pool: asyncpg.Pool, tenant: TenantConfig) -> None:
    """A polled update was claimed by `Inbox.accept` before its turn; its arrival then counts and touches."""
    payload = _message(31, "/start")
    assert await Inbox(module_pool, "arrival-a").accept(tenant.id, 31, USER, payload)
    rest = await Arrivals(module_pool, "arrival-a").after_claim(tenant, Update.model_validate(payload))
    assert rest.accepted and rest.hits == 1 and rest.user is not None and rest.fsm is not None


async def test_the_fsm_row_read_at_arrival_answers_until_its_key_is_written(
    module_pool: asyncpg.Pool, tenant: TenantConfig
) -> None:
    storage = PgStorage(module_pool, {tenant.bot_id: tenant.id})
    key = StorageKey(bot_id=tenant.bot_id, chat_id=USER, user_id=USER)
    await storage.set_state(key, "Wizard:prompt")
    await storage.set_data(key, {"model": "flux"})
    payload = _message(41, "a cat")
    arrival = await Arrivals(module_pool, "arrival-a").claim(tenant, Update.model_validate(payload), payload, USER)
    assert arrival.fsm is not None and (arrival.fsm.state, arrival.fsm.data) == ("Wizard:prompt", {"model": "flux"})

    # Changed behind the prefetch's back: a read answered from the prefetch shows the old row, which
    # proves the read did not go to the database (in production nothing else writes it in the chat's turn).
    await module_pool.execute(
        "UPDATE fsm_states SET state = 'Elsewhere' WHERE tenant_id = $1 AND chat_id = $2", tenant.id, USER
    )
    with prefetched(arrival.fsm):
        assert await storage.get_state(key) == "Wizard:prompt"
        data = await storage.get_data(key)
        data["changed"] = True  # the caller's copy, not the prefetch
        assert await storage.get_data(key) == {"model": "flux"}
        other = StorageKey(bot_id=tenant.bot_id, chat_id=USER + 1, user_id=USER + 1)
        assert await storage.get_state(other) is None  # another key: from the database
        await storage.update_data(key, {"step": 2})  # a write: from now on, the database
        assert await storage.get_state(key) == "Elsewhere"
        assert await storage.get_data(key) == {"model": "flux", "step": 2}
    await module_pool.execute(
        "UPDATE fsm_states SET state = 'Later' WHERE tenant_id = $1 AND chat_id = $2", tenant.id, USER
    )
    fresh = await Arrivals(module_pool, "arrival-a").claim(
        tenant, Update.model_validate(_message(42, "x")), _message(42, "x"), USER
    )
    assert fresh.fsm is not None and fresh.fsm.state == "Later"
    with prefetched(fresh.fsm):
        pass
    with prefetched(fresh.fsm):  # after its update, never again (a task it started may outlive it)
        await module_pool.execute(
            "UPDATE fsm_states SET state = 'Last' WHERE tenant_id = $1 AND chat_id = $2", tenant.id, USER
        )
        assert await storage.get_state(key) == "Last"
