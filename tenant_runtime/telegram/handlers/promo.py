"""Users redeem promo codes: `/promo CODE`, or a deep link `t.me/<bot>?start=promo_CODE` (see `common.start`)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from shared import metrics
from tenant_runtime.promo.store import RedeemOutcome, Redemption, redeem
from tenant_runtime.telegram.context import Ctx

__all__ = ["PROMO_PREFIX", "redeem_and_tell", "router"]

router = Router(name="promo")
PROMO_PREFIX = "promo_"  # /start promo_<CODE>

_REFUSALS: dict[RedeemOutcome, str] = {
    RedeemOutcome.UNKNOWN: "promo.unknown",
    RedeemOutcome.DISABLED: "promo.disabled",
    RedeemOutcome.EXPIRED: "promo.expired",
    RedeemOutcome.USED_UP: "promo.used_up",
    RedeemOutcome.ALREADY_USED: "promo.already_used",
}


def told(ctx: Ctx, result: Redemption) -> str:
    """What the user is told; a credit is worded from the balance read in the redeeming transaction."""
    if result.outcome is not RedeemOutcome.REDEEMED:
        return ctx.t(_REFUSALS[result.outcome], code=result.code)
    if result.amount_minor is not None and result.available is not None:
        return ctx.t(
            "promo.redeemed_money",
            code=result.code,
            amount=ctx.money(result.amount_minor),
            balance=ctx.money(result.available),
        )
    return ctx.t("promo.redeemed_free", code=result.code, count=result.free_generations)


async def redeem_and_tell(message: Message, ctx: Ctx, raw_code: str) -> None:
    services, tenant = ctx.services, ctx.tenant
    result = await redeem(services.pool, services.ledger, tenant.id, ctx.user.user_id, raw_code)
    metrics.PROMO_REDEMPTIONS.labels(tenant.slug, result.outcome).inc()
    await message.answer(told(ctx, result))


@router.message(Command("promo"))
async def promo(message: Message, command: CommandObject, ctx: Ctx) -> None:
    code = (command.args or "").strip()
    if not code:
        await message.answer(ctx.t("promo.ask"))
        return
    await redeem_and_tell(message, ctx, code)
