"""Telegram's answers to refundStarPayment, over real HTTP: a reply that is not the Bot API's JSON (an
HTML 502 from a proxy) is "no answer yet", never an exception that ends the refund settler."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from tenant_runtime.billing.refunds import Answer, _ask
from tests.helpers import serving


@pytest.fixture
async def proxy_502() -> AsyncIterator[str]:
    async def html(_request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html><body>Bad Gateway</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    async with serving(app) as url:
        yield url


async def test_a_non_json_reply_is_no_answer_yet(proxy_502: str) -> None:
    session = AiohttpSession(api=TelegramAPIServer.from_base(proxy_502))
    bot = Bot("123456:" + "a" * 35, session=session)
    try:
        answer, detail = await _ask(bot, 42, "charge-1")
    finally:
        await session.close()
    assert answer is Answer.UNKNOWN, detail
