"""The shared aiogram session: pydantic's response classes stay alive between garbage collections, and a
call Telegram never answers (a partition) fails well before Telegram stops waiting for the webhook that
carried the update, so the update is handed back in time for its redelivery or the bot's next owner
(found by chaos seed 3: a reply hung for aiogram's default 60 s)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
import weakref

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.methods import Response
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, User, WebhookInfo

from sandbox.telegram.server import FakeTelegram
from tenant_runtime.telegram.session import build_session


async def test_response_classes_survive_a_full_collection() -> None:
    session = build_session("http://127.0.0.1:9", limit=4)
    try:
        for kind in (Message, User, WebhookInfo, bool):
            ref = weakref.ref(Response[kind])  # type: ignore[valid-type]
            gc.collect()
            # Without the pin, pydantic's weak cache loses the class here and rebuilds it per call.
            assert ref() is not None, kind
    finally:
        await session.close()


async def test_an_unanswered_call_fails_before_telegram_stops_waiting_for_the_webhook(blackhole: str) -> None:
    telegram_waits = inspect.signature(FakeTelegram).parameters["webhook_timeout"].default
    session = build_session(blackhole, limit=4)
    bot = Bot("123456:AAblackhole", session=session)
    started = time.monotonic()
    try:
        with pytest.raises(TelegramNetworkError):
            await asyncio.wait_for(bot.send_message(1, "hi"), timeout=telegram_waits)
    finally:
        await session.close()
    assert time.monotonic() - started < telegram_waits


async def test_a_press_answered_already_is_acted_on_not_failed() -> None:
    """Telegram takes one answer per press, for a short while: a press handled again after a hand-back
    (chaos seed 17) must not fail on its answer. Any other Bad Request still raises."""
    token = "424242:stale-press-abcdefghijklmnopqrstuvwx"
    async with FakeTelegram() as fake:
        await fake.register_bot(token, username="press_bot")
        await fake.send_text(token, 5150, "/start")  # the chat exists
        session = build_session(fake.base_url, limit=4)
        bot = Bot(token, session=session)
        try:
            menu = await bot.send_message(5150, "menu", reply_markup=_one_button("go"))
            update = await fake.press_button(token, 5150, menu.message_id, "go")
            assert update.kind == "callback_query"
            query_id = str(update.payload["id"])
            assert await bot.answer_callback_query(query_id) is True
            assert await bot.answer_callback_query(query_id, text="again") is True  # too old: dropped
            with pytest.raises(TelegramBadRequest):
                await bot.edit_message_text("edited", chat_id=5150, message_id=987_654)  # no such message
        finally:
            await session.close()


def _one_button(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=data, callback_data=data)]])
