"""/start, /help, /cancel, and the answers to anything the other routers did not take."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from supervisor.onboarding.flow import NewShop
from supervisor.onboarding.texts import language_of, text

__all__ = ["commands", "fallback"]

commands = Router(name="onboarding-commands")
commands.message.filter(F.chat.type == "private")
fallback = Router(name="onboarding-fallback")  # included last
fallback.message.filter(F.chat.type == "private")


@commands.message(CommandStart())
@commands.message(Command("help"))
async def start(message: Message) -> None:
    await message.answer(text(language_of(message.from_user.language_code if message.from_user else None), "start"))


@commands.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext) -> None:
    lang = language_of(message.from_user.language_code if message.from_user else None)
    if await state.get_state() is None:
        await message.answer(text(lang, "nothing_to_cancel"))
        return
    await state.clear()
    await message.answer(text(lang, "cancelled"))


@fallback.message(NewShop.language)
@fallback.message(NewShop.confirm)
async def buttons_expected(message: Message) -> None:
    await message.answer(
        text(language_of(message.from_user.language_code if message.from_user else None), "use_buttons")
    )


@fallback.message(F.text)
async def unknown_text(message: Message) -> None:
    """Text no step took: outside a flow, or a command the bot does not have."""
    lang = language_of(message.from_user.language_code if message.from_user else None)
    await message.answer(text(lang, "unknown"))


@fallback.message()
async def not_text(message: Message, state: FSMContext) -> None:
    """A photo, a sticker, a file: mid-flow it is not an answer; outside a flow it is not a command."""
    lang = language_of(message.from_user.language_code if message.from_user else None)
    await message.answer(text(lang, "not_text" if await state.get_state() else "unknown"))


@fallback.callback_query()
async def stale_button(query: CallbackQuery) -> None:
    """A button of a step that is over (the flow was cancelled, finished, or another step is current)."""
    await query.answer(text(language_of(query.from_user.language_code), "expired"), show_alert=True)
