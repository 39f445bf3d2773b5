"""Each bot's Telegram traffic, so bulk sending (broadcasts) stays under Telegram's limit and gives way.

Telegram allows a bot about 30 messages a second. Replies to users are never held back; bulk sends take
what is left of BULK_RATE a second: before each, `BulkPacer.turn` waits until the bot's calls of the last
second (replies and bulk alike) leave room. A session middleware counts every call; bulk calls are made
inside `bulk()`, which also tells the 429 middleware not to sleep on them (the broadcast sender pauses
that bot's broadcast itself, without holding a claimed recipient).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram.client.bot import Bot
    from aiogram.methods import Response, TelegramMethod

__all__ = ["BULK_RATE", "TRAFFIC", "BulkPacer", "RecentCalls", "TrafficMeter", "bulk", "is_bulk"]

BULK_RATE = 25  # calls a second per bot, replies included, that bulk sending may bring the bot up to
WINDOW_S = 1.0

_BULK: ContextVar[bool] = ContextVar("telegram_bulk", default=False)


@contextmanager
def bulk() -> Iterator[None]:
    """Calls made inside are bulk sends (a broadcast), not replies."""
    token = _BULK.set(True)
    try:
        yield
    finally:
        _BULK.reset(token)


def is_bulk() -> bool:
    return _BULK.get()


class RecentCalls:
    """Calls per bot in the last second (a sliding window). Bounded: a bot's entries are dropped as they
    age, and a bot with none left is forgotten."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        self._window = window_s
        self._calls: dict[int, deque[float]] = {}

    def note(self, bot_id: int, now: float | None = None) -> None:
        self._calls.setdefault(bot_id, deque()).append(time.monotonic() if now is None else now)

    def count(self, bot_id: int, now: float | None = None) -> int:
        calls = self._calls.get(bot_id)
        if not calls:
            return 0
        horizon = (time.monotonic() if now is None else now) - self._window
        while calls and calls[0] <= horizon:
            calls.popleft()
        if not calls:
            del self._calls[bot_id]
            return 0
        return len(calls)

    def wait_for_room(self, bot_id: int, limit: int, now: float | None = None) -> float:
        """Seconds until the bot has made fewer than `limit` calls in the window (0: room now)."""
        now = time.monotonic() if now is None else now
        count = self.count(bot_id, now)
        if count < limit:
            return 0.0
        calls = self._calls[bot_id]
        return calls[count - limit] + self._window - now


TRAFFIC = RecentCalls()
"""Every call each bot made in the last second, replies and bulk alike (the session's middleware)."""


class TrafficMeter(BaseRequestMiddleware):
    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        TRAFFIC.note(bot.id)
        return await make_request(bot, method)


class BulkPacer:
    """At most `rate` calls a second per bot, counting the bot's replies first: bulk sends wait for room.
    They are also spread evenly (1/rate apart), never sent in a burst to fill the second: a burst could
    meet a burst of replies, and Telegram counts by arrival."""

    def __init__(self, traffic: RecentCalls = TRAFFIC, rate: int = BULK_RATE) -> None:
        self._traffic = traffic
        self._rate = rate
        self._gap = 1.0 / rate
        self._last: dict[int, float] = {}  # bot id -> monotonic time of its last bulk turn

    def wait_s(self, bot_id: int, now: float) -> float:
        spacing = self._last.get(bot_id, float("-inf")) + self._gap - now
        return max(spacing, self._traffic.wait_for_room(bot_id, self._rate, now))

    async def turn(self, bot_id: int) -> None:
        """Return when this bot may make one more bulk call (the call itself is counted by the meter)."""
        while True:
            now = time.monotonic()
            wait = self.wait_s(bot_id, now)
            if wait <= 0:
                self._last[bot_id] = now
                return
            await asyncio.sleep(wait)
