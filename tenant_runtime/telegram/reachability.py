"""Whether this process can reach Telegram at all, learnt from every Bot API call on the shared session.

Telegram is one service for every bot: when calls fail at the network (connection refused, reset,
timeouts) and none succeeds, the cause is this process's path to Telegram, not a tenant. Any answer
from Telegram, even an error (a 5xx or 401 for one bot), proves the path works. A process in
that state is not able to serve any bot: it publishes no ability and releases its locks, so the
replicas that can reach Telegram serve the tenants. The first call that gets through makes it able
again (restarting runtimes keep calling getMe, so that comes by itself).

Counting failures alone is too slow when the path is blackholed (packets dropped, nothing refused):
each call fails only at its timeout, and a bot with no traffic makes no calls at all (chaos seed 404: a
replica kept its tenants for over 10 s after its path went dark). So silence is judged too: after
QUIET_SECONDS without any answer the process asks Telegram directly (`supervisor/telegram_probe.py`),
and a question that gets no answer within PROBE_TIMEOUT_SECONDS, while nothing else was answered
either, makes the process unable at once (`unanswered`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import ClientDecodeError, TelegramAPIError, TelegramEntityTooLarge, TelegramNetworkError
from aiogram.methods.base import TelegramType

from shared.logs import get_logger
from tenant_runtime.telegram.fence import LeaseLapsed

if TYPE_CHECKING:
    from aiogram.client.bot import Bot
    from aiogram.methods import Response, TelegramMethod

__all__ = ["FAILURES_TO_GIVE_UP", "PROBE_TIMEOUT_SECONDS", "QUIET_SECONDS", "Reachability"]

log = get_logger(__name__)

FAILURES_TO_GIVE_UP = 3  # network failures in a row, with no success in between
# Detection within ~QUIET + PROBE + a probe tick (under 7 s), so a peer serves the tenants inside the
# 10 s ownership bound. A loopback or datacenter getMe answers in milliseconds; 3 s of silence is no
# slow answer but a lost path.
QUIET_SECONDS = 2.5
PROBE_TIMEOUT_SECONDS = 3  # whole seconds: aiogram types request_timeout as int


class Reachability(BaseRequestMiddleware):
    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._on_change = on_change  # the locker re-evaluates now, not at its next beat
        self._failures = 0
        self._since: float | None = None  # monotonic time Telegram became unreachable
        self._answered_at = time.monotonic()  # of Telegram's last answer to any call

    @property
    def reachable(self) -> bool:
        return self._failures < FAILURES_TO_GIVE_UP

    def quiet_for(self) -> float:
        """Seconds since Telegram last answered any call of this process."""
        return time.monotonic() - self._answered_at

    def unanswered(self, asked_at: float) -> None:
        """A question asked at `asked_at` (monotonic) failed at the network, and no call got an answer
        since it was asked: the path is down, whatever the count of failures says."""
        if self.reachable and self._answered_at < asked_at:
            self._failures = FAILURES_TO_GIVE_UP
            self._gave_up()

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        try:
            response = await make_request(bot, method)
        except LeaseLapsed:
            raise  # never sent: says nothing about the path to Telegram
        except TelegramEntityTooLarge:
            self._succeeded()  # a 413: Telegram answered (aiogram files it under network errors)
            raise
        except (TelegramNetworkError, ClientDecodeError):
            self._failed()  # no answer, or a body that is not the Bot API's (a proxy's error page)
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
            self._gave_up()

    def _gave_up(self) -> None:
        self._since = time.monotonic()
        log.warning("Telegram unreachable from this process: its tenants go to the replicas that can serve")
        self._on_change()

    def _succeeded(self) -> None:
        self._answered_at = time.monotonic()
        was_unreachable = not self.reachable
        self._failures = 0
        if was_unreachable:
            after = round(self._answered_at - self._since, 1) if self._since is not None else None
            log.info("Telegram reachable again", after_s=after)
            self._since = None
            self._on_change()
