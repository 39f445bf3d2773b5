"""Telegram Stars top-ups: invoice → pre_checkout_query (answered in time) → successful_payment.

The invoice payload is signed (tenant, user, Stars, amount); the balance is credited only on
successful_payment, exactly once per telegram_payment_charge_id, whoever receives it.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery

from shared import metrics
from shared.logs import get_logger
from tenant_runtime import keyboards
from tenant_runtime.callbacks import TopupCb
from tenant_runtime.context import Ctx
from tenant_runtime.filters import PAYMENT
from tenant_runtime.payments import sign_invoice_payload, verify_invoice_payload
from tenant_runtime.screens import Screen

log = get_logger(__name__)
router = Router(name="payments")


def topup_screen(ctx: Ctx) -> Screen:
    return ctx.t("topup.title"), keyboards.topup(ctx, ctx.star_packages)


@router.callback_query(TopupCb.filter())
async def invoice(query: CallbackQuery, callback_data: TopupCb, ctx: Ctx) -> None:
    packages = dict(ctx.star_packages)
    amount = packages.get(callback_data.stars)
    if amount is None or not isinstance(query.message, Message):
        await query.answer(ctx.t("stale"))
        return
    await query.answer()
    stars = callback_data.stars
    payload = sign_invoice_payload(ctx.tenant.callback_secret, ctx.tenant.id, ctx.user.user_id, stars, amount)
    await query.message.answer_invoice(
        title=ctx.t("topup.invoice_title", amount=ctx.money(amount)),
        description=ctx.t(
            "topup.invoice_description", stars=stars, amount=ctx.money(amount), shop=ctx.tenant.display_name
        ),
        payload=payload,
        currency="XTR",
        prices=[LabeledPrice(label=f"{stars} ⭐", amount=stars)],
        provider_token="",
    )


@router.pre_checkout_query()
async def pre_checkout(query: PreCheckoutQuery, ctx: Ctx) -> None:
    found = verify_invoice_payload(ctx.tenant.callback_secret, query.invoice_payload)
    ok = (
        found is not None
        and query.currency == "XTR"
        and found.matches(tenant_id=ctx.tenant.id, user_id=query.from_user.id, stars=query.total_amount)
    )
    await query.answer(ok=ok, error_message=None if ok else ctx.t("topup.bad_payload"))


@router.message(PAYMENT)
async def paid(message: Message, ctx: Ctx) -> None:
    payment = message.successful_payment
    assert payment is not None
    found = verify_invoice_payload(ctx.tenant.callback_secret, payment.invoice_payload)
    if found is None or not found.matches(
        tenant_id=ctx.tenant.id, user_id=ctx.user.user_id, stars=payment.total_amount
    ):
        # Telegram took the Stars, so this is for a human to sort out: log loudly, credit nothing.
        log.error(
            "successful_payment with a payload that does not verify",
            tenant=ctx.tenant.slug,
            charge_id=payment.telegram_payment_charge_id,
        )
        await message.answer(ctx.t("topup.unverified", charge=payment.telegram_payment_charge_id))
        return
    credited = await ctx.services.ledger.record_star_payment(
        ctx.tenant.id,
        ctx.user.user_id,
        payment.telegram_payment_charge_id,
        found.stars,
        found.amount_minor,
        payment.invoice_payload,
    )
    if not credited:
        return
    metrics.TOPUPS.labels(ctx.tenant.slug, "stars").inc()
    balance = await ctx.services.ledger.balance(ctx.tenant.id, ctx.user.user_id)
    await message.answer(
        ctx.t("topup.done", amount=ctx.money(found.amount_minor), balance=ctx.money(balance.available)),
        reply_markup=keyboards.to_menu(ctx),
    )
