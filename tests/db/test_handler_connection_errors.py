"""An update whose handling meets a broken database connection is handed back for a retry, never
answered with an apology and closed as failed: the failure was the connection's, not the update's.

Chaos seed 7: a pool session terminated by the server left a pooled connection in a protocol state
asyncpg did not expect, and the next statement on it raised `InternalClientError` ("cannot switch to
state 12; another operation (2) is in progress"). The handler's error was taken for the update's own
fault: the user got an apology, the update was closed as failed, and the reply was lost.

Real Postgres and the real inbox; the dispatcher raises what the broken connection raised."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
import pytest
from aiogram.client.session.aiohttp import AiohttpSession

from tenant_runtime.arrival import Arrivals
from tenant_runtime.inbox import Inbox
from tenant_runtime.runtime import TenantRuntime
from tenant_runtime.services import Services
from tenant_runtime.telegram.fence import ALWAYS_HELD
from tenant_runtime.updates import Outcome
from tests.helpers import add_bare_tenants

_ids = itertools.count()


class BrokenConnection:
    """Feeds nothing: the first statement of every handler fails the way a broken connection fails."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.fed: list[int] = []

    async def feed_update(self, bot: object, update: Any, **kwargs: object) -> None:
        self.fed.append(update.update_id)
        raise self.error


def _balance(update_id: int) -> dict[str, Any]:
    sender = {"id": 7, "is_bot": False, "first_name": "A"}
    message = {"message_id": update_id, "date": 0, "chat": {"id": 7, "type": "private"}, "from": sender}
    return {"update_id": update_id, "message": message | {"text": "/balance"}}


@pytest.fixture
async def tenant(module_pool: asyncpg.Pool) -> AsyncIterator[Any]:
    (config,) = await add_bare_tenants(
        module_pool, f"brokenconn-{next(_ids)}", 1, first_bot_id=882_100_000 + next(_ids)
    )
    yield config


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    ],
    ids=["protocol-state", "terminated", "closed"],
)
async def test_a_broken_connection_hands_the_update_back(
    module_pool: asyncpg.Pool, tenant: Any, error: Exception
) -> None:
    dispatcher = BrokenConnection(error)
    services = SimpleNamespace(
        pool=module_pool,
        inbox=Inbox(module_pool, "brokenconn-a"),
        arrivals=Arrivals(module_pool, "brokenconn-a"),
        dispatcher=dispatcher,
        settings=None,
        lease=ALWAYS_HELD,
    )
    session = AiohttpSession(api=_nowhere())
    try:
        runtime = TenantRuntime(tenant, cast(Services, services), session)
        assert await runtime.handle_webhook(_balance(51)) is Outcome.UNAVAILABLE  # Telegram redelivers it
    finally:
        await session.close()
    assert dispatcher.fed == [51]
    status = await module_pool.fetchval(
        "SELECT status FROM updates_inbox WHERE tenant_id = $1 AND update_id = 51", tenant.id
    )
    assert status == "processing", "closed as if the update itself had failed: its reply is lost"


def _nowhere() -> Any:
    """A Bot API base on a closed loopback port: an apology or notice could not leave the machine."""
    import socket

    from aiogram.client.telegram import TelegramAPIServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return TelegramAPIServer.from_base(f"http://127.0.0.1:{port}")
