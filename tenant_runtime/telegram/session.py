"""The one aiogram HTTP session that every tenant's `Bot` shares."""

from __future__ import annotations

import aiogram.methods
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.methods import Response, TelegramMethod
from pydantic import BaseModel

from tenant_runtime.telegram.callback_answers import StaleCallbackAnswers
from tenant_runtime.telegram.retry_after import RetryAfterMiddleware
from tenant_runtime.telegram.traffic import TrafficMeter

# aiogram validates every reply from Telegram as `Response[method.__returning__]`. pydantic caches
# parametrised generic classes only weakly, so a garbage collection dropped them and the next call
# rebuilt the class: milliseconds each time, a tenth of the CPU of a busy process. Holding them here
# keeps pydantic's cache warm for the life of the process.
_PINNED: list[type[BaseModel]] = []

# A Bot API call that takes longer was lost on the way (a partition, a hung proxy). aiogram's default
# (60 s) kept a reply hanging long after Telegram gave up on the webhook; failing sooner hands the update
# back while its redelivery or the next owner can still answer it. Long polls and uploads set their own.
CALL_TIMEOUT_SECONDS = 8


def pin_response_models() -> None:
    if _PINNED:
        return
    returning: set[object] = set()
    for name in aiogram.methods.__all__:
        method = getattr(aiogram.methods, name)
        if isinstance(method, type) and issubclass(method, TelegramMethod) and method is not TelegramMethod:
            returning.add(method.__returning__)
    _PINNED.extend(Response[kind] for kind in returning)  # type: ignore[valid-type]


def build_session(api_base: str, *, limit: int) -> AiohttpSession:
    pin_response_models()
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base), limit=limit, timeout=CALL_TIMEOUT_SECONDS)
    session.middleware(TrafficMeter())  # counted once per call, before any retry
    session.middleware(RetryAfterMiddleware())
    session.middleware(StaleCallbackAnswers())
    return session
