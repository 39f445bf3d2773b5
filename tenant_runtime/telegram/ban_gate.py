"""A banned user's updates do nothing: one short message a day, no handler work (a dispatcher middleware).

It runs after the user is loaded (`context.UserContextMiddleware`). Money still arrives: a successful
payment is credited as always (a ban keeps the balance), and a pre-checkout query is declined so that no
new payment starts. The tenant's admins are never gated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update

from tenant_runtime.moderation.bans import tell_today
from tenant_runtime.telegram.context import Ctx
from tenant_runtime.telegram.keyboards import with_support

__all__ = ["BanGate"]


class BanGate(BaseMiddleware):
    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        ctx: Ctx | None = data.get("ctx")
        if ctx is None or not ctx.user.banned or ctx.is_admin or not isinstance(event, Update):
            return await handler(event, data)
        if event.message is not None and event.message.successful_payment is not None:
            return await handler(event, data)  # paid before the ban reached Telegram: credit it
        if event.pre_checkout_query is not None:
            with contextlib.suppress(TelegramAPIError, TimeoutError):
                await event.pre_checkout_query.answer(ok=False, error_message=ctx.t("ban.notice"))
            return UNHANDLED
        tenant = ctx.tenant
        if await tell_today(ctx.services.pool, tenant.id, ctx.user.user_id, tenant.limits.timezone):
            with contextlib.suppress(TelegramAPIError, TimeoutError):
                await data["bot"].send_message(ctx.user.user_id, ctx.t("ban.notice"), reply_markup=with_support(ctx))
        return UNHANDLED
