"""Telegram's 429 for one bot makes only that request wait `retry_after`, then retries it.

Bulk sends (`traffic.bulk()`) are not retried here: the broadcast sender pauses that bot's broadcast itself.

aiogram raises TelegramRetryAfter and leaves the rest to the caller; without this, a reply during a
burst would be lost and the handler would fail. Other bots, sharing the same session, never wait.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramType

from shared.logs import get_logger
from tenant_runtime.telegram.traffic import is_bulk

if TYPE_CHECKING:
    from aiogram.client.bot import Bot
    from aiogram.methods import Response, TelegramMethod

log = get_logger(__name__)

MAX_WAIT_SECONDS = 30  # beyond this the caller decides (e.g. the job poller retries later)
ATTEMPTS = 3


class RetryAfterMiddleware(BaseRequestMiddleware):
    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        attempt = 1
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt >= ATTEMPTS or exc.retry_after > MAX_WAIT_SECONDS or is_bulk():
                    raise
                attempt += 1
                log.warning(
                    "telegram rate limit: waiting",
                    bot_id=bot.id,
                    method=type(method).__name__,
                    retry_after=exc.retry_after,
                )
                await asyncio.sleep(exc.retry_after)
