"""Work done under a tenant's lock stops once this process cannot confirm it still holds the lock.

A process that froze (SIGSTOP, a stalled VM, a long GC pause) wakes up believing it still owns its
tenants, while the other replicas have fenced it and taken them over. Until its locker learns
otherwise, its in-flight handlers, pollers and deliveries would answer users a second time. So Bot
API calls made for owned work (an update being handled, a poll, a job tick) are refused when the
lease is unconfirmed (the last good lock beat is older than the trust window, well before peers may
take over: they fence after three) or when the locker stepped down since the work began (the epoch
moved on: a new lock session holds whatever it holds, not what this work was started under).
Calls outside owned work (a standby runtime's getMe, "the service is unavailable" during a database
outage, the apology after a failed handler) are never refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram.client.bot import Bot
    from aiogram.methods import Response, TelegramMethod

__all__ = ["ALWAYS_HELD", "Lease", "LeaseFence", "LeaseLapsed", "owned_work"]


@dataclass(frozen=True)
class Lease:
    """The process's hold on its tenants, as the locker sees it."""

    confirmed: Callable[[], bool]
    epoch: Callable[[], int]


ALWAYS_HELD = Lease(confirmed=lambda: True, epoch=lambda: 0)  # no locker (tools, in-process tests)


@dataclass(frozen=True)
class _Owned:
    lease: Lease
    epoch: int


_OWNED: ContextVar[_Owned | None] = ContextVar("owned_work", default=None)


class LeaseLapsed(TelegramNetworkError):
    """The call was not sent: this process's hold on the bot is unconfirmed. A network-class error, so
    every caller treats it as "cannot answer from here now" (hand the update back, tell the user later)."""


@contextmanager
def owned_work(lease: Lease) -> Iterator[None]:
    """Mark the Bot API calls made inside (and in tasks started inside) as work for a held tenant,
    valid while `lease` is confirmed and has not stepped down since now."""
    token = _OWNED.set(_Owned(lease, lease.epoch()))
    try:
        yield
    finally:
        _OWNED.reset(token)


class LeaseFence(BaseRequestMiddleware):
    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        owned = _OWNED.get()
        if owned is not None and (owned.lease.epoch() != owned.epoch or not owned.lease.confirmed()):
            raise LeaseLapsed(method, "this process's hold on the bot is unconfirmed; not sent")
        return await make_request(bot, method)
