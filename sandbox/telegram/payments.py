"""Telegram Stars payments: invoices, the pre-checkout handshake, successful payments and refunds.

The user side (`pay`) runs the same handshake Telegram does, so a bot that forgets to answer the
pre-checkout query, or answers it wrongly, fails its test instead of being paid anyway.
"""

from __future__ import annotations

import asyncio
import secrets

from sandbox.telegram.messages import Handler, outgoing, reply_markup
from sandbox.telegram.model import (
    BotState,
    ChatState,
    ControlError,
    InvoiceInfo,
    JSONObject,
    Payment,
    PaymentDeclinedError,
    PreCheckoutAnswer,
    PreCheckoutRecord,
    StoredMessage,
    bad_request,
    now,
)
from sandbox.telegram.params import Params
from sandbox.telegram.state import TelegramState

STARS = "XTR"


def _prices(p: Params) -> list[tuple[str, int]]:
    prices = p.opt_json("prices")
    if not isinstance(prices, list) or not prices:
        raise bad_request("prices is empty" if not prices else "can't parse prices JSON object")
    parsed: list[tuple[str, int]] = []
    for price in prices:
        label, amount = (price.get("label"), price.get("amount")) if isinstance(price, dict) else (None, None)
        if not isinstance(label, str) or isinstance(amount, bool) or not isinstance(amount, int):
            raise bad_request("can't parse prices JSON object")
        parsed.append((label, amount))
    return parsed


async def send_invoice(state: TelegramState, bot: BotState, p: Params) -> JSONObject:
    chat = state.chat(bot, p.chat_id())
    title, description = p.opt_str("title") or "", p.opt_str("description") or ""
    payload, currency = p.opt_str("payload") or "", p.opt_str("currency") or ""
    if not 1 <= len(title) <= 32:
        raise bad_request("INVOICE_TITLE_INVALID")
    if not 1 <= len(description) <= 255:
        raise bad_request("INVOICE_DESCRIPTION_INVALID")
    if not 1 <= len(payload.encode()) <= 128:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    prices = _prices(p)
    if currency == STARS:
        if len(prices) != 1 or p.opt_str("provider_token") or p.has("max_tip_amount"):
            raise bad_request("STARS_INVOICE_INVALID")
    elif len(currency) != 3 or not currency.isupper():
        raise bad_request("CURRENCY_INVALID")
    elif not p.opt_str("provider_token"):
        raise bad_request("PAYMENT_PROVIDER_INVALID")
    total = sum(amount for _, amount in prices)
    if any(amount <= 0 for _, amount in prices):
        raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
    markup = reply_markup(p, inline_only=True)
    message = outgoing(state, bot, chat)
    message.invoice = InvoiceInfo(
        title=title,
        description=description,
        payload=payload,
        currency=currency,
        total_amount=total,
        start_parameter=p.opt_str("start_parameter") or "",
    )
    message.reply_markup = markup
    return state.store_message(chat, message).to_api()


async def answer_pre_checkout_query(state: TelegramState, bot: BotState, p: Params) -> bool:
    record = bot.pre_checkouts.get(p.opt_str("pre_checkout_query_id") or "")
    if record is None or record.answer.done():
        raise bad_request("QUERY_ID_INVALID")
    ok, error_message = p.flag("ok"), p.opt_str("error_message")
    if not ok and not error_message:
        raise bad_request("ERROR_MESSAGE_EMPTY")
    del bot.pre_checkouts[record.query_id]
    record.answer.set_result(PreCheckoutAnswer(ok=ok, error_message=error_message))
    return True


async def refund_star_payment(state: TelegramState, bot: BotState, p: Params) -> bool:
    user_id = p.req_int("user_id")
    payment = bot.payments.get(p.opt_str("telegram_payment_charge_id") or "")
    if payment is None or payment.user_id != user_id:
        raise bad_request("CHARGE_NOT_FOUND")
    if payment.refunded:
        raise bad_request("CHARGE_ALREADY_REFUNDED")
    payment.refunded = True
    _service_message(state, bot, state.chat(bot, user_id), refunded_payment=payment)
    return True


def _service_message(
    state: TelegramState,
    bot: BotState,
    chat: ChatState,
    *,
    successful_payment: Payment | None = None,
    refunded_payment: Payment | None = None,
) -> None:
    """A message in the user's name that Telegram itself adds (a payment or its refund), sent to the bot."""
    message = StoredMessage(
        message_id=state.next_message_id(chat),
        chat_user=chat.user,
        sender=chat.user,
        date=now(),
        successful_payment=successful_payment,
        refunded_payment=refunded_payment,
    )
    state.store_message(chat, message)
    state.emit(bot, "message", message.to_api(), chat_key=chat.user.id)


async def pay(state: TelegramState, bot: BotState, user_id: int, invoice_message_id: int, timeout: float) -> str:
    """The user pays an invoice: pre_checkout_query, wait for the bot's answer, then successful_payment."""
    chat = bot.chats.get(user_id)
    invoice_message = state.live_message(chat, invoice_message_id) if chat else None
    if chat is None or invoice_message is None or invoice_message.invoice is None:
        raise ControlError(f"no invoice message {invoice_message_id} in chat {user_id}")
    invoice = invoice_message.invoice
    query_id = secrets.token_hex(8)
    record = PreCheckoutRecord(query_id, asyncio.get_running_loop().create_future())
    bot.pre_checkouts[query_id] = record
    query = {
        "id": query_id,
        "from": chat.user.to_api(),
        "currency": invoice.currency,
        "total_amount": invoice.total_amount,
        "invoice_payload": invoice.payload,
    }
    state.emit(bot, "pre_checkout_query", query, chat_key=user_id)
    try:
        answer = await asyncio.wait_for(record.answer, timeout)
    except TimeoutError:
        raise TimeoutError(f"bot did not answer pre_checkout_query {query_id} within {timeout}s") from None
    finally:
        bot.pre_checkouts.pop(query_id, None)
    if not answer.ok:
        raise PaymentDeclinedError(answer.error_message or "declined")
    charge_id = f"stxFake{secrets.token_urlsafe(24)}"
    payment = Payment(
        user_id=user_id,
        currency=invoice.currency,
        total_amount=invoice.total_amount,
        invoice_payload=invoice.payload,
        telegram_payment_charge_id=charge_id,
        provider_payment_charge_id=f"{user_id}_{secrets.randbits(40)}",
    )
    bot.payments[charge_id] = payment
    _service_message(state, bot, chat, successful_payment=payment)
    return charge_id


HANDLERS: dict[str, Handler] = {
    "sendInvoice": send_invoice,
    "answerPreCheckoutQuery": answer_pre_checkout_query,
    "refundStarPayment": refund_star_payment,
}
