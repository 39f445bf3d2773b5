"""Promo codes as users redeem them."""

from __future__ import annotations

RU: dict[str, str] = {
    "promo.ask": "Отправьте промокод так: /promo КОД",
    "promo.redeemed_money": "🎟 Промокод {code} активирован: +{amount}. Баланс: {balance}",
    "promo.redeemed_free": "🎟 Промокод {code} активирован. Бесплатные генерации: +{count}.",
    "promo.unknown": "Промокод «{code}» не найден. Проверьте, как он написан.",
    "promo.disabled": "Промокод {code} больше не действует.",
    "promo.expired": "Срок действия промокода {code} истёк.",
    "promo.used_up": "Промокод {code} уже использован максимальное число раз.",
    "promo.already_used": "Вы уже активировали промокод {code}: каждый код — один раз.",
}

EN: dict[str, str] = {
    "promo.ask": "Send a promo code like this: /promo CODE",
    "promo.redeemed_money": "🎟 Promo code {code} applied: +{amount}. Balance: {balance}",
    "promo.redeemed_free": "🎟 Promo code {code} applied. Free generations: +{count}.",
    "promo.unknown": "Promo code “{code}” was not found. Please check how it is written.",
    "promo.disabled": "Promo code {code} is no longer valid.",
    "promo.expired": "Promo code {code} has expired.",
    "promo.used_up": "Promo code {code} has been used the maximum number of times.",
    "promo.already_used": "You have already applied promo code {code}: each code works once.",
}
