"""Commands that work from any state: /start (with deep links), /cancel, /balance, /history, /help."""

from __future__ import annotations

import contextlib

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from shared.logs import get_logger
from tenant_runtime import keyboards, screens
from tenant_runtime.callbacks import HistoryCb, MenuCb
from tenant_runtime.config import Language
from tenant_runtime.context import Ctx
from tenant_runtime.filters import COMMAND
from tenant_runtime.texts import text

log = get_logger(__name__)
router = Router(name="common")


@router.message(CommandStart())
async def start(message: Message, command: CommandObject, ctx: Ctx, state: FSMContext, raw_state: str | None) -> None:
    if raw_state is not None:  # aiogram already read the state: skip two writes for the common idle case
        await state.clear()
    services, tenant = ctx.services, ctx.tenant
    payload = (command.args or "").strip()
    if ctx.user.is_new and payload.startswith("ref_"):
        referrer = await services.users.set_referrer(tenant.id, ctx.user.user_id, payload[4:])
        if referrer is not None and tenant.referral_bonus > 0:
            granted = await services.ledger.grant_referral_bonus(
                tenant.id, referrer, ctx.user.user_id, tenant.referral_bonus
            )
            if granted:
                referrer_user = await services.users.get(tenant.id, referrer)
                lang = referrer_user.language if referrer_user else tenant.default_language
                # The referrer may have blocked the bot: the new user's /start must not fail for it.
                with contextlib.suppress(TelegramAPIError):
                    await message.bot.send_message(  # type: ignore[union-attr]
                        referrer, text(lang, "referral_bonus", amount=ctx.money(tenant.referral_bonus))
                    )
    if ctx.user.is_new and tenant.welcome_bonus > 0:
        await message.answer(ctx.t("welcome_bonus", amount=ctx.money(tenant.welcome_bonus)))
    await screens.show(message, await screens.main_menu(ctx), edit=False)


@router.message(Command("cancel"))
async def cancel(message: Message, ctx: Ctx, state: FSMContext) -> None:
    await state.clear()
    await message.answer(ctx.t("wizard.cancelled"))
    await screens.show(message, await screens.main_menu(ctx), edit=False)


@router.message(Command("balance"))
async def balance(message: Message, ctx: Ctx) -> None:
    await screens.show(message, await screens.balance(ctx), edit=False)


@router.message(Command("history"))
async def history(message: Message, ctx: Ctx) -> None:
    await screens.show(message, await screens.history(ctx, 0), edit=False)


@router.message(Command("help"))
async def help_(message: Message, ctx: Ctx) -> None:
    me = await message.bot.me()  # type: ignore[union-attr]
    lines = [
        ctx.t("help"),
        ctx.t("referral_link", link=f"https://t.me/{me.username}?start=ref_{ctx.user.referral_code}"),
    ]
    await message.answer("\n\n".join(lines), reply_markup=keyboards.to_menu(ctx))


@router.callback_query(MenuCb.filter())
async def menu(query: CallbackQuery, callback_data: MenuCb, ctx: Ctx, state: FSMContext) -> None:
    message = query.message
    if not isinstance(message, Message):
        await query.answer()
        return
    action = callback_data.action
    await query.answer()
    if action == "main":
        await state.clear()
        await screens.show(message, await screens.main_menu(ctx), edit=True)
    elif action == "balance":
        await screens.show(message, await screens.balance(ctx), edit=True)
    elif action == "history":
        await screens.show(message, await screens.history(ctx, 0), edit=True)
    elif action == "help":
        await screens.show(message, (ctx.t("help"), keyboards.to_menu(ctx)), edit=True)
    elif action == "lang":
        lang: Language = "en" if ctx.lang == "ru" else "ru"
        await ctx.services.users.set_language(ctx.tenant.id, ctx.user.user_id, lang)
        switched = Ctx(runtime=ctx.runtime, user=ctx.user, lang=lang, correlation_id=ctx.correlation_id)
        await screens.show(message, await screens.main_menu(switched), edit=True)
    elif action == "topup":
        from tenant_runtime.handlers.payments import topup_screen

        await screens.show(message, topup_screen(ctx), edit=True)


@router.callback_query(HistoryCb.filter())
async def history_page(query: CallbackQuery, callback_data: HistoryCb, ctx: Ctx) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await screens.show(query.message, await screens.history(ctx, max(0, callback_data.page)), edit=True)


@router.message(Command("lang", "language"))
async def language(message: Message, ctx: Ctx) -> None:
    lang: Language = "en" if ctx.lang == "ru" else "ru"
    await ctx.services.users.set_language(ctx.tenant.id, ctx.user.user_id, lang)
    await message.answer(text(lang, "language.set"))


@router.message(COMMAND)
async def unknown_command(message: Message, ctx: Ctx) -> None:
    """Registered after every command router (see build_routers); /admin of a non-admin lands here too."""
    await message.answer(ctx.t("unknown_command"), reply_markup=keyboards.to_menu(ctx))
