"""Whether this process can reach Telegram at all, learnt from every Bot API call on the shared session.

Telegram is one service for every bot: when calls fail at the network (connection refused, reset,
timeouts) and none succeeds, the cause is this process's path to Telegram, not a tenant. Any answer
from Telegram, even an error (a 5xx or 401 for one bot), proves the path works. A process in
that state is not able to serve any bot: it publishes no ability and releases its locks, so the
replicas that can reach Telegram serve the tenants. The first call that gets through makes it able
again (restarting runtimes keep calling getMe, so that comes by itself).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.methods.base import TelegramType

from shared.logs import get_logger
from tenant_runtime.telegram.fence import LeaseLapsed

if TYPE_CHECKING:
    from aiogram.client.bot import Bot
    from aiogram.methods import Response, TelegramMethod

__all__ = ["Reachability"]

log = get_logger(__name__)

FAILURES_TO_GIVE_UP = 3  # network failures in a row, with no success in between


class Reachability(BaseRequestMiddleware):
    def __init__(self) -> None:
        self._failures = 0
        self._since: float | None = None  # monotonic time Telegram became unreachable

    @property
    def reachable(self) -> bool:
        return self._failures < FAILURES_TO_GIVE_UP

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        try:
            response = await make_request(bot, method)
        except LeaseLapsed:
            raise  # never sent: says nothing about the path to Telegram
        except TelegramNetworkError:
            self._failed()
            raise
        except TelegramAPIError:
            # A 5xx or 4xx is one bot's answer: Telegram was reached, the process's path works.
            self._succeeded()
            raise
        self._succeeded()
        return response

    def _failed(self) -> None:
        self._failures += 1
        if self._failures == FAILURES_TO_GIVE_UP:
            self._since = time.monotonic()
            log.warning("Telegram unreachable from this process: its tenants go to the replicas that can serve")

    def _succeeded(self) -> None:
        if not self.reachable and self._since is not None:
            log.info("Telegram reachable again", after_s=round(time.monotonic() - self._since, 1))
        self._failures = 0
        self._since = None
