"""Zero silence: anything no other handler took still gets an answer."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from tenant_runtime.telegram import keyboards, screens
from tenant_runtime.telegram.context import Ctx

router = Router(name="fallback")


@router.callback_query()
async def stale_button(query: CallbackQuery, ctx: Ctx) -> None:
    await query.answer(ctx.t("stale"))
    if isinstance(query.message, Message):
        await query.message.answer(ctx.t("stale"))
        await screens.show(query.message, await screens.main_menu(ctx), edit=False)


@router.message()
async def anything_else(message: Message, ctx: Ctx) -> None:
    await message.answer(ctx.t("hint"), reply_markup=keyboards.main_menu(ctx))
