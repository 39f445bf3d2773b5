"""Messages the platform bot sends on its own: the operators' approval request, and the owner's answer.

Each send is best effort per chat: one operator who blocked the bot does not keep the others from the
request (the request stays pending; `tenants list --state pending` shows it from any shell).
"""

from __future__ import annotations

import html
from contextlib import suppress

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup, User
from aiogram.utils.keyboard import InlineKeyboardBuilder

from shared.logs import get_logger
from supervisor.onboarding.flow import Decision, DecisionCb, Onboarding
from supervisor.onboarding.texts import Language, text
from tenant_runtime.config import TenantConfig

__all__ = ["decision_buttons", "owner_label", "tell_operators_of", "tell_owner"]

log = get_logger(__name__)


def owner_label(user: User) -> str:
    name = html.escape(user.full_name)
    return f"{name} (@{user.username}, id {user.id})" if user.username else f"{name} (id {user.id})"


def decision_buttons(lang: Language, tenant_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=text(lang, "approve"), callback_data=DecisionCb(decision=Decision.APPROVE, tenant_id=tenant_id))
    builder.button(text=text(lang, "reject"), callback_data=DecisionCb(decision=Decision.REJECT, tenant_id=tenant_id))
    return builder.as_markup()


async def tell_operators_of(bot: Bot, onboarding: Onboarding, config: TenantConfig, username: str, owner: User) -> None:
    """A pending shop asks for a decision; a shop that went live at once (ONBOARDING=open) is only told."""
    lang: Language = onboarding.settings.alert_language
    values = {
        "name": html.escape(config.display_name),
        "slug": config.slug,
        "username": username,
        "owner": owner_label(owner),
        "language": config.default_language,
        "markup": config.markup.normalize(),
    }
    served = config.status.served
    body = text(lang, "created_open" if served else "approval_request", **values)
    markup = None if served else decision_buttons(lang, config.id)
    for chat in onboarding.operator_chats:
        try:
            await bot.send_message(chat, body, reply_markup=markup)
        except TelegramAPIError as exc:
            log.warning("operator chat did not get the shop request", chat=chat, error=type(exc).__name__)


async def tell_owner(bot: Bot, config: TenantConfig, key: str, **values: object) -> None:
    if config.owner_id is None:
        return
    with suppress(TelegramAPIError):  # the owner blocked the platform bot: /myshops still tells them
        await bot.send_message(config.owner_id, text(config.default_language, key, **values))
