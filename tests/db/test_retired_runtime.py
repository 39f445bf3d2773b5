"""A runtime whose slot stopped (a mode change, a token rotation, a removal) never handles an update that
reaches it afterwards: a webhook request already on its way when the stop began is handed back, its
claim given up at once, so the slot's successor answers Telegram's redelivery in the chat's order.
(Chaos seed 707: such an update was handled by the stopped runtime after its bot had left the
conversation store, and the user got an apology instead of the menu.)

Real Postgres and the real inbox; the dispatcher is a recorder, as nothing may be fed to it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.types import Update

from tenant_runtime.arrival import Arrival, Arrivals
from tenant_runtime.config import TenantConfig
from tenant_runtime.inbox import Inbox
from tenant_runtime.runtime import TenantRuntime
from tenant_runtime.services import Services
from tenant_runtime.telegram.fence import ALWAYS_HELD
from tenant_runtime.updates import Outcome
from tests.helpers import add_bare_tenants, wait_until

_ids = itertools.count()


class SlowArrivals(Arrivals):
    """The database round trip of a delivery's claim, held open until the test lets it finish."""

    def __init__(self, pool: asyncpg.Pool, instance: str) -> None:
        super().__init__(pool, instance)
        self.entered = asyncio.Event()
        self.go_on = asyncio.Event()

    async def claim(
        self, config: TenantConfig, update: Update, payload: dict[str, Any], chat_id: int | None
    ) -> Arrival:
        self.entered.set()
        await self.go_on.wait()
        return await super().claim(config, update, payload, chat_id)


class Recorder:
    def __init__(self) -> None:
        self.fed: list[int] = []

    async def feed_update(self, bot: object, update: Any, **kwargs: object) -> None:
        self.fed.append(update.update_id)


def _start(update_id: int) -> dict[str, Any]:
    sender = {"id": 7, "is_bot": False, "first_name": "A"}
    message = {"message_id": update_id, "date": 0, "chat": {"id": 7, "type": "private"}, "from": sender}
    return {"update_id": update_id, "message": message | {"text": "/start"}}


@pytest.fixture
async def runtime(module_pool: asyncpg.Pool) -> AsyncIterator[tuple[TenantRuntime, SlowArrivals, Recorder]]:
    (config,) = await add_bare_tenants(module_pool, f"retired-{next(_ids)}", 1, first_bot_id=881_900_000 + next(_ids))
    arrivals, recorder = SlowArrivals(module_pool, "retired-a"), Recorder()
    services = SimpleNamespace(
        pool=module_pool,
        inbox=Inbox(module_pool, "retired-a"),
        arrivals=arrivals,
        dispatcher=recorder,
        settings=None,
        lease=ALWAYS_HELD,
    )
    session = AiohttpSession()
    yield TenantRuntime(config, cast(Services, services), session), arrivals, recorder
    await session.close()


async def test_an_update_accepted_while_the_slot_stops_is_handed_to_the_successor(
    module_pool: asyncpg.Pool, runtime: tuple[TenantRuntime, SlowArrivals, Recorder]
) -> None:
    stopped, arrivals, recorder = runtime
    request = asyncio.create_task(stopped.handle_webhook(_start(41)))
    await asyncio.wait_for(arrivals.entered.wait(), timeout=5)
    stopped.retire()  # the stop begins while the update is being accepted
    await stopped.drain(1)  # the stop's drain: nothing of this runtime is in hand yet
    arrivals.go_on.set()
    assert await asyncio.wait_for(request, timeout=5) is Outcome.UNAVAILABLE  # Telegram redelivers it
    assert recorder.fed == [], "a stopped runtime handled an update"
    # The claim was given up at once: the successor (this process's next runtime, or another replica)
    # takes Telegram's redelivery now, not after the lease.
    successor = Inbox(module_pool, "retired-b")
    assert await successor.accept(stopped.config.id, 41, 7, _start(41))


async def test_an_update_reaching_a_retired_runtime_is_not_accepted(
    module_pool: asyncpg.Pool, runtime: tuple[TenantRuntime, SlowArrivals, Recorder]
) -> None:
    stopped, arrivals, recorder = runtime
    arrivals.go_on.set()
    stopped.retire()
    assert await stopped.handle_webhook(_start(42)) is Outcome.UNAVAILABLE
    assert recorder.fed == [] and not arrivals.entered.is_set()
    rows = await module_pool.fetchval(
        "SELECT count(*) FROM updates_inbox WHERE tenant_id = $1 AND update_id = 42", stopped.config.id
    )
    assert rows == 0


async def test_a_live_runtime_feeds_the_update(
    module_pool: asyncpg.Pool, runtime: tuple[TenantRuntime, SlowArrivals, Recorder]
) -> None:
    """The same path without a stop: the recorder is fed (so the two tests above can fail)."""
    live, arrivals, recorder = runtime
    arrivals.go_on.set()
    request = asyncio.create_task(live.handle_webhook(_start(43)))
    await wait_until(lambda: recorder.fed == [43], timeout=5, what="the update fed to the dispatcher")
    await asyncio.wait_for(request, timeout=5)
