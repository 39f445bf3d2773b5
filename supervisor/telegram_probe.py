"""The process asks Telegram whether it can still reach it, after a silence (see `Reachability`).

The question goes on its own small session, not the tenants' shared one: there it would queue behind
long polls for a free connection (each `getUpdates` holds one for 25 s), and a question that waited
in a queue for its whole timeout says nothing about the path. No retry-after middleware either: a 429
is an answer, not something to sleep on.

Only a question that ran out its whole timeout, with nothing else answered meanwhile and the event
loop running all along, is a lost path (`Reachability.unanswered`). A quick failure (a refused
connection, a reset of a stale keep-alive connection) is counted like any call's failure: three in a
row make the process unable, one does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError

from shared.logs import get_logger
from tenant_runtime.telegram.reachability import PROBE_TIMEOUT_SECONDS, Reachability

__all__ = ["TelegramProbe"]

log = get_logger(__name__)

_RAN_OUT = PROBE_TIMEOUT_SECONDS - 0.2  # a failure this late is the timeout, not a refusal or reset


class TelegramProbe:
    def __init__(self, api_base: str, reachability: Reachability, *, stalled_since: Callable[[float], bool]) -> None:
        self._reachability = reachability
        self._stalled_since = stalled_since  # a loop that stood still fires timeouts on answers it has
        self._session = AiohttpSession(api=TelegramAPIServer.from_base(api_base), limit=2)
        self._session.middleware(reachability)  # its answers and failures count like any call's
        self._bot: Bot | None = None

    async def ask(self, token: str) -> None:
        """getMe with this bot's token; the verdict goes to `Reachability`, never raised."""
        if self._bot is None or self._bot.token != token:
            self._bot = Bot(token, session=self._session)
        asked_at = time.monotonic()
        try:
            await self._bot.get_me(request_timeout=PROBE_TIMEOUT_SECONDS)
        except TelegramNetworkError:
            if time.monotonic() - asked_at >= _RAN_OUT and not self._stalled_since(asked_at):
                self._reachability.unanswered(asked_at)
        except TelegramAPIError:
            pass  # one bot's answer (a 401, a 429, a 5xx): the path works, and `Reachability` saw it
        except Exception as exc:  # a body that is not the Bot API's (a proxy's error page): no verdict
            log.debug("Telegram probe got no usable answer", error=type(exc).__name__)

    async def close(self) -> None:
        await self._session.close()
