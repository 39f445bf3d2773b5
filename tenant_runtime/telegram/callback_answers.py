"""An answer to a button press that Telegram no longer takes is dropped, not raised.

Telegram takes `answerCallbackQuery` once, and only for a short while after the press. A press handled
again after a hand-back (its first answer reached Telegram, the reply to it was lost on the way back)
or redelivered after an outage is past that: the answer (the spinner stopping, a toast) can no longer
be shown, but the press itself must still be acted on. Raising there failed the whole handler (chaos
seed 17: a Generate press, handed back during a Telegram cut and handled again, failed on its answer;
the user got an apology and no generation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import AnswerCallbackQuery
from aiogram.methods.base import TelegramType

from shared.logs import get_logger

if TYPE_CHECKING:
    from aiogram.client.bot import Bot
    from aiogram.methods import Response, TelegramMethod

__all__ = ["StaleCallbackAnswers"]

log = get_logger(__name__)

# Telegram's words for it: "query is too old and response timeout expired or query ID is invalid".
_STALE = ("query is too old", "query id is invalid")


class StaleCallbackAnswers(BaseRequestMiddleware):
    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as exc:
            if not isinstance(method, AnswerCallbackQuery) or not any(s in exc.message.lower() for s in _STALE):
                raise
            log.info("button press too old to answer; acted on without an answer", bot_id=bot.id)
            return cast("Response[TelegramType]", True)
