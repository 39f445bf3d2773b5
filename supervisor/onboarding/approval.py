"""Approve / Reject, pressed in an operators' chat (OPERATOR_CHAT_IDS).

Only a press inside one of those chats counts: the buttons travel with the message, and a forwarded
copy in some other chat must decide nothing. The decision is a compare-and-set on the tenant's status,
so the second of two presses (two operators, two chats) is told it is already decided.
"""

from __future__ import annotations

import html
from contextlib import suppress

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, Message

from supervisor.onboarding.checks import Refusal, check_bot_token
from supervisor.onboarding.flow import Decision, DecisionCb, Onboarding
from supervisor.onboarding.notify import tell_owner
from supervisor.onboarding.texts import Language, text

__all__ = ["router"]

router = Router(name="approval")


@router.callback_query(DecisionCb.filter())
async def decide(query: CallbackQuery, callback_data: DecisionCb, onboarding: Onboarding, bot: Bot) -> None:
    lang: Language = onboarding.settings.alert_language
    message = query.message
    if not isinstance(message, Message) or message.chat.id not in onboarding.operator_chats:
        await query.answer(text(lang, "operators_only"), show_alert=True)
        return
    who = f"@{query.from_user.username}" if query.from_user.username else str(query.from_user.id)
    if callback_data.decision is Decision.APPROVE:
        config = await onboarding.shops.approve(callback_data.tenant_id, query.from_user.id)
        verdict = "approved_by"
    else:
        config = await onboarding.shops.reject(callback_data.tenant_id, query.from_user.id)
        verdict = "rejected_by"
    if config is None:
        await query.answer(text(lang, "already_decided"), show_alert=True)
        return
    await query.answer()
    # The owner first: this update is handled once, so a failed edit below must not leave them untold.
    name = html.escape(config.display_name)
    if callback_data.decision is Decision.APPROVE:
        me = await _bot_username(config.bot_token, onboarding)
        await tell_owner(bot, config, "live", name=name, username=me)
    else:
        await tell_owner(bot, config, "rejected", name=name)
    with suppress(TelegramAPIError):
        verdict_text = text(lang, verdict, who=html.escape(who))
        await message.edit_text(f"{message.html_text}\n\n{verdict_text}", reply_markup=None)


async def _bot_username(token: str, onboarding: Onboarding) -> str:
    """The new shop's @username, as Telegram says it now (the owner may have renamed it meanwhile)."""
    try:
        return (await check_bot_token(onboarding.settings.telegram_api_base, token)).username
    except Refusal:
        return "?"
