"""Commands that work from any state: /start (with deep links), /cancel, /balance, /history, /help."""

from __future__ import annotations

import contextlib

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from shared.logs import get_logger
from tenant_runtime.config import Language
from tenant_runtime.generation.jobs import UNFINISHED
from tenant_runtime.telegram import keyboards, screens
from tenant_runtime.telegram.callback_data import HistoryCb, HistoryItemCb, MenuCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.filters import COMMAND
from tenant_runtime.telegram.handlers.promo import PROMO_PREFIX, redeem_and_tell
from tenant_runtime.telegram.money_texts import money_line
from tenant_runtime.telegram.texts import text

log = get_logger(__name__)
router = Router(name="common")


@router.message(CommandStart())
async def start(message: Message, command: CommandObject, ctx: Ctx, state: FSMContext, raw_state: str | None) -> None:
    if raw_state is not None:  # aiogram already read the state: skip two writes for the common idle case
        await state.clear()
    services, tenant = ctx.services, ctx.tenant
    payload = (command.args or "").strip()
    # A referral link counts in the user's first contact (not only on the update that created the user:
    # a retry after a database error must still pay it); the bonus itself is keyed by the new user.
    if ctx.user.first_contact and payload.startswith(screens.REFERRAL_PREFIX):
        referrer = ctx.user.referred_by or await services.users.set_referrer(
            tenant.id, ctx.user.user_id, payload.removeprefix(screens.REFERRAL_PREFIX)
        )
        if referrer is not None and tenant.referral_bonus_invited > 0:
            amount = tenant.referral_bonus_invited
            if await services.ledger.grant_invited_bonus(tenant.id, ctx.user.user_id, referrer, amount):
                await message.answer(ctx.t("invite.welcome", amount=ctx.money(amount)))
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
    if payload.startswith(PROMO_PREFIX):
        await redeem_and_tell(message, ctx, payload.removeprefix(PROMO_PREFIX))
    await screens.show(message, await screens.main_menu(ctx), edit=False)


@router.message(Command("cancel"))
async def cancel(message: Message, ctx: Ctx, state: FSMContext) -> None:
    """Cancels the wizard. A generation already started cannot be stopped: the user is told so, with
    what will happen to its money as the ledger has it."""
    drafting = await state.get_state() is not None
    await state.clear()
    jobs = ctx.services.jobs
    running = [job for job in await jobs.recent(ctx.tenant.id, ctx.user.user_id, 10, 0) if job.status in UNFINISHED]
    lines = [ctx.t("cancel.draft")] if running and drafting else []
    for job in running:
        spec = ctx.services.registry.get(job.model)
        money = money_line(ctx.lang, await jobs.money(job))
        lines.append(ctx.t("cancel.running", title=screens.title(ctx, spec) if spec else job.model, money=money))
    await message.answer("\n\n".join(lines) if lines else ctx.t("wizard.cancelled"))
    await screens.show(message, await screens.main_menu(ctx), edit=False)


@router.message(Command("balance"))
async def balance(message: Message, ctx: Ctx) -> None:
    await screens.show(message, await screens.balance(ctx), edit=False)


@router.message(Command("history"))
async def history(message: Message, ctx: Ctx) -> None:
    await screens.show(message, await screens.history(ctx, 0), edit=False)


@router.message(Command("help"))
async def help_(message: Message, ctx: Ctx) -> None:
    lines = [screens.help_text(ctx), ctx.t("referral_link", link=await screens.referral_link(ctx))]
    await message.answer("\n\n".join(lines), reply_markup=keyboards.with_support(ctx))


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
    elif action == "invite":
        await screens.show(message, await screens.invite(ctx), edit=True)
    elif action == "help":
        await screens.show(message, (screens.help_text(ctx), keyboards.with_support(ctx)), edit=True)
    elif action == "lang":
        lang: Language = "en" if ctx.lang == "ru" else "ru"
        await ctx.services.users.set_language(ctx.tenant.id, ctx.user.user_id, lang)
        switched = Ctx(runtime=ctx.runtime, user=ctx.user, lang=lang, correlation_id=ctx.correlation_id)
        await screens.show(message, await screens.main_menu(switched), edit=True)
    elif action == "topup":
        from tenant_runtime.telegram.handlers.payments import topup_screen

        await screens.show(message, topup_screen(ctx), edit=True)


@router.callback_query(HistoryItemCb.filter())
async def history_item(query: CallbackQuery, callback_data: HistoryItemCb, ctx: Ctx) -> None:
    job = await ctx.services.jobs.get(ctx.tenant.id, callback_data.job)
    if job is None or job.user_id != ctx.user.user_id or not isinstance(query.message, Message):
        await query.answer(ctx.t("stale"))
        return
    await query.answer()
    # A message of its own: its Repeat is a request of its own (the repeat key names the message).
    await screens.show(query.message, screens.job_card(ctx, job), edit=False)


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
