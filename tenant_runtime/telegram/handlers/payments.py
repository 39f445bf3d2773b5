"""Telegram Stars top-ups: invoice → pre_checkout_query (answered in time) → successful_payment.

The invoice payload is signed (tenant, user, Stars, amount); the balance is credited only on
successful_payment, exactly once per telegram_payment_charge_id, whoever receives it.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery

from shared import metrics, strict
from shared.logs import get_logger
from tenant_runtime.billing.invoices import sign_invoice_payload, verify_invoice_payload
from tenant_runtime.billing.ledger import ChargeConflict
from tenant_runtime.telegram import keyboards
from tenant_runtime.telegram.callback_data import TopupCb
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.filters import PAYMENT, PLAIN_TEXT
from tenant_runtime.telegram.screens import Screen

log = get_logger(__name__)
router = Router(name="payments")

# An amount of the user's choosing: Telegram takes at most 10,000 Stars in one invoice.
CUSTOM_STARS_MIN = 1
CUSTOM_STARS_MAX = 10_000


class Topup(StatesGroup):
    stars = State()


def topup_screen(ctx: Ctx) -> Screen:
    return ctx.t("topup.title"), keyboards.topup(ctx, ctx.star_packages)


@router.callback_query(TopupCb.filter(F.stars == 0))
async def ask_stars(query: CallbackQuery, ctx: Ctx, state: FSMContext) -> None:
    await query.answer()
    if isinstance(query.message, Message):
        await state.set_state(Topup.stars)
        await query.message.answer(
            ctx.t("topup.ask_stars", low=CUSTOM_STARS_MIN, high=CUSTOM_STARS_MAX, rate=ctx.money(ctx.star_rate))
        )


@router.message(StateFilter(Topup.stars), PLAIN_TEXT)
async def custom_stars(message: Message, ctx: Ctx, state: FSMContext) -> None:
    stars = strict.uint((message.text or "").strip(), max_digits=5)
    if stars is None or not CUSTOM_STARS_MIN <= stars <= CUSTOM_STARS_MAX:
        await message.answer(ctx.t("topup.bad_stars", low=CUSTOM_STARS_MIN, high=CUSTOM_STARS_MAX))
        return
    await send_invoice(message, ctx, stars, stars * ctx.star_rate)
    # After the invoice: a send that failed is retried with the update, and the retry must still find
    # the step (a second invoice for a retried update is harmless; only a payment credits).
    await state.clear()


@router.callback_query(TopupCb.filter())
async def invoice(query: CallbackQuery, callback_data: TopupCb, ctx: Ctx) -> None:
    packages = dict(ctx.star_packages)
    amount = packages.get(callback_data.stars)
    if amount is None or not isinstance(query.message, Message):
        await query.answer(ctx.t("stale"))
        return
    await query.answer()
    await send_invoice(query.message, ctx, callback_data.stars, amount)


async def send_invoice(message: Message, ctx: Ctx, stars: int, amount: int) -> None:
    """One invoice: the payload signs who pays, how many Stars and how much is credited for them."""
    payload = sign_invoice_payload(ctx.tenant.callback_secret, ctx.tenant.id, ctx.user.user_id, stars, amount)
    await message.answer_invoice(
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
        await message.answer(
            ctx.t("topup.unverified", charge=payment.telegram_payment_charge_id),
            reply_markup=keyboards.with_support(ctx),
        )
        return
    charge = payment.telegram_payment_charge_id
    try:
        credited = await ctx.services.ledger.record_star_payment(
            ctx.tenant.id, ctx.user.user_id, charge, found.stars, found.amount_minor, payment.invoice_payload
        )
    except ChargeConflict as conflict:
        # The same charge id again, for another amount or user: the first record stands, nothing moves,
        # and the user is told exactly that (not the generic "nothing was charged": Telegram took Stars).
        log.error(
            "successful_payment repeats a recorded charge id with another amount or user",
            tenant=ctx.tenant.slug,
            charge_id=charge,
            recorded_amount=conflict.amount_minor,
            amount=found.amount_minor,
            same_user=conflict.user_id == ctx.user.user_id,
        )
        if conflict.user_id == ctx.user.user_id:
            body = ctx.t(
                "topup.conflict",
                amount=ctx.money(conflict.amount_minor),
                other=ctx.money(found.amount_minor),
                charge=charge,
            )
        else:
            body = ctx.t("topup.conflict_user", charge=charge)
        await message.answer(body, reply_markup=keyboards.with_support(ctx))
        return
    if not credited:
        return
    metrics.TOPUPS.labels(ctx.tenant.slug, "stars").inc()
    balance = await ctx.services.ledger.balance(ctx.tenant.id, ctx.user.user_id)
    await message.answer(
        ctx.t("topup.done", amount=ctx.money(found.amount_minor), balance=ctx.money(balance.available)),
        reply_markup=keyboards.to_menu(ctx),
    )
