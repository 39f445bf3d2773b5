"""One broadcast message to one chat: text, photo or video, with its button (also the admin's preview)."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from tenant_runtime.broadcasts.model import Content, ContentKind

__all__ = ["SEND_TIMEOUT_S", "send_content"]

SEND_TIMEOUT_S = 15


def _markup(content: Content) -> InlineKeyboardMarkup | None:
    if content.button_text is None or content.button_url is None:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=content.button_text, url=content.button_url)]]
    )


async def send_content(bot: Bot, chat_id: int, content: Content) -> None:
    markup = _markup(content)
    if content.kind is ContentKind.TEXT:
        assert content.body is not None
        await bot.send_message(chat_id, content.body, reply_markup=markup, request_timeout=SEND_TIMEOUT_S)
    elif content.kind is ContentKind.PHOTO:
        assert content.file_id is not None
        await bot.send_photo(
            chat_id, content.file_id, caption=content.body, reply_markup=markup, request_timeout=SEND_TIMEOUT_S
        )
    else:
        assert content.file_id is not None
        await bot.send_video(
            chat_id, content.file_id, caption=content.body, reply_markup=markup, request_timeout=SEND_TIMEOUT_S
        )
