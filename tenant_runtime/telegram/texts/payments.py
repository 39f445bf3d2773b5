"""Topping up with Telegram Stars."""

from __future__ import annotations

RU: dict[str, str] = {
    "topup.title": "Пополнение баланса звёздами Telegram. Выберите пакет:",
    "topup.package": "{stars} ⭐ → {amount}",
    "topup.custom": "✏️ Другая сумма",
    "topup.ask_stars": "Сколько звёзд? Целое число от {low} до {high}; 1 ⭐ = {rate}.",
    "topup.bad_stars": "Нужно целое число звёзд от {low} до {high}, например 120. Или /cancel.",
    "topup.invoice_title": "Пополнение на {amount}",
    "topup.invoice_description": "{stars} звёзд → {amount} на баланс в {shop}",
    "topup.done": "✅ Баланс пополнен на {amount}. Теперь: {balance}",
    "topup.bad_payload": "Счёт устарел. Откройте пополнение заново.",
    "topup.unverified": "Оплата получена, но не прошла проверку. Напишите в поддержку, код платежа: {charge}",
    "topup.conflict": (
        "Этот платёж уже зачислен раньше: +{amount}. Повторное уведомление о нём пришло с другой суммой "
        "({other}), баланс оно не изменило. Если что-то не так, напишите в поддержку, код платежа: {charge}"
    ),
    "topup.conflict_user": (
        "Оплата получена, но этот платёж уже записан на другой счёт, поэтому баланс не изменился. "
        "Напишите в поддержку, код платежа: {charge}"
    ),
}

EN: dict[str, str] = {
    "topup.title": "Top up your balance with Telegram Stars. Choose a package:",
    "topup.package": "{stars} ⭐ → {amount}",
    "topup.custom": "✏️ Another amount",
    "topup.ask_stars": "How many Stars? A whole number from {low} to {high}; 1 ⭐ = {rate}.",
    "topup.bad_stars": "A whole number of Stars from {low} to {high} is needed, e.g. 120. Or /cancel.",
    "topup.invoice_title": "Top-up of {amount}",
    "topup.invoice_description": "{stars} Stars → {amount} on your balance in {shop}",
    "topup.done": "✅ Your balance was topped up by {amount}. Now: {balance}",
    "topup.bad_payload": "This invoice is outdated. Please open the top-up again.",
    "topup.unverified": "Your payment arrived but did not pass verification. Please contact support, payment id: {charge}",
    "topup.conflict": (
        "This payment was already credited before: +{amount}. A repeated notice of it came with another amount "
        "({other}) and did not change your balance. If something is wrong, please contact support, payment id: {charge}"
    ),
    "topup.conflict_user": (
        "Your payment arrived, but it is already recorded for another account, so your balance did not change. "
        "Please contact support, payment id: {charge}"
    ),
}
