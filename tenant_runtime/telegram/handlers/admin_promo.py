"""/admin → Promo codes: the list with uses and expiry, create one from a single message, disable one.

Only the tenant's admins (the same filter as /admin). A bad message is answered with what is wrong with
which part, nothing is written, and the admin can send it again.
"""

from __future__ import annotations

from datetime import date

from aiogram import Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from shared.logs import get_logger
from tenant_runtime.promo import store
from tenant_runtime.promo.codes import PromoInputError, PromoSpec, parse_admin_line
from tenant_runtime.promo.store import PromoCode
from tenant_runtime.telegram import keyboards, screens
from tenant_runtime.telegram.callback_data import PromoCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.filters import PLAIN_TEXT
from tenant_runtime.telegram.handlers.admin import is_admin
from tenant_runtime.telegram.handlers.promo import PROMO_PREFIX
from tenant_runtime.telegram.texts import Raw

__all__ = ["router"]

log = get_logger(__name__)
router = Router(name="admin_promo")
router.message.filter(is_admin)
router.callback_query.filter(is_admin)


class PromoAdmin(StatesGroup):
    new = State()


def _value(ctx: Ctx, amount_minor: int | None, generations: int | None) -> str:
    return ctx.money(amount_minor) if amount_minor is not None else ctx.t("admin.promo_generations", count=generations)


def _state(promo: PromoCode) -> str:
    if promo.disabled_at is not None:
        return "admin.promo_state.disabled"
    if promo.expired:
        return "admin.promo_state.expired"
    return "admin.promo_state.used_up" if promo.uses >= promo.max_uses else "admin.promo_state.active"


def _until(ctx: Ctx, last_day: date | None) -> str:
    return ctx.t("admin.promo_until", date=last_day.strftime("%d.%m.%Y")) if last_day else ctx.t("admin.promo_forever")


def _row(ctx: Ctx, promo: PromoCode) -> str:
    return ctx.t(
        "admin.promo_row",
        code=promo.code,
        value=_value(ctx, promo.amount_minor, promo.free_generations),
        uses=promo.uses,
        max=promo.max_uses,
        until=_until(ctx, promo.valid_through),
        state=ctx.t(_state(promo)),
    )


async def _list(ctx: Ctx) -> screens.Screen:
    found = await store.codes(ctx.services.pool, ctx.tenant.id, ctx.tenant.limits.timezone, limit=20)
    lines = [ctx.t("admin.promos")] + ([_row(ctx, p) for p in found] or [ctx.t("admin.promos_empty")])
    return Raw("\n".join(lines)), keyboards.admin_promos(ctx, [p.code for p in found if p.disabled_at is None])


@router.callback_query(PromoCb.filter())
async def promo_button(query: CallbackQuery, callback_data: PromoCb, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    message = query.message
    if not isinstance(message, Message):
        return
    if callback_data.action == "new":
        await state.set_state(PromoAdmin.new)
        await message.answer(ctx.t("admin.ask_promo"))
        return
    if callback_data.action == "disable":
        actor = f"admin:{ctx.user.user_id}"
        done = await store.disable(ctx.services.pool, ctx.tenant.id, callback_data.code, actor)
        key = "admin.promo_disabled" if done else "admin.promo_not_disabled"
        await message.answer(ctx.t(key, code=callback_data.code))
        log.info("promo code disabled", tenant=ctx.tenant.slug, code=callback_data.code, admin=ctx.user.user_id)
    await screens.show(message, await _list(ctx), edit=callback_data.action == "list")


@router.message(StateFilter(PromoAdmin.new), PLAIN_TEXT)
async def promo_new(message: Message, ctx: Ctx, state: FSMContext) -> None:
    tenant = ctx.tenant
    try:
        spec = parse_admin_line(message.text or "")
        await store.create(ctx.services.pool, tenant.id, tenant.limits.timezone, spec, f"admin:{ctx.user.user_id}")
    except PromoInputError as exc:
        await message.answer(ctx.t(f"admin.promo_bad.{exc.field}", value=exc.value[:64]))
        return  # still asking: the admin sends a corrected line
    await state.clear()
    log.info("promo code created", tenant=tenant.slug, code=spec.code, admin=ctx.user.user_id)
    me = await message.bot.me()  # type: ignore[union-attr]
    await message.answer(_created(ctx, spec, f"https://t.me/{me.username}?start={PROMO_PREFIX}{spec.code}"))


def _created(ctx: Ctx, spec: PromoSpec, link: str) -> str:
    return ctx.t(
        "admin.promo_created",
        code=spec.code,
        value=_value(ctx, spec.amount_minor, spec.free_generations),
        max=spec.max_uses,
        until=_until(ctx, spec.expires_on),
        link=link,
    )
