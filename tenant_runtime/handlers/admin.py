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
from aiogram.types import CallbackQuery, Message, TelegramObject

from shared import metrics
from shared.logs import get_logger
from tenant_runtime import keyboards, screens
from tenant_runtime.callbacks import AdminCb
from tenant_runtime.config import TenantConfig
from tenant_runtime.context import Ctx
from tenant_runtime.filters import PLAIN_TEXT
from tenant_runtime.kie_client import KieError
from tenant_runtime.ledger import InsufficientFunds, LedgerError, RefundRefused
from tenant_runtime.refunds import Answer, ask_telegram
from tenant_runtime.tenant_settings import set_markup, toggle_model

log = get_logger(__name__)
router = Router(name="admin")


async def is_admin(_event: TelegramObject, ctx: Ctx) -> bool:
    return ctx.is_admin


router.message.filter(is_admin)
router.callback_query.filter(is_admin)


class Admin(StatesGroup):
    user = State()
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
    if action == "home":
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
    raw = (message.text or "").strip()
    if not raw.isdigit():
        await message.answer(ctx.t("admin.ask_user"))
        return
    await state.clear()
    user_id = int(raw)
    user = await ctx.services.users.get(ctx.tenant.id, user_id)
    if user is None:
        await message.answer(ctx.t("admin.no_user", user_id=user_id))
        return
    balance = await ctx.services.ledger.balance(ctx.tenant.id, user_id)
    jobs = await ctx.services.jobs.count_for_user(ctx.tenant.id, user_id)
    await message.answer(
        ctx.t(
            "admin.user",
            user_id=user_id,
            available=ctx.money(balance.available),
            held=ctx.money(balance.held),
            jobs=jobs,
            since=user.created_at.strftime("%d.%m.%Y"),
        )
    )


def parse_adjustment(text: str) -> tuple[int, int, str] | None:
    """`<user id> <amount in major units> <reason>` → (user id, minor units, reason)."""
    parts = text.strip().split(maxsplit=2)
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    try:
        amount = Decimal(parts[1].replace(",", "."))
    except InvalidOperation:
        return None
    minor = amount * 100
    if not amount.is_finite() or amount <= 0 or minor != minor.to_integral_value() or minor > 10**12:
        return None
    reason = parts[2].strip()
    return (int(parts[0]), int(minor), reason) if reason else None


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
