"""/admin for the tenant's admins only: stats, user lookup, balance adjustments, models, markup, refunds.

Every filter checks the admin list of *this* tenant; a non-admin's /admin falls through to the
ordinary "unknown command" reply, so the command's existence is not revealed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from decimal import Decimal, InvalidOperation

from aiogram import Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject

from shared import metrics, strict
from shared.logs import get_logger
from tenant_runtime.analytics import Period
from tenant_runtime.billing.ledger import InsufficientFunds, LedgerError, RefundRefused
from tenant_runtime.billing.refunds import Answer, ask_telegram
from tenant_runtime.config import TenantConfig
from tenant_runtime.kie.errors import KieError
from tenant_runtime.moderation import bans
from tenant_runtime.moderation.audit import AuditAction
from tenant_runtime.moderation.bans import MAX_REASON, BanOutcome
from tenant_runtime.telegram import keyboards, screens
from tenant_runtime.telegram.callback_data import AdminCb, AdminUserCb, BanCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.filters import PLAIN_TEXT
from tenant_runtime.telegram.stats_screen import stats_screen
from tenant_runtime.tenant_settings import set_markup, toggle_model
from tenant_runtime.users import BotUser, is_name_query, is_user_query

log = get_logger(__name__)
router = Router(name="admin")


async def is_admin(_event: TelegramObject, ctx: Ctx) -> bool:
    return ctx.is_admin


router.message.filter(is_admin)
router.callback_query.filter(is_admin)


class Admin(StatesGroup):
    user = State()
    ban_reason = State()  # data: {"target": user id, "ban": bool}
    credit = State()
    debit = State()
    markup = State()
    refund = State()


async def _stats(ctx: Ctx) -> str:
    services, tenant = ctx.services, ctx.tenant
    jobs = await services.jobs.today(tenant.id)
    revenue = await services.ledger.committed_today(tenant.id)
    credits = "—"
    if tenant.kie_api_key:
        with contextlib.suppress(KieError, asyncio.TimeoutError):
            credits = str(await asyncio.wait_for(services.kie.credit(tenant.kie_api_key), timeout=5))
    return ctx.t(
        "admin.title",
        users=await services.users.count(tenant.id),
        ok=jobs.succeeded,
        failed=jobs.failed,
        open=jobs.open,
        revenue=ctx.money(revenue),
        credits=credits,
        markup=_plain(tenant.markup),
        free_daily=tenant.limits.free_daily,
        max_open=tenant.limits.max_open_jobs,
        rate=tenant.limits.rate_per_minute,
        timezone=tenant.limits.timezone,
    )


@router.message(Command("admin"))
async def admin(message: Message, ctx: Ctx, state: FSMContext) -> None:
    await state.clear()
    await message.answer(await _stats(ctx), reply_markup=keyboards.admin_home(ctx))


def _plain(markup: Decimal) -> str:
    """2.000 → "2", 2.500 → "2.5": numeric(8,3) digits read as thousands in Russian."""
    return format(markup.normalize(), "f")


_PROMPTS = {
    "user": "admin.ask_user",
    "credit": "admin.ask_adjust",
    "debit": "admin.ask_adjust",
    "markup": "admin.ask_markup",
    "refund": "admin.ask_refund",
}


@router.callback_query(AdminCb.filter())
async def admin_button(query: CallbackQuery, callback_data: AdminCb, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    message = query.message
    if not isinstance(message, Message):
        return
    action = callback_data.action
    if action == "settings":
        # Imported here: admin_settings imports this module's admin filter.
        from tenant_runtime.telegram.handlers.admin_settings import settings_screen

        await screens.show(message, settings_screen(ctx), edit=True)
    elif action == "stats":
        period = Period(callback_data.model) if callback_data.model in set(Period) else Period.TODAY
        await screens.show(message, await stats_screen(ctx, period), edit=True)
    elif action == "home":
        await state.clear()
        await screens.show(message, (await _stats(ctx), keyboards.admin_home(ctx)), edit=True)
    elif action in _PROMPTS:
        await state.set_state(getattr(Admin, action))
        await message.answer(ctx.t(_PROMPTS[action], markup=_plain(ctx.tenant.markup)))
    elif action in ("models", "toggle"):
        models = list(ctx.services.registry.sellable())
        if action == "toggle" and ctx.services.registry.get(callback_data.model):
            disabled = await toggle_model(ctx.services.pool, ctx.tenant.id, callback_data.model)
            log.info(
                "model switched by tenant admin",
                tenant=ctx.tenant.slug,
                model=callback_data.model,
                disabled=disabled,
                admin=ctx.user.user_id,
            )
            # The registry change reaches this runtime by NOTIFY; show the new state right away.
            current = set(ctx.tenant.disabled_models)
            current.symmetric_difference_update({callback_data.model})
            ctx.runtime.reconfigure(_with_disabled(ctx, frozenset(current)))
        pages = max(1, -(-len(models) // keyboards.PAGE_SIZE))
        page = min(max(callback_data.page, 0), pages - 1)
        await screens.show(
            message,
            (ctx.t("admin.models", page=page + 1, pages=pages), keyboards.admin_models(ctx, models, page)),
            edit=True,
        )


def _with_disabled(ctx: Ctx, disabled: frozenset[str]) -> TenantConfig:
    return replace(ctx.tenant, disabled_models=disabled)


@router.message(StateFilter(Admin.user), PLAIN_TEXT)
async def lookup(message: Message, ctx: Ctx, state: FSMContext) -> None:
    """A Telegram id or @username finds that user; other text searches names and usernames."""
    query = (message.text or "").strip()
    users = ctx.services.users
    if not (is_user_query(query) or is_name_query(query)):
        await message.answer(ctx.t("admin.ask_user"))
        return
    found = await users.find(ctx.tenant.id, query) if is_user_query(query) else None
    # "anna" may be a username or part of a name: no such username, so it is searched as a name.
    matches = [found] if found is not None else await users.search(ctx.tenant.id, query)
    await state.clear()
    if not matches:
        await message.answer(ctx.t("admin.no_user", user_id=query))
    elif len(matches) == 1:
        body, markup = await _user_card(ctx, matches[0])
        await message.answer(body, reply_markup=markup)
    else:
        await message.answer(ctx.t("admin.matches", count=len(matches)), reply_markup=keyboards.user_matches(matches))


@router.callback_query(AdminUserCb.filter())
async def open_user(query: CallbackQuery, callback_data: AdminUserCb, ctx: Ctx) -> None:
    user = await ctx.services.users.get(ctx.tenant.id, callback_data.user)
    if user is None or not isinstance(query.message, Message):
        await query.answer(ctx.t("stale"))
        return
    await query.answer()
    body, markup = await _user_card(ctx, user)
    await query.message.answer(body, reply_markup=markup)


async def _user_card(ctx: Ctx, user: BotUser) -> tuple[str, InlineKeyboardMarkup]:
    """The user as an admin sees them, with Ban or Unban (never for an admin)."""
    balance = await ctx.services.ledger.balance(ctx.tenant.id, user.user_id)
    jobs = await ctx.services.jobs.count_for_user(ctx.tenant.id, user.user_id)
    body = ctx.t(
        "admin.user",
        user_id=user.user_id,
        who=f" (@{user.username})" if user.username else "",
        available=ctx.money(balance.available),
        held=ctx.money(balance.held),
        jobs=jobs,
        since=user.created_at.strftime("%d.%m.%Y"),
    )
    if user.banned_at is not None:
        banned = ctx.t("admin.user_banned", date=user.banned_at.strftime("%d.%m.%Y"), reason=user.ban_reason or "")
        body = f"{body}\n{banned}"
    return body, keyboards.admin_user(ctx, user.user_id, banned=user.banned, admin=user.user_id in ctx.tenant.admin_ids)


@router.callback_query(BanCb.filter())
async def ban_button(query: CallbackQuery, callback_data: BanCb, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    if not isinstance(query.message, Message):
        return
    if callback_data.ban and callback_data.user in ctx.tenant.admin_ids:
        await query.message.answer(ctx.t("admin.ban_admin"))
        return
    await state.set_state(Admin.ban_reason)
    await state.set_data({"target": callback_data.user, "ban": callback_data.ban})
    prompt = "admin.ask_ban_reason" if callback_data.ban else "admin.ask_unban_reason"
    await query.message.answer(ctx.t(prompt, user_id=callback_data.user))


@router.message(StateFilter(Admin.ban_reason), PLAIN_TEXT)
async def ban_reason(message: Message, ctx: Ctx, state: FSMContext) -> None:
    reason = (message.text or "").strip()
    if not 1 <= len(reason) <= MAX_REASON:
        await message.answer(ctx.t("admin.bad_reason"))
        return
    data = await state.get_data()
    await state.clear()
    target, banning = int(data["target"]), bool(data["ban"])
    services, tenant, admin_id = ctx.services, ctx.tenant, ctx.user.user_id
    if banning:
        result = await bans.ban(services.pool, services.ledger, tenant.id, target, admin_id, reason)
    else:
        result = await bans.unban(services.pool, tenant.id, target, admin_id, reason)
    if result.outcome is BanOutcome.UNKNOWN_USER:
        await message.answer(ctx.t("admin.no_user", user_id=target))
        return
    if result.outcome is BanOutcome.ALREADY:
        await message.answer(ctx.t("admin.already_banned" if banning else "admin.not_banned", user_id=target))
        return
    metrics.BANS.labels(tenant.slug, AuditAction.BAN if banning else AuditAction.UNBAN).inc()
    log.info("user banned" if banning else "user unbanned", tenant=tenant.slug, admin=admin_id, user=target)
    if not banning:
        await message.answer(ctx.t("admin.unbanned", user_id=target))
        return
    balance = await services.ledger.balance(tenant.id, target)  # what the ban left: read, not assumed
    await message.answer(
        ctx.t(
            "admin.banned",
            user_id=target,
            jobs=result.stopped_jobs,
            released=ctx.money(result.released),
            balance=ctx.money(balance.available),
        )
    )


def parse_adjustment(text: str) -> tuple[int, int, str] | None:
    """`<user id> <amount in major units> <reason>` → (user id, minor units, reason)."""
    parts = text.strip().split(maxsplit=2)
    user_id = strict.uint(parts[0], max_digits=15) if len(parts) == 3 else None
    if user_id is None:
        return None
    try:
        amount = Decimal(parts[1].replace(",", "."))
    except InvalidOperation:
        return None
    minor = amount * 100
    if not amount.is_finite() or amount <= 0 or minor != minor.to_integral_value() or minor > 10**12:
        return None
    reason = parts[2].strip()
    return (user_id, int(minor), reason) if reason else None


@router.message(StateFilter(Admin.credit), PLAIN_TEXT)
@router.message(StateFilter(Admin.debit), PLAIN_TEXT)
async def adjust(message: Message, ctx: Ctx, state: FSMContext) -> None:
    parsed = parse_adjustment(message.text or "")
    if parsed is None:
        await message.answer(ctx.t("admin.bad_adjust"))
        return
    user_id, amount, reason = parsed
    if await ctx.services.users.get(ctx.tenant.id, user_id) is None:
        await state.clear()
        await message.answer(ctx.t("admin.no_user", user_id=user_id))
        return
    crediting = await state.get_state() == Admin.credit.state
    await state.clear()
    ledger, tenant = ctx.services.ledger, ctx.tenant
    key = f"admin:{ctx.user.user_id}:{message.message_id}"
    actor = f"admin:{ctx.user.user_id}"
    try:
        if crediting:
            await ledger.credit(
                tenant.id,
                user_id,
                amount,
                kind="admin_credit",
                unique_key=key,
                actor=actor,
                reason=reason,
                correlation_id=ctx.correlation_id,
            )
            metrics.TOPUPS.labels(tenant.slug, "admin").inc()
        else:
            await ledger.debit(
                tenant.id,
                user_id,
                amount,
                unique_key=key,
                actor=actor,
                reason=reason,
                correlation_id=ctx.correlation_id,
            )
    except InsufficientFunds as exc:
        await message.answer(ctx.t("admin.insufficient", available=ctx.money(exc.available)))
        return
    balance = await ledger.balance(tenant.id, user_id)
    log.info(
        "balance adjusted by tenant admin",
        tenant=tenant.slug,
        admin=ctx.user.user_id,
        user=user_id,
        amount=amount if crediting else -amount,
    )
    await message.answer(
        ctx.t(
            "admin.credited" if crediting else "admin.debited",
            amount=ctx.money(amount),
            user_id=user_id,
            balance=ctx.money(balance.available),
        )
    )


@router.message(StateFilter(Admin.markup), PLAIN_TEXT)
async def markup(message: Message, ctx: Ctx, state: FSMContext) -> None:
    try:
        value = Decimal((message.text or "").strip().replace(",", "."))
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or not 1 <= value <= 100:
        await message.answer(ctx.t("admin.bad_markup"))
        return
    await state.clear()
    await set_markup(ctx.services.pool, ctx.tenant.id, value)
    log.info("markup changed by tenant admin", tenant=ctx.tenant.slug, admin=ctx.user.user_id, markup=str(value))
    await message.answer(ctx.t("admin.markup_set", markup=_plain(value)))


@router.message(StateFilter(Admin.refund), PLAIN_TEXT)
async def refund(message: Message, ctx: Ctx, state: FSMContext) -> None:
    await state.clear()
    charge_id = (message.text or "").strip()
    ledger, tenant = ctx.services.ledger, ctx.tenant
    try:
        pending = await ledger.begin_star_refund(tenant.id, charge_id, ctx.user.user_id)
    except RefundRefused as exc:
        await message.answer(ctx.t("admin.refund_refused", reason=str(exc)))
        return
    except LedgerError as exc:
        await message.answer(ctx.t("admin.refund_refused", reason=str(exc)))
        return
    answer, detail = await ask_telegram(ctx.runtime, pending.user_id, charge_id)
    if answer is Answer.REFUSED:
        # Telegram refused: no Stars moved, so the balance comes back.
        log.warning("refundStarPayment refused", tenant=tenant.slug, error=detail)
        await ledger.finish_star_refund(tenant.id, charge_id, ok=False)
        await message.answer(ctx.t("admin.refund_failed"))
        return
    if answer is Answer.UNKNOWN:
        # No answer: the Stars may have gone back, and crediting the balance again could pay twice.
        # The payment stays 'refunding'; the refund settler asks Telegram again later.
        log.error(
            "refundStarPayment outcome unknown; payment left refunding",
            tenant=tenant.slug,
            charge_id=charge_id,
            error=detail,
        )
        await message.answer(ctx.t("admin.refund_unknown"))
        return
    await ledger.finish_star_refund(tenant.id, charge_id, ok=True)
    await message.answer(ctx.t("admin.refunded", stars=pending.stars, amount=ctx.money(pending.amount_minor)))
